"""Cards: one task (live or finished) and one node, drawn from frozen views.

A card only reads a ``TaskView`` / ``NodeSnapshot`` handed to it; buttons call
the handle's public methods through callbacks, so a click never waits on an
engine lock held by the script.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st

from hydra.sollol.redact import redact_url
from hydra.sollol.types import NodeSnapshot, TaskStatus, TaskView
from hydra.ui import formatting as fmt
from hydra.ui.answer import copy_answer, render_answer
from hydra.ui.safe_markdown import code_span, safe_markdown


@dataclass(frozen=True)
class TaskActions:
    """What a card's buttons do; a button shows only when its action is given and makes sense."""

    on_cancel: Callable[[], Any] | None = None
    on_dismiss: Callable[[], Any] | None = None
    on_rerun: Callable[[], Any] | None = None
    on_follow_up: Callable[[], Any] | None = None


def _placeholder(view: TaskView) -> str:
    if view.status == TaskStatus.QUEUED:
        return "_Queued: waiting for a free slot on a node…_"
    if view.status == TaskStatus.RUNNING:
        return "_Waiting for the first token…_"
    return "_No answer._"


def task_card(view: TaskView, *, assessment: Any = None, system: str | None = None, turns: int = 1,
              title: str | None = None, actions: TaskActions | None = None) -> None:
    """One task as a bordered card; its container key is ``task-<id>`` (the browser test reads it).
    The answer shows in full (no inner scroll box): code blocks wrap and have a copy button."""
    status = fmt.value_of(view.status)
    title = title or view.prompt or "(no prompt)"  # a chat task's title: its last user message
    with st.container(border=True, key=f"task-{view.task_id}"):
        turn = f" :gray-badge[:material/forum: turn {turns}]" if turns > 1 else ""
        st.markdown(f"{fmt.status_badge(status)}{turn} **{fmt.md_escape(fmt.one_line(title, 90))}**",
                    help=safe_markdown(title) if len(title) > 90 else None)
        st.caption(fmt.task_meta(view.node, view.model, view.mode, view.task_type, view.priority))
        if system:
            st.caption(f":material/settings: system: {fmt.md_escape(fmt.one_line(system, 120))}")
        if view.reason:
            st.caption(f":material/alt_route: {fmt.md_escape(fmt.one_line(view.reason, 200))}")
        if line := fmt.assessment_line(assessment, view.model):
            st.caption(f":material/psychology: {fmt.md_escape(line)}")
        if view.notice:
            st.warning(safe_markdown(view.notice), icon=":material/swap_horiz:")
        if view.thinking:
            with st.expander("Thinking", icon=":material/psychology_alt:"):
                st.markdown(safe_markdown(view.thinking))
        with st.container(border=False, key=f"answer-{view.task_id}"):
            if view.tool_calls:  # a gateway client's tools: the answer is a call, not text
                st.markdown(safe_markdown("\n".join(f"- :material/build: {code_span(fmt.tool_call_text(call))}"
                                                     for call in view.tool_calls)))
            # Model output: images become text, so nothing in it makes the browser fetch.
            render_answer(view.text, placeholder="" if view.tool_calls else _placeholder(view))
        if status == TaskStatus.DONE:
            st.caption(fmt.result_stats(view.ttft_s, view.tokens_per_s, view.eval_count, view.duration_s,
                                        view.attempts))
        elif status == TaskStatus.RUNNING and view.ttft_s is not None:
            st.caption(f"TTFT {fmt.fmt_seconds(view.ttft_s)} · streaming…")
        if view.error and status != TaskStatus.CANCELLED:
            st.error(safe_markdown(view.error), icon=":material/error:")
        _task_buttons(view, status, actions or TaskActions())


def _task_buttons(view: TaskView, status: str, actions: TaskActions) -> None:
    row = st.container(horizontal=True, gap="small")
    finished = status in fmt.TERMINAL
    if not finished and actions.on_cancel is not None:
        row.button("Cancel", key=f"cancel-{view.task_id}", icon=":material/stop_circle:", on_click=actions.on_cancel,
                   type="tertiary")
    if finished and actions.on_follow_up is not None:
        row.button("Follow up", key=f"follow-{view.task_id}", icon=":material/forum:", on_click=actions.on_follow_up,
                   type="tertiary", help="Continue this as a conversation: the next question is sent with it.")
    if finished and actions.on_rerun is not None:
        row.button("Run again", key=f"resubmit-{view.task_id}", icon=":material/replay:", on_click=actions.on_rerun,
                   type="tertiary", help="The same prompt with the same settings, as a new task.")
    if finished and view.text:
        with row:
            copy_answer(view.text, key=f"copy-{view.task_id}")
    if finished and actions.on_dismiss is not None:
        row.button("Dismiss", key=f"dismiss-{view.task_id}", icon=":material/close:", on_click=actions.on_dismiss,
                   type="tertiary")


