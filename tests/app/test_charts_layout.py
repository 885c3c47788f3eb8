"""Chart layout rules of issue 14 item 10, on the figures themselves (the browser test looks at them drawn)."""
from __future__ import annotations

from hydra.ui import charts

NOW = 1_800_000_000.0


def test_the_time_axis_spans_the_data_not_the_whole_window():
    # Two minutes of data in a one-hour window of 60 s buckets: the axis starts just before the data.
    start, end = charts.time_range([NOW - 120, NOW - 60], 60, (NOW - 3600, NOW))
    assert end == NOW and start == NOW - charts.MIN_BUCKETS_SHOWN * 60
    # Data older than the minimum span: from one bucket before the first, never before the window.
    assert charts.time_range([NOW - 1800, NOW - 60], 60, (NOW - 3600, NOW)) == (NOW - 1860, NOW)
    assert charts.time_range([NOW - 3600], 60, (NOW - 3600, NOW))[0] == NOW - 3600
    # No window ("All"): the data with a bucket either side, at least the minimum span.
    start, end = charts.time_range([NOW], 3600, None)
    assert end == NOW + 7200 and end - start == charts.MIN_BUCKETS_SHOWN * 3600


def test_legends_sit_under_the_plot_and_titles_alone_on_top():
    dist = [{"bucket": NOW - 60, "node": "light", "model": "m", "mode": "fast", "task_type": "code",
             "status": "done", "count": 3}]
    figures = [charts.requests_over_time(dist, charts.color_map(["light"]), 60, (NOW - 3600, NOW)),
               charts.share(dist, "node", "By node")]
    for figure in figures:
        assert figure is not None
        legend, title = figure.layout.legend, figure.layout.title
        assert (legend.yref, legend.y, legend.yanchor) == ("container", 0, "bottom")
        assert (title.yref, title.y, title.yanchor) == ("container", 1, "top")


def test_no_plotly_toolbar():
    assert charts.PLOTLY_CONFIG["displayModeBar"] is False
