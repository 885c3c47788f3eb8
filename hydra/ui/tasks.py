"""The tasks page: the prompt form, the live task cards and recent history.

The live cards are one ``st.fragment`` that polls ``handle.view()`` (a
non-blocking copy) every ``ACTIVE_EVERY`` seconds while a task is queued or
running, and every ``IDLE_EVERY`` seconds otherwise (so tasks submitted from
another browser or the gateway still show up). When a task starts or ends,
the fragment reruns the whole page once, so the polling rate and the history
table follow.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import streamlit as st

from hydra.service import Hydra
from hydra.sollol import TaskHandle, TaskView
from hydra.sollol.errors import HydraError
from hydra.sollol.types import RoutingMode
from hydra.ui import formatting as fmt
from hydra.ui import tables
from hydra.ui.cards import task_card
from hydra.ui.safe_markdown import safe_markdown

ACTIVE_EVERY = 0.5    # seconds between refreshes while tokens stream
IDLE_EVERY = 5.0
MAX_FINISHED = 6      # finished cards kept on screen (newest); older ones are in history
PER_ROW = 3
_DISMISSED = "tasks_dismissed"
_FLASH = "tasks_flash"
_ACTIVE = "tasks_live_active"  # ids of the unfinished tasks the last full run saw


# --- messages that survive the rerun after a callback ----------------------------------

def flash(kind: str, text: str) -> None:
    st.session_state.setdefault(_FLASH, []).append((kind, text))


def show_flash() -> None:
    for kind, text in st.session_state.pop(_FLASH, []):
        getattr(st, kind)(safe_markdown(text))  # may quote a node's error


def _guarded(action: Callable[[], Any], failure: str) -> Callable[[], None]:
    def run() -> None:
        try:
            action()
        except HydraError as exc:
            flash("error", f"{failure}: {exc}")
    return run


# --- the prompt form ------------------------------------------------------------------

def submit_form(hydra: Hydra) -> None:
    models = ["auto", *hydra.models()]
    if st.session_state.get("model") not in models:
        st.session_state["model"] = "auto"
    default_mode = hydra.settings.default_mode
    with st.form("submit", border=True):
        st.text_area("Prompt", key="prompt", height=110,
                     placeholder="Ask anything, e.g. Generate a Python function that checks whether a string "
                                 "is a palindrome. With “Batch”, each line is its own task.")
        c1, c2, c3, c4, c5 = st.columns([1, 1.4, 1.2, 1.3, 1])
        c1.selectbox("Task type", fmt.TASK_TYPE_OPTIONS, key="task_type",
                     help="auto: classify the prompt (code, reasoning, math or general).")
        c2.selectbox("Model", models, key="model",
                     format_func=lambda m: "auto (tier selection)" if m == "auto" else m,
                     help="auto picks the first model of the task type's tier that a node can serve.")
        c3.selectbox("Routing mode", ["default", *(m.value for m in RoutingMode)], key="mode",
                     format_func=lambda m: f"default ({default_mode.value})" if m == "default" else m,
                     help="\n\n".join(fmt.mode_label(m) for m in RoutingMode))
        c4.slider("Priority", 1, 10, 5, key="priority", help="10 is most urgent; waiting tasks age upwards.")
        c5.number_input("Max tokens", min_value=1, value=None, step=64, key="max_tokens",
                        placeholder="default", help="Longest answer, in tokens (empty: the model's default).")
        left, right = st.columns([3, 1], vertical_alignment="center")
        left.toggle("Batch: one task per line", key="batch")
        right.form_submit_button("Run", key="run", type="primary", icon=":material/send:", width="stretch",
                                 on_click=_submit, args=(hydra,))


def _submit(hydra: Hydra) -> None:
    state = st.session_state
    prompts = fmt.split_batch(state.get("prompt"), state.get("batch", False))
    if not prompts:
        flash("warning", "Type a prompt first.")
        return
    submitted, errors = 0, []
    for prompt in prompts:
        try:
            hydra.submit(prompt,
                         task_type=None if state.get("task_type", "auto") == "auto" else state["task_type"],
                         model=None if state.get("model", "auto") == "auto" else state["model"],
                         mode=None if state.get("mode", "default") == "default" else state["mode"],
                         priority=int(state.get("priority", 5)),
                         max_tokens=int(state["max_tokens"]) if state.get("max_tokens") else None,
                         source="ui")
            submitted += 1
        except HydraError as exc:
            errors.append(f"“{fmt.one_line(prompt, 50)}”: {exc}")
    if submitted:
        state["prompt"] = ""
    if errors:
        flash("error", "Not submitted:\n\n" + "\n\n".join(f"- {e}" for e in errors))


# --- live task cards ---------------------------------------------------------------------

def _shown(hydra: Hydra) -> list[tuple[TaskHandle, TaskView]]:
    """(handle, view) pairs to draw: every active task plus the newest finished ones, oldest first."""
    dismissed = st.session_state.get(_DISMISSED, set())
    active: list[tuple[TaskHandle, TaskView]] = []
    finished: list[tuple[TaskHandle, TaskView]] = []
    for handle in hydra.tasks(limit=50):
        if handle.id in dismissed:
            continue
        view = handle.view()
        (finished if fmt.value_of(view.status) in fmt.TERMINAL else active).append((handle, view))
    shown = active + finished[:MAX_FINISHED]
    shown.sort(key=lambda hv: hv[1].submitted_at)
    return shown


def live_tasks(hydra: Hydra) -> None:
    """The cards, refreshed by a fragment whose rate follows whether anything runs."""
    active = frozenset(h.id for h in hydra.tasks(limit=50) if not h.done())
    st.session_state[_ACTIVE] = active
    st.fragment(run_every=ACTIVE_EVERY if active else IDLE_EVERY)(_live_panel)(hydra)


def _live_panel(hydra: Hydra) -> None:
    shown = _shown(hydra)
    active = frozenset(v.task_id for _, v in shown if fmt.value_of(v.status) not in fmt.TERMINAL)
    if active != st.session_state.get(_ACTIVE, frozenset()):
        # A task started or ended since the last full run: rerun the page once, so the
        # polling rate and the history table follow.
        st.session_state[_ACTIVE] = active
        st.rerun()
    if not shown:
        st.caption("No tasks yet. Submit one above; several run at once, side by side.")
        return
    head, button = st.columns([4, 1], vertical_alignment="center")
    running = sum(fmt.value_of(v.status) == "running" for _, v in shown)
    queued = sum(fmt.value_of(v.status) == "queued" for _, v in shown)
    head.caption(f"{running} running · {queued} queued · {len(shown) - running - queued} finished")
    if len(shown) > running + queued:
        button.button("Clear finished", key="clear_finished", icon=":material/clear_all:", type="tertiary",
                      on_click=_dismiss, args=([v.task_id for _, v in shown
                                                if fmt.value_of(v.status) in fmt.TERMINAL],))
    for start in range(0, len(shown), PER_ROW):
        columns = st.columns(PER_ROW)
        for column, (handle, view) in zip(columns, shown[start:start + PER_ROW], strict=False):
            with column:
                task_card(view, assessment=handle.assessment, on_cancel=handle.cancel,
                          on_dismiss=partial(_dismiss, [view.task_id]),
                          on_resubmit=_guarded(partial(hydra.resubmit, view.task_id), "Resubmit failed"))


def _dismiss(task_ids: list[str]) -> None:
    st.session_state.setdefault(_DISMISSED, set()).update(task_ids)


# --- history ---------------------------------------------------------------------------------

def history(hydra: Hydra, limit: int = 50) -> None:
    rows = hydra.history.recent_tasks(limit=limit)
    if not rows:
        st.caption("Nothing yet: finished tasks are kept here, across restarts.")
        return
    st.dataframe(tables.history_frame(rows), hide_index=True, column_config=tables.HISTORY_COLUMNS,
                 height=min(420, 38 + 35 * len(rows)))
    retry = [r for r in rows if r.get("status") in fmt.RESUBMITTABLE][:5]
    if retry:
        st.markdown("**Interrupted or failed**")
        for row in retry:
            text, button = st.columns([6, 1], vertical_alignment="center")
            reason = f" — {fmt.md_escape(fmt.one_line(row.get('error'), 90))}" if row.get("error") else ""
            text.markdown(f"{fmt.status_badge(row['status'])} {fmt.md_escape(fmt.one_line(row['prompt'], 70))}"
                          f"{reason}")
            button.button("Resubmit", key=f"history-resubmit-{row['id']}", icon=":material/replay:",
                          on_click=_guarded(partial(hydra.resubmit, row["id"]), "Resubmit failed"))
    with st.expander("Read a past answer"):
        by_id = {r["id"]: r for r in rows}
        if st.session_state.get("history_pick") not in by_id:
            st.session_state.pop("history_pick", None)
        picked = st.selectbox("Task", list(by_id), key="history_pick",
                              format_func=lambda tid: f"{fmt.fmt_when(by_id[tid]['submitted_at'])} · "
                                                      f"{by_id[tid]['status']} · {fmt.one_line(by_id[tid]['prompt'], 70)}")
        choice = by_id.get(picked)
        if choice:
            st.caption(fmt.task_meta(choice.get("node"), choice.get("model"), choice.get("mode"),
                                     choice.get("task_type"), choice.get("priority")))
            if choice.get("thinking"):
                st.markdown("**Thinking**")  # expanders do not nest
                with st.container(height=200, border=True):
                    st.markdown(safe_markdown(choice["thinking"]))
            st.markdown(safe_markdown(choice.get("text")) or "_No answer recorded._")
            if choice.get("error"):
                st.error(safe_markdown(choice["error"]))