# --- nodes ----------------------------------------------------------------------------

def _node_title(node: NodeSnapshot) -> str:
    badge = fmt.node_state_badge(node.healthy, node.circuit, node.last_seen, node.last_error)
    kind = ":violet-badge[GPU]" if node.gpu else ":gray-badge[CPU only]"
    local = " :blue-badge[this machine]" if node.local else ""
    simulated = " :orange-badge[:material/science: simulated]" if fmt.is_simulated(node.version) else ""
    return f"#### {fmt.md_escape(node.name)}\n{badge} {kind}{local}{simulated}"


def node_refusal_line(node: NodeSnapshot, now: float | None = None) -> str:
    """What the node's answers taught the router (401, 429, 404), in one line; "" when nothing."""
    parts = []
    if node.refuses_credentials:
        parts.append("Refuses Hydra's credentials (HTTP 401/403): no work goes there until it accepts them.")
    if node.backed_off_until is not None and node.backed_off_until > (time.time() if now is None else now):
        parts.append(f"Asked to back off (HTTP 429): no new work until {fmt.fmt_clock(node.backed_off_until)}.")
    if node.missing_models:
        parts.append(f"Said it lacks {', '.join(node.missing_models)} (HTTP 404): not sent there until its list changes.")
    return " ".join(parts)


def node_card(node: NodeSnapshot, *, monitoring: bool = True) -> None:
    """Everything the router knows of one node."""
    with st.container(border=True, key=f"node-{node.name}"):
        st.markdown(_node_title(node))
        version = f" · Ollama {fmt.md_escape(node.version)}" if node.version else ""  # the node says what it is
        capability = f"models up to {fmt.fmt_params(node.max_model_b)}" if node.max_model_b else "capability not declared"
        simulated = " (simulated by hydra.sim)" if fmt.is_simulated(node.version) else ""
        st.caption(f"`{redact_url(node.url)}`{version}{simulated} · {capability} · "
                   f"{fmt.plural(node.slots, 'slot')} · last seen {fmt.fmt_age(node.last_seen)}")
        if node.last_error:
            (st.error if not node.healthy else st.caption)(f"Last error: {safe_markdown(node.last_error)}")
        if line := node_refusal_line(node):
            st.warning(safe_markdown(line), icon=":material/block:")  # names models the node reported

        c1, c2 = st.columns(2)
        c1.metric("In flight / slots", f"{node.in_flight} / {node.slots}")
        c2.metric("Success rate", fmt.fmt_pct(node.success_rate), help=f"{node.successes} ok, {node.failures} "
                  f"failed of {fmt.plural(node.requests, 'request')}")
        c3, c4 = st.columns(2)
        c3.metric("TTFT p50 / p95", f"{fmt.fmt_seconds(node.ttft_p50_s)} / {fmt.fmt_seconds(node.ttft_p95_s)}",
                  help="Time to first token, median and 95th percentile (cold loads included).")
        c4.metric("Speed", fmt.fmt_rate(node.tokens_per_s), help="Generation speed: eval_count / eval_duration.")

        _vram(node, monitoring)
        _models(node)


def _vram(node: NodeSnapshot, monitoring: bool) -> None:
    if not node.gpu:
        st.caption(":material/memory: CPU-only node: models run in system memory, no VRAM to watch.")
        return
    if node.vram_total_mb:
        used = node.vram_used_mb or 0
        free = node.vram_free_mb if node.vram_free_mb is not None else node.vram_total_mb - used
        st.progress(min(1.0, used / node.vram_total_mb),
                    text=f"VRAM {fmt.fmt_mb(used)} / {fmt.fmt_mb(node.vram_total_mb)} used · {fmt.fmt_mb(free)} free")
    else:
        st.caption(":material/memory: GPU node; total VRAM unknown (declare `vram_mb` to see free memory).")
    if node.vram_low and monitoring:
        st.warning("Free VRAM is below SOLLOL_MIN_VRAM_MB: this node takes no new large model loads.",
                   icon=":material/memory_alt:")


def _models(node: NodeSnapshot) -> None:
    if node.loaded:
        loaded = pd.DataFrame([{"Loaded model": m.name, "Size": fmt.fmt_bytes(m.size_bytes),
                                "In VRAM": fmt.fmt_bytes(m.size_vram_bytes) if m.size_vram_bytes else "—"}
                               for m in node.loaded])
        st.dataframe(loaded, hide_index=True)
    else:
        st.caption("No model loaded right now.")
    with st.expander(f"Installed models ({len(node.installed)})"):
        if node.installed:
            st.dataframe(pd.DataFrame([{"Model": m.name, "Parameters": fmt.fmt_params(m.size_b),
                                        "Size": fmt.fmt_bytes(m.size_bytes), "Quantization": m.quantization}
                                       for m in node.installed]), hide_index=True)
        else:
            st.caption("None reported (yet).")
