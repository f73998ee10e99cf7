"""Admin changelists whose cost does not grow with the table (jobs, audit entries).

Django's changelist counts every row twice per page view (the filtered count for the
paginator, the whole table for "N total"), lists a field's values with SELECT DISTINCT over
the table, and its date hierarchy truncates every row's date. At a million rows each is a
scan. The admins of large tables use, instead:

- `show_full_result_count = False` and CappedCountPaginator: the count stops at
  ADMIN_COUNT_CAP (100 pages of 100), an index scan that ends there;
- IndexedValuesFilter and IndexedRelatedOnlyFilter: a column's distinct values by a loose
  index scan (one index seek per value: `distinct_values`), so the column must lead an index;
- the date filter of `list_filter` rather than `date_hierarchy`.

Their timestamps are shown to the second with the zone named (`timestamp_column`): an
operator matches them against logs and audit entries, which Django's default minute-precision
"Dec. 6, 2026, 2:03 p.m." does not allow.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connections, models, router
from django.utils import timezone
from django.utils.functional import cached_property

ADMIN_COUNT_CAP = 10_000
# A filter listing more values than this is no use as a list of links.
MAX_FILTER_VALUES = 500


class CappedCountPaginator(Paginator):
    """Counts at most ADMIN_COUNT_CAP rows: past that the changelist shows the cap (and its
    pages); filters and search narrow the list further."""

    @cached_property
    def count(self) -> int:
        rows = cast(models.QuerySet[Any], self.object_list).order_by().values("pk")[: ADMIN_COUNT_CAP + 1]
        return min(rows.count(), ADMIN_COUNT_CAP)


def distinct_values(model: type[models.Model], column: str) -> list[Any]:
    """The distinct non-NULL values of `column`, ascending, with one index seek per value
    (a recursive "next value after this one" query; the same SQL on SQLite, PostgreSQL and
    MariaDB). Needs an index led by `column`; stops after MAX_FILTER_VALUES values."""
    connection = connections[router.db_for_read(model)]
    table, col = connection.ops.quote_name(model._meta.db_table), connection.ops.quote_name(column)
    sql = (
        f"WITH RECURSIVE seen (value, n) AS ("
        f" SELECT MIN({col}), 1 FROM {table}"
        f" UNION ALL"
        f" SELECT (SELECT MIN({col}) FROM {table} WHERE {col} > seen.value), n + 1"
        f" FROM seen WHERE seen.value IS NOT NULL AND n < %s"
        f") SELECT value FROM seen WHERE value IS NOT NULL"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [MAX_FILTER_VALUES])
        return [row[0] for row in cursor.fetchall()]


class IndexedValuesFilter(admin.AllValuesFieldListFilter):
    """Django's "all values" filter, its values read by `distinct_values`."""

    def __init__(self, field: models.Field, request: Any, params: Any, model: Any, model_admin: Any, field_path: str):
        super().__init__(field, request, params, model, model_admin, field_path)
        # A list where Django keeps a lazy queryset: choices() only iterates it.
        self.lookup_choices = distinct_values(model, field.column)  # type: ignore[assignment]


class IndexedRelatedOnlyFilter(admin.RelatedOnlyFieldListFilter):
    """Django's "related objects in use" filter, the keys in use read by `distinct_values`."""

    def field_choices(self, field: Any, request: Any, model_admin: Any) -> Any:
        in_use = distinct_values(model_admin.model, field.column)
        ordering = self.field_admin_ordering(field, request, model_admin)
        return field.get_choices(include_blank=False, limit_choices_to={"pk__in": in_use}, ordering=ordering)


def timestamp_text(value: datetime | None) -> str:
    """`2026-12-06 14:03:27 UTC`: to the second, in the configured TIME_ZONE, which is named
    (as the zone's abbreviation: `UTC`, `CET`) so nobody has to guess it; "-" for None."""
    if value is None:
        return "-"
    local = timezone.localtime(value)
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()}"


def timestamp_column(field: str, description: str) -> Callable[[Any, models.Model], str]:
    """A list column (or read-only field) showing `field` by `timestamp_text`, sortable by it:
    `created_at_display = timestamp_column("created_at", "Created")` in a ModelAdmin."""

    @admin.display(description=description, ordering=field)
    def column(model_admin: Any, obj: models.Model) -> str:
        return timestamp_text(getattr(obj, field))

    column.__name__ = f"{field}_display"
    return column
