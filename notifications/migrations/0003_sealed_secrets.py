"""Channels' signing secrets and Slack URLs sealed under the server key (cloudops.sealed):
the columns become text (a sealed value is longer), then every row is sealed. Reversing writes
the plain values back (while the server key can still open them) before the columns narrow."""

from django.db import migrations

import cloudops.sealed

SEALED = ("secret", "previous_secret", "webhook_url")


def seal_rows(apps, schema_editor):
    """Read each row (plain values read as they are) and save it: saving seals."""
    Channel = apps.get_model("notifications", "Channel")
    for channel in Channel.objects.using(schema_editor.connection.alias).iterator():
        channel.save(update_fields=SEALED)


def unseal_rows(apps, schema_editor):
    """Write the plain values straight into the columns (saving through the model would seal)."""
    Channel = apps.get_model("notifications", "Channel")
    table = schema_editor.quote_name(Channel._meta.db_table)
    columns = ", ".join(f"{schema_editor.quote_name(name)} = %s" for name in SEALED)
    with schema_editor.connection.cursor() as cursor:
        for channel in Channel.objects.using(schema_editor.connection.alias).iterator():
            values = [getattr(channel, name) for name in SEALED]
            if any(isinstance(value, cloudops.sealed.Unreadable) for value in values):
                raise RuntimeError(f"channel {channel.pk}: sealed under another server key; cannot unseal")
            cursor.execute(f"UPDATE {table} SET {columns} WHERE id = %s", [*values, channel.pk])


class Migration(migrations.Migration):

    dependencies = [
        ('notifications', '0002_pruned_tally'),
    ]

    operations = [
        migrations.AlterField(
            model_name='channel',
            name='previous_secret',
            field=cloudops.sealed.SealedField(blank=True, default='', max_length=128, purpose='notification-signing-secret'),
        ),
        migrations.AlterField(
            model_name='channel',
            name='secret',
            field=cloudops.sealed.SealedField(blank=True, default='', max_length=128, purpose='notification-signing-secret'),
        ),
        migrations.AlterField(
            model_name='channel',
            name='webhook_url',
            field=cloudops.sealed.SealedField(blank=True, default='', help_text='slack: the incoming webhook URL (a secret)', max_length=2048, purpose='slack-webhook-url'),
        ),
        migrations.RunPython(seal_rows, unseal_rows),
    ]
