"""The provider page's hardware prices, edited as a table instead of raw JSON.

`ProviderConfig.hardware` holds the operator's overrides over the provider's own price table:
`{"gpu-h100": {"price_per_second": 0.001525, "label": "1x H100"}}`. The admin shows one row
per override (hardware ID, label, price per second, delete) and a few blank rows to add more,
posted like a formset (`hardware-0-id`, `hardware-0-label`, ...). Prices are written with
Python's shortest round-tripping float repr, so a page saved unchanged reads back the very
floats that are stored and the field does not count as changed. The result goes through
providers.config.validate_hardware like the API's, for ids and ranges.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import forms
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from providers.config import MAX_HARDWARE_ENTRIES

# Blank rows under the stored ones, for adding hardware (more appear after each save).
EXTRA_ROWS = 3
# Rows read from a post: the most the validator accepts, plus the blank ones, plus one to
# notice a post with too many.
MAX_ROWS = MAX_HARDWARE_ENTRIES + EXTRA_ROWS + 1
CELLS = ("id", "label", "price", "delete")

Row = dict[str, str]


def rows_of(value: Any) -> list[Row]:
    """The table's rows for a stored table (a dict) or a re-displayed post (a list of rows)."""
    if isinstance(value, list):
        return [row for row in value if isinstance(row, dict)]
    if not isinstance(value, Mapping):
        return []
    rows = []
    for hw_id, entry in value.items():
        entry = entry if isinstance(entry, Mapping) else {}
        price = entry.get("price_per_second")
        rows.append(
            {
                "id": str(hw_id),
                "label": str(entry.get("label", "")),
                "price": repr(float(price)) if isinstance(price, int | float) else str(price or ""),
            }
        )
    return rows


class HardwareTableWidget(forms.Widget):
    def value_from_datadict(self, data: Any, files: Any, name: str) -> list[Row] | None:
        """The posted rows; None when the post has no table (a script posting other fields):
        the field is then unchanged, not emptied."""
        if self.value_omitted_from_data(data, files, name):
            return None
        rows = []
        for index in range(MAX_ROWS):
            if f"{name}-{index}-id" not in data:
                break
            rows.append({cell: str(data.get(f"{name}-{index}-{cell}", "")).strip() for cell in CELLS})
        return rows

    def value_omitted_from_data(self, data: Any, files: Any, name: str) -> bool:
        return f"{name}-0-id" not in data

    def render(self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None) -> SafeString:
        rows = [*rows_of(value), *({"id": "", "label": "", "price": ""} for _ in range(EXTRA_ROWS))]
        body = format_html_join("", "{}", ((self._row(name, index, row),) for index, row in enumerate(rows)))
        return format_html(
            '<table class="hardware-prices" id="{}_table"><thead><tr><th>Hardware ID</th><th>Label</th>'
            "<th>Price per second (USD)</th><th>Delete</th></tr></thead><tbody>{}</tbody></table>",
            (attrs or {}).get("id", f"id_{name}"),
            body,
        )

    @staticmethod
    def _row(name: str, index: int, row: Row) -> SafeString:
        prefix = f"{name}-{index}"
        ticked = " checked" if row.get("delete") else ""
        return format_html(
            '<tr class="hardware-row">'
            '<td><input type="text" name="{0}-id" value="{1}" maxlength="64" size="16" aria-label="Hardware ID"></td>'
            '<td><input type="text" name="{0}-label" value="{2}" maxlength="100" size="24" aria-label="Label"></td>'
            '<td><input type="text" name="{0}-price" value="{3}" maxlength="32" size="22" inputmode="decimal"'
            ' aria-label="Price per second (USD)"></td>'
            '<td><input type="checkbox" name="{0}-delete" value="on"{4} aria-label="Delete"></td></tr>',
            prefix,
            row.get("id", ""),
            row.get("label", ""),
            row.get("price", ""),
            SafeString(ticked),
        )


class HardwareTableField(forms.Field):
    """Rows in, the `hardware` dict out (in row order); blank and deleted rows are dropped."""

    widget = HardwareTableWidget

    def to_python(self, value: Any) -> dict[str, dict[str, Any]]:
        if isinstance(value, Mapping):
            return dict(value)
        if value is None:
            return {}  # not posted: has_changed() keeps the stored table
        rows = value if isinstance(value, list) else []
        if len(rows) >= MAX_ROWS:
            raise forms.ValidationError(f"At most {MAX_HARDWARE_ENTRIES} hardware rows.")
        table: dict[str, dict[str, Any]] = {}
        for number, row in enumerate(rows, start=1):
            if row.get("delete") or not (row.get("id") or row.get("label") or row.get("price")):
                continue
            hw_id = row.get("id", "")
            if not hw_id:
                raise forms.ValidationError(f"Row {number}: give the hardware ID (or empty the row).")
            if hw_id in table:
                raise forms.ValidationError(f"{hw_id}: listed twice.")
            table[hw_id] = {"price_per_second": _price(hw_id, row.get("price", ""))}
            if row.get("label"):
                table[hw_id]["label"] = row["label"]
        return table

    def prepare_value(self, value: Any) -> Any:
        return value if isinstance(value, Mapping | list) else {}

    def has_changed(self, initial: Any, data: Any) -> bool:
        if data is None:
            return False
        try:
            return self.to_python(data) != dict(initial or {})
        except forms.ValidationError:
            return True


def _price(hw_id: str, text: str) -> float:
    if not text:
        raise forms.ValidationError(f"{hw_id}: give the price per second in USD.")
    try:
        return float(text)
    except ValueError:
        raise forms.ValidationError(f"{hw_id}: the price per second must be a number of USD, not {text!r}.") from None
