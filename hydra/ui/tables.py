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


def row_prompt(row: Mapping[str, Any]) -> str:
    """A task's prompt as a person reads it: the prompt, else the last user message (gateway chats)."""
    prompt = row.get("prompt") or ""
    if prompt.strip():
        return prompt
    for message in reversed(row.get("messages") or ()):
        if isinstance(message, Mapping) and message.get("role") == "user" and message.get("content"):
            return str(message["content"])
    return "(no prompt)"


def _text(value: Any) -> str:
    """A table cell never says "None"."""
    return fmt.DASH if value is None or value == "" else str(value)


# Widths in pixels where a word must fit whole ("interrupted"); the prompt gets what is left.
# The first columns are the ones a phone shows without scrolling: what, how it went, where.
HISTORY_COLUMNS = {
    "Status": st.column_config.TextColumn(width=100),
    "Prompt": st.column_config.TextColumn(width="medium"),
    "Model": st.column_config.TextColumn(width=130),
    "Node": st.column_config.TextColumn(width=100),
    "Submitted": st.column_config.DatetimeColumn(format="MMM D, HH:mm:ss", width=130),
    "Duration": st.column_config.TextColumn(width=80),
    "TTFT": st.column_config.TextColumn(width=80),
    "Speed": st.column_config.TextColumn(width=90),
    "Task": st.column_config.TextColumn(width=110),
}
HISTORY_ORDER = ["Status", "Prompt", "Model", "Node", "Submitted", "Duration", "TTFT", "Speed", "Mode", "Type",
                 "Priority", "Failovers", "Task"]


def history_frame(rows: Iterable[Mapping[str, Any]], live: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Recent tasks, newest first, one row each; ``live`` (task id -> status) overrides a status the
    history row has not caught up with yet."""
    live = live or {}
    return pd.DataFrame([{
        "Status": live.get(r.get("id") or "", r.get("status") or fmt.DASH),
        "Prompt": fmt.one_line(row_prompt(r), 120),
        "Model": _text(r.get("model")),
        "Node": _text(r.get("node")),
        "Submitted": _time(r.get("submitted_at")),
        "Duration": fmt.fmt_seconds(r.get("duration_s")),
        "TTFT": fmt.fmt_seconds(r.get("ttft_s")),
        "Speed": fmt.fmt_rate(r.get("tokens_per_s")),
        "Mode": _text(r.get("mode")),
        "Type": _text(r.get("task_type")),
        "Priority": r.get("priority"),
        "Failovers": r.get("failovers") or 0,
        "Task": r.get("id"),
    } for r in rows], columns=HISTORY_ORDER)


DECISION_COLUMNS = {
    "Time": st.column_config.DatetimeColumn(format="HH:mm:ss", width=70),
    "Prompt": st.column_config.TextColumn(width=160),
    "Node": st.column_config.TextColumn(width=100),
    "Model": st.column_config.TextColumn(width=130),
    "Reason": st.column_config.TextColumn(width="large"),
    "Candidates (score: lower wins)": st.column_config.TextColumn(width="large"),
    "Attempt": st.column_config.NumberColumn(width=65),
}
# The reason right after the prompt: on a phone the first three columns are what shows.
DECISION_ORDER = ["Time", "Prompt", "Reason", "Node", "Model", "Candidates (score: lower wins)", "Mode", "Type",
                  "Attempt", "Task"]


def decisions_frame(rows: Iterable[Mapping[str, Any]], prompts: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Routing decisions, newest first; ``prompts`` (task id -> prompt) names each task by its words."""
    prompts = prompts or {}
    return pd.DataFrame([{
        "Time": _time(r.get("time")),
        "Prompt": fmt.one_line(prompts.get(r.get("task_id") or "") or "(prompt not in recent history)", 100),
        "Node": r.get("node") or "(none)",
        "Model": r.get("model") or "(none)",
        "Reason": _text(r.get("reason")),
        "Candidates (score: lower wins)": fmt.candidates_text(r.get("candidates")),
        "Mode": _text(r.get("mode")),
        "Type": _text(r.get("task_type")),
        "Attempt": r.get("attempt"),
        "Task": r.get("task_id"),
    } for r in rows], columns=DECISION_ORDER)


def task_prompts(rows: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """task id -> the prompt a person reads, from history rows (``recent_tasks``)."""
    return {r["id"]: row_prompt(r) for r in rows if r.get("id")}


def filter_decisions(rows: list[dict[str, Any]], *, node: str | None = None, mode: str | None = None,
                     task_text: str = "", prompts: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """Node and mode match exactly; the task filter matches any part of the task id or its prompt."""
    needle = task_text.strip().lower()
    prompts = prompts or {}

    def matches(row: Mapping[str, Any]) -> bool:
        task_id = str(row.get("task_id", ""))
        return needle in task_id.lower() or needle in prompts.get(task_id, "").lower()

    return [r for r in rows
            if (node is None or r.get("node") == node)
            and (mode is None or fmt.value_of(r.get("mode")) == mode)
            and (not needle or matches(r))]


def candidates_frame(candidates: Iterable[Mapping[str, Any]] | None) -> pd.DataFrame:
    """One decision's candidates; an excluded one's score reads "excluded", never "None"."""
    return pd.DataFrame([{
        "Node": _text(c.get("node")), "Model": _text(c.get("model")),
        "Score": f"{c['score']:.2f}" if c.get("eligible") and c.get("score") is not None else "excluded",
        "Eligible": "yes" if c.get("eligible") else "no", "Why": _text(c.get("reason")),
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
