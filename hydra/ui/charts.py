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


def _style(fig: go.Figure, height: int = 300) -> go.Figure:
    fig.update_layout(height=height, margin={"l": 8, "r": 8, "t": 40, "b": 8},
                      legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0, "title": None},
                      title={"font": {"size": 14}, "x": 0, "xanchor": "left", "y": 0.98, "yanchor": "top"})
    return fig


def requests_over_time(dist: list[dict[str, Any]], colors: Mapping[str, str], bucket_s: float,
                       window: tuple[float, float] | None = None) -> go.Figure | None:
    """Stacked requests per time bucket and node; ``window`` (epoch start, end) fixes the x range."""
    df = _frame(dist)
    if df.empty:
        return None
    df["time"] = [datetime.fromtimestamp(b + bucket_s / 2) for b in df["bucket"]]
    per = df.groupby(["time", "node"], as_index=False)["count"].sum()
    fig = px.bar(per, x="time", y="count", color="node", color_discrete_map=dict(colors),
                 labels={"time": "", "count": "requests", "node": "node"})
    fig.update_traces(width=bucket_s * 1000 * 0.85)  # ms on a date axis: one bar per bucket, small gaps
    if window is not None:
        fig.update_xaxes(range=[datetime.fromtimestamp(window[0]), datetime.fromtimestamp(window[1])])
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
    # Legend under the donut, so every donut in a row has the same size whatever its labels.
    fig.update_layout(title={"text": title}, showlegend=True,
                      legend={"orientation": "h", "yanchor": "top", "y": -0.02, "x": 0.5, "xanchor": "center"},
                      margin={"l": 8, "r": 8, "t": 40, "b": 8})
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
