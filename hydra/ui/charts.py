"""Plotly figures built from history rows (lists of dicts) through pandas.

Every function returns ``None`` when there is nothing to draw, so the page
can show an empty-state line instead of a blank axis. Nodes keep one colour
across all charts.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

# Theme-friendly, distinguishable colours (teal first, like the app's primary colour).
PALETTE = ["#0f766e", "#d97706", "#4f46e5", "#e11d48", "#0284c7", "#65a30d", "#7c3aed", "#475569",
           "#db2777", "#0891b2"]
STATUS_COLORS = {"done": "#2e9e6b", "failed": "#d64545", "cancelled": "#9aa3ad", "interrupted": "#e8913a",
                 "running": "#3b82f6", "queued": "#c3c9d1", "failovers": "#8b5cf6"}


def label(value: Any) -> str:
    """A name as Plotly shows it literally: Plotly reads tags in text (``<span style="...url(...)">``
    would make the browser fetch), so ``<`` goes in as an entity, which it shows as ``<``."""
    return str(value).replace("<", "&lt;")


def color_map(names: Iterable[Any]) -> dict[str, str]:
    """A stable colour per name (sorted, so every chart agrees), keyed by the name as charted."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(sorted({label(n) for n in names}))}


def _frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(list(rows))
    for column in ("node", "model", "mode", "task_type", "status"):
        if column in df:
            df[column] = df[column].fillna("(not routed)" if column in ("node", "model") else "(unknown)")
            df[column] = df[column].map(label)  # model names come from the nodes
    return df


# Every chart's Plotly options: no toolbar. On a phone it sat over titles and legends (a tap is a hover
# there), and nothing it offers (zoom, pan, PNG) is needed to read these counts.
PLOTLY_CONFIG: dict[str, Any] = {"displayModeBar": False, "displaylogo": False, "scrollZoom": False}
# The requests-over-time axis spans the data, never less than this many buckets (one bar is not a sliver).
MIN_BUCKETS_SHOWN = 12


def _style(fig: go.Figure, height: int = 300) -> go.Figure:
    # The title alone at the top, the legend under the plot: a legend above wrapped into the title on
    # narrow screens. Both in the container's coordinates, so Plotly makes room for them (automargin).
    fig.update_layout(height=height, margin={"l": 8, "r": 8, "t": 36, "b": 8},
                      legend={"orientation": "h", "yref": "container", "y": 0, "yanchor": "bottom",
                              "x": 0, "xanchor": "left", "title": None},
                      title={"font": {"size": 14}, "x": 0, "xanchor": "left", "xref": "container",
                             "yref": "container", "y": 1, "yanchor": "top", "pad": {"t": 8, "l": 8},
                             "automargin": True})
    return fig


def time_range(buckets: Iterable[float], bucket_s: float, window: tuple[float, float] | None,
               min_buckets: int = MIN_BUCKETS_SHOWN) -> tuple[float, float]:
    """The x range (epoch seconds) of the requests-over-time chart: from just before the first bucket
    with data to the window's end (now), at least ``min_buckets`` wide, never outside the window. A
    one-hour window holding two minutes of data drew its bars as a sliver at the right edge."""
    starts = list(buckets)
    first, last = min(starts), max(starts) + bucket_s
    end = window[1] if window is not None else last + bucket_s
    start = min(first - bucket_s, end - min_buckets * bucket_s)
    if window is not None:
        start = max(start, window[0])
    return start, max(end, last)


