"""Bar charts as inline SVG drawn by the server: no JavaScript, no CDN, nothing to load.

These functions only compute geometry (frozen dataclasses of rectangles and labels, in SVG
user units); templates/admin/dashboard/chart.svg renders them with Django's escaping, so a
label can never inject markup. Every chart has a <title> and a <desc> (screen readers read
them through aria-labelledby), and every bar its own <title>, which browsers show on hover.
Text is drawn in currentColor, so charts follow the admin's light and dark themes.
"""

from __future__ import annotations

from dataclasses import dataclass

# Plot margins: room for the value axis on the left and the category labels below.
_LEFT, _RIGHT, _TOP, _BOTTOM = 36.0, 8.0, 14.0, 20.0
_BAR_SHARE = 0.6  # of each category's slot; the rest is the gap between bars


@dataclass(frozen=True)
class Series:
    key: str
    label: str
    colour: str


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    colour: str
    title: str


@dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: str
    anchor: str = "middle"


@dataclass(frozen=True)
class Chart:
    chart_id: str
    title: str
    description: str
    width: float
    height: float
    rects: tuple[Rect, ...]
    labels: tuple[Label, ...]
    lines: tuple[tuple[float, float, float, float], ...] = ()
    legend: tuple[Series, ...] = ()


def _r(value: float) -> float:
    return round(value, 1)


def stacked_bars(
    *,
    chart_id: str,
    title: str,
    description: str,
    categories: list[tuple[str, dict[str, int]]],
    series: list[Series],
    width: float = 480,
    height: float = 180,
) -> Chart:
    """One vertical bar per category, stacked by series in `series` order (bottom first),
    its total written above it; the value axis runs from 0 to the largest total."""
    plot_w, plot_h = width - _LEFT - _RIGHT, height - _TOP - _BOTTOM
    top = max((sum(values.values()) for _, values in categories), default=0) or 1
    slot = plot_w / max(len(categories), 1)
    rects: list[Rect] = []
    labels = [Label(_LEFT - 4, _TOP + 4, str(top), "end"), Label(_LEFT - 4, _TOP + plot_h, "0", "end")]
    for i, (category, values) in enumerate(categories):
        x, y = _LEFT + i * slot + slot * (1 - _BAR_SHARE) / 2, _TOP + plot_h
        for s in series:
            value = values.get(s.key, 0)
            if value:
                h = plot_h * value / top
                y -= h
                hover = f"{category}: {value} {s.label}"
                rects.append(Rect(_r(x), _r(y), _r(slot * _BAR_SHARE), _r(h), s.colour, hover))
        total = sum(values.values())
        labels.append(Label(_r(x + slot * _BAR_SHARE / 2), _r(y - 3), str(total)))
        labels.append(Label(_r(x + slot * _BAR_SHARE / 2), height - 6, category))
    axes = ((_LEFT, _TOP, _LEFT, _TOP + plot_h), (_LEFT, _TOP + plot_h, width - _RIGHT, _TOP + plot_h))
    return Chart(chart_id, title, description, width, height, tuple(rects), tuple(labels), axes, tuple(series))


def meter(*, chart_id: str, title: str, value: float, maximum: float, colour: str, width: float = 240) -> Chart:
    """A horizontal bar of `value` on a grey track standing for `maximum` (full, never past
    the end, at or over it; empty when there is no maximum). `title` says both in words."""
    height, bar_h = 18.0, 12.0
    share = min(value / maximum, 1.0) if maximum > 0 else 0.0
    rects = (
        Rect(0, 3, width, bar_h, "#9ca3af", title),
        Rect(0, 3, _r(width * share), bar_h, colour, title),
    )
    return Chart(chart_id, title, f"{share:.0%} used", width, height, rects, ())
