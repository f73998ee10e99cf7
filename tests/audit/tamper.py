"""What an attacker with write access to the database does: raw SQL, past the ORM's guard."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.db import connection

from audit.models import AuditEntry, AuditHead


def _table(model: type) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _placeholder(field: str) -> str:
    # PostgreSQL will not assign a text parameter to a jsonb column without a cast.
    if field == "details" and connection.vendor == "postgresql":
        return "CAST(%s AS jsonb)"
    return "%s"


def _value(field: str, value: Any) -> Any:
    if field == "details":
        return json.dumps(value)
    if isinstance(value, datetime):
        return connection.ops.adapt_datetimefield_value(value)
    return value


def execute(sql: str, params: list[Any] | None = None) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return cursor.rowcount


def edit_entry(at_sequence: int, /, **fields: Any) -> None:
    sets = ", ".join(f"{connection.ops.quote_name(f)} = {_placeholder(f)}" for f in fields)
    params = [_value(f, v) for f, v in fields.items()]
    assert execute(f"UPDATE {_table(AuditEntry)} SET {sets} WHERE sequence = %s", [*params, at_sequence]) == 1


def delete_entries(*sequences: int) -> None:
    marks = ", ".join(["%s"] * len(sequences))
    assert execute(f"DELETE FROM {_table(AuditEntry)} WHERE sequence IN ({marks})", list(sequences)) == len(sequences)


def swap_sequences(a: int, b: int) -> None:
    edit_entry(a, sequence=-a)
    edit_entry(b, sequence=a)
    edit_entry(-a, sequence=b)


def edit_head(**fields: Any) -> None:
    sets = ", ".join(f"{connection.ops.quote_name(f)} = %s" for f in fields)
    assert execute(f"UPDATE {_table(AuditHead)} SET {sets} WHERE id = 1", list(fields.values())) == 1


def delete_head() -> None:
    assert execute(f"DELETE FROM {_table(AuditHead)}") == 1
