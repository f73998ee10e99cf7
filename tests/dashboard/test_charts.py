"""Inline SVG charts (cloudops.charts): geometry proportional to the values, titles kept,
labels escaped when rendered."""

from __future__ import annotations

from django.template.loader import render_to_string

from cloudops.charts import Series, meter, stacked_bars

SERIES = [Series("ok", "completed", "#15803d"), Series("bad", "failed", "#b91c1c")]


def chart(categories: list[tuple[str, dict[str, int]]]) -> str:
    drawn = stacked_bars(chart_id="c", title="Jobs <per> day", description="d", categories=categories, series=SERIES)
    return render_to_string("admin/dashboard/chart_svg.html", {"chart": drawn})


def test_bars_are_as_tall_as_their_values_and_stack_in_series_order() -> None:
    drawn = stacked_bars(
        chart_id="c",
        title="t",
        description="d",
        categories=[("Mon", {"ok": 3, "bad": 1}), ("Tue", {"ok": 2})],
        series=SERIES,
    )
    ok_mon, bad_mon, ok_tue = drawn.rects
    assert (ok_mon.title, bad_mon.title, ok_tue.title) == ("Mon: 3 completed", "Mon: 1 failed", "Tue: 2 completed")
    assert ok_mon.height == 3 * bad_mon.height and ok_mon.height == 1.5 * ok_tue.height
    assert bad_mon.y + bad_mon.height == ok_mon.y, "failed sits on completed"
    assert drawn.title == "t", "the chart keeps its own title"


def test_an_empty_chart_draws_no_bar_and_a_zero_axis() -> None:
    drawn = stacked_bars(chart_id="c", title="t", description="d", categories=[("Mon", {})], series=SERIES)
    assert drawn.rects == ()
    assert [label.text for label in drawn.labels][:2] == ["1", "0"]


def test_labels_and_titles_are_escaped_in_the_svg() -> None:
    svg = chart([("<b>Mon</b>", {"ok": 1})])
    assert '<title id="c-title">Jobs &lt;per&gt; day</title>' in svg
    assert "&lt;b&gt;Mon&lt;/b&gt;" in svg and "<b>" not in svg
    assert 'role="img" aria-labelledby="c-title c-desc"' in svg


def test_a_meter_is_full_at_or_over_its_maximum_and_empty_without_one() -> None:
    def fill(value: float, maximum: float) -> float:
        return meter(chart_id="m", title="t", value=value, maximum=maximum, colour="#000", width=200).rects[1].width

    assert (fill(50, 100), fill(100, 100), fill(250, 100), fill(5, 0)) == (100, 200, 200, 0)
