"""Anchor the chain after the entries written before it existed; they are never rewritten.

Those rows keep an empty `mac` and stay readable; verification starts after the anchor
(the last existing sequence, anchor MAC ""), so the first chained entry has prev_mac "".
Signing the head needs the audit key: run `migrate` with the same SIMPLETUNER_AUDIT_KEY (or
the same $SIMPLETUNER_HOME/config/audit_key) the server uses. A new, empty install needs
no key here: its chain starts at #1 with the first entry.
"""

from dataclasses import replace

from django.db import migrations
from django.db.models import Max


def anchor_existing_entries(apps, schema_editor):
    from audit.chain import HeadState, audit_key

    db = schema_editor.connection.alias
    entries = apps.get_model("audit", "AuditEntry").objects.using(db)
    heads = apps.get_model("audit", "AuditHead").objects.using(db)
    row = heads.filter(pk=1).first()
    last = max(entries.aggregate(top=Max("sequence"))["top"] or 0, row.last_sequence if row else 0)
    if last == 0:
        return
    key = audit_key()
    head = HeadState(last_sequence=last, anchor_sequence=last, key_id=key.key_id)
    head = replace(head, mac=head.expected_mac(key))
    heads.update_or_create(pk=1, defaults=head.as_dict())


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0002_chain"),
    ]

    operations = [
        migrations.RunPython(anchor_existing_entries, migrations.RunPython.noop),
    ]