def requests_over_time(dist: list[dict[str, Any]], colors: Mapping[str, str], bucket_s: float,
                       window: tuple[float, float] | None = None) -> go.Figure | None:
    """Stacked requests per time bucket and node; the x range spans the data (``time_range``) within
    ``window`` (epoch start, end)."""
    df = _frame(dist)
    if df.empty:
        return None
    df["time"] = [datetime.fromtimestamp(b + bucket_s / 2) for b in df["bucket"]]
    per = df.groupby(["time", "node"], as_index=False)["count"].sum()
    fig = px.bar(per, x="time", y="count", color="node", color_discrete_map=dict(colors),
                 labels={"time": "", "count": "requests", "node": "node"})
    fig.update_traces(width=bucket_s * 1000 * 0.85)  # ms on a date axis: one bar per bucket, small gaps
    start, end = time_range(df["bucket"], bucket_s, window)
    fig.update_xaxes(range=[datetime.fromtimestamp(start), datetime.fromtimestamp(end)])
    fig.update_yaxes(rangemode="tozero", tickformat="d")  # whole requests
    fig.update_layout(title={"text": "Requests per node over time"})
    return _style(fig, 320)


def share(dist: list[dict[str, Any]], column: str, title: str,
          colors: Mapping[str, str] | None = None) -> go.Figure | None:
    """A donut of request counts by ``column`` (node, model, task_type or mode)."""
    df = _frame(dist)
    if df.empty or column not in df:
        return None
    per = df.groupby(column, as_index=False)["count"].sum().sort_values("count", ascending=False)
    fig = px.pie(per, names=column, values="count", hole=0.55, color=column,
                 color_discrete_map=dict(colors) if colors else None, color_discrete_sequence=PALETTE)
    fig.update_traces(textinfo="percent", textposition="inside", sort=False,
                      hovertemplate="%{label}: %{value} requests (%{percent})<extra></extra>")
    _style(fig, 300)
    # Legend under the donut (as every chart's), centred under it.
    fig.update_layout(title={"text": title}, showlegend=True, legend={"x": 0.5, "xanchor": "center"})
    return fig


def ttft(perf: list[dict[str, Any]]) -> go.Figure | None:
    """Median time to first token per node and model; the whisker reaches p95."""
    df = _frame(perf)
    if df.empty or df.get("ttft_p50_s") is None or df["ttft_p50_s"].isna().all():
        return None
    df = df.dropna(subset=["ttft_p50_s"])
    df["p95_extra"] = (df["ttft_p95_s"].fillna(df["ttft_p50_s"]) - df["ttft_p50_s"]).clip(lower=0)
    fig = px.bar(df, x="node", y="ttft_p50_s", color="model", barmode="group", error_y="p95_extra",
                 color_discrete_sequence=PALETTE, labels={"ttft_p50_s": "seconds", "node": "", "model": "model"})
    fig.update_layout(title={"text": "Time to first token (p50, whisker to p95)"})
    return _style(fig)


def speed(perf: list[dict[str, Any]]) -> go.Figure | None:
    df = _frame(perf)
    if df.empty or df.get("tokens_per_s") is None or df["tokens_per_s"].isna().all():
        return None
    df = df.dropna(subset=["tokens_per_s"])
    fig = px.bar(df, x="node", y="tokens_per_s", color="model", barmode="group", color_discrete_sequence=PALETTE,
                 labels={"tokens_per_s": "tokens/s", "node": "", "model": "model"})
    fig.update_layout(title={"text": "Generation speed"})
    return _style(fig)


def outcomes(dist: list[dict[str, Any]], perf: list[dict[str, Any]]) -> go.Figure | None:
    """Finished tasks per node by outcome, with failovers beside them."""
    df = _frame(dist)
    if df.empty:
        return None
    per = df.groupby(["node", "status"], as_index=False)["count"].sum()
    pf = _frame(perf)
    if not pf.empty and "failovers" in pf:
        fo = pf.groupby("node", as_index=False)["failovers"].sum()
        fo = fo[fo["failovers"] > 0].rename(columns={"failovers": "count"}).assign(status="failovers")
        per = pd.concat([per, fo], ignore_index=True)
    order = [s for s in STATUS_COLORS if s in set(per["status"])]
    fig = px.bar(per, x="node", y="count", color="status", color_discrete_map=STATUS_COLORS, barmode="group",
                 category_orders={"status": order}, labels={"count": "tasks", "node": ""})
    fig.update_layout(title={"text": "Outcomes and failovers per node"})
    return _style(fig)
