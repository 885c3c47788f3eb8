"""DataFrames for the pages' tables, built from history dicts and snapshots (pure pandas)."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import pandas as pd
import streamlit as st

from hydra.sollol.types import ModelStatsSnapshot
from hydra.ui import formatting as fmt


def _time(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts)


HISTORY_COLUMNS = {
    "Submitted": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss"),
    "Prompt": st.column_config.TextColumn(width="large"),
    "TTFT (s)": st.column_config.NumberColumn(format="%.2f"),
    "Tokens/s": st.column_config.NumberColumn(format="%.1f"),
    "Duration (s)": st.column_config.NumberColumn(format="%.1f"),
}


def history_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Recent tasks, newest first, one row each."""
    return pd.DataFrame([{
        "Submitted": _time(r.get("submitted_at")),
        "Status": r.get("status"),
        "Prompt": fmt.one_line(r.get("prompt"), 120),
        "Node": r.get("node"),
        "Model": r.get("model"),
        "Mode": r.get("mode"),
        "Type": r.get("task_type"),
        "Priority": r.get("priority"),
        "TTFT (s)": r.get("ttft_s"),
        "Tokens/s": r.get("tokens_per_s"),
        "Duration (s)": r.get("duration_s"),
        "Failovers": r.get("failovers") or 0,
        "Task": r.get("id"),
    } for r in rows], columns=["Submitted", "Status", "Prompt", "Node", "Model", "Mode", "Type", "Priority",
                               "TTFT (s)", "Tokens/s", "Duration (s)", "Failovers", "Task"])


DECISION_COLUMNS = {
    "Time": st.column_config.DatetimeColumn(format="HH:mm:ss"),
    "Candidates (score: lower wins)": st.column_config.TextColumn(width="large"),
    "Reason": st.column_config.TextColumn(width="large"),
}


def decisions_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame([{
        "Time": _time(r.get("time")),
        "Task": r.get("task_id"),
        "Attempt": r.get("attempt"),
        "Mode": r.get("mode"),
        "Type": r.get("task_type"),
        "Node": r.get("node") or "(none)",
        "Model": r.get("model") or "(none)",
        "Candidates (score: lower wins)": fmt.candidates_text(r.get("candidates")),
        "Reason": r.get("reason"),
    } for r in rows], columns=["Time", "Task", "Attempt", "Mode", "Type", "Node", "Model",
                               "Candidates (score: lower wins)", "Reason"])


def filter_decisions(rows: list[dict[str, Any]], *, node: str | None = None, mode: str | None = None,
                     task_text: str = "") -> list[dict[str, Any]]:
    """Node and mode match exactly; the task filter matches any part of the task id."""
    needle = task_text.strip().lower()
    return [r for r in rows
            if (node is None or r.get("node") == node)
            and (mode is None or fmt.value_of(r.get("mode")) == mode)
            and (not needle or needle in str(r.get("task_id", "")).lower())]


def candidates_frame(candidates: Iterable[Mapping[str, Any]] | None) -> pd.DataFrame:
    return pd.DataFrame([{
        "Node": c.get("node"), "Model": c.get("model"),
        "Score": c.get("score"), "Eligible": bool(c.get("eligible")), "Why": c.get("reason"),
    } for c in candidates or ()], columns=["Node", "Model", "Score", "Eligible", "Why"])


def model_stats_frame(models: Iterable[ModelStatsSnapshot]) -> pd.DataFrame:
    return pd.DataFrame([{
        "Node": m.node, "Model": m.model, "Requests": m.requests,
        "Success": fmt.fmt_pct(m.successes / (m.successes + m.failures)) if m.successes + m.failures else fmt.DASH,
        "TTFT p50": fmt.fmt_seconds(m.ttft_p50_s), "TTFT p95": fmt.fmt_seconds(m.ttft_p95_s),
        "Speed": fmt.fmt_rate(m.tokens_per_s), "Load": fmt.fmt_seconds(m.load_s),
    } for m in models], columns=["Node", "Model", "Requests", "Success", "TTFT p50", "TTFT p95", "Speed", "Load"])


def reasons_frame(reasons: Iterable[Any]) -> pd.DataFrame:
    return pd.DataFrame([{"Feature": r.feature, "Points": r.points, "Detail": r.detail} for r in reasons],
                        columns=["Feature", "Points", "Detail"])
