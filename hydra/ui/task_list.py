"""The tasks page below the form: the live task cards, newest first, and the history of past tasks.

The live cards are one ``st.fragment`` that polls ``handle.view()`` (a non-blocking copy) every
``ACTIVE_EVERY`` seconds while a task is queued or running, and every ``IDLE_EVERY`` seconds
otherwise (so tasks submitted from another browser or the gateway still show up). When a task
starts or ends, the fragment reruns the whole page once, so the polling rate and the history
table follow.

"Clear finished" hides every task finished at the click (and none that was still running); the
moment is kept in the session and in the page's URL (``?cleared=``), so it outlives a reload.
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from functools import partial

import streamlit as st

from hydra.service import Hydra
from hydra.sollol import TaskHandle, TaskView
from hydra.ui import conversation, tables
from hydra.ui import formatting as fmt
from hydra.ui.answer import render_answer
from hydra.ui.cards import TaskActions, task_card
from hydra.ui.safe_markdown import safe_markdown
from hydra.ui.tasks import guarded

ACTIVE_EVERY = 0.5    # seconds between refreshes while tokens stream
IDLE_EVERY = 5.0
MAX_FINISHED = 6      # finished cards kept on screen (newest); older ones are in history
PER_ROW = 3
_DISMISSED = "tasks_dismissed"
_CLEARED = "tasks_cleared_at"   # wall clock of the last "Clear finished"
_KEPT = "tasks_kept"            # tasks still unfinished at that click: they stay when they end
_ACTIVE = "tasks_live_active"   # ids of the unfinished tasks the last full run saw
_THREAD_SEEN = "tasks_thread_seen"  # the open conversation the last full run drew
CLEARED_PARAM = "cleared"


def pick_shown(views: Iterable[TaskView], *, dismissed: set[str], cleared_at: float | None, kept: set[str],
               max_finished: int = MAX_FINISHED) -> list[TaskView]:
    """The cards to draw, newest first: every unfinished task, and the newest finished ones that were
    neither dismissed nor cleared (cleared: submitted before the click and not running at it)."""
    active: list[TaskView] = []
    finished: list[TaskView] = []
    for view in sorted(views, key=lambda v: v.submitted_at, reverse=True):
        if fmt.value_of(view.status) not in fmt.TERMINAL:
            active.append(view)
        elif view.task_id not in dismissed and (cleared_at is None or view.submitted_at > cleared_at
                                                 or view.task_id in kept):
            finished.append(view)
    return sorted(active + finished[:max_finished], key=lambda v: v.submitted_at, reverse=True)


def cleared_at() -> float | None:
    """The last "Clear finished" of this session, or of the URL after a reload."""
    state = st.session_state
    if _CLEARED not in state:
        try:
            state[_CLEARED] = float(st.query_params.get(CLEARED_PARAM, ""))
        except ValueError:  # no parameter, or one typed by hand that is no number
            state[_CLEARED] = None
    if state[_CLEARED] is not None and st.query_params.get(CLEARED_PARAM) is None:
        st.query_params[CLEARED_PARAM] = f"{state[_CLEARED]:.3f}"  # back in the URL after another page
    return state[_CLEARED]


def _clear_finished(unfinished: list[str]) -> None:
    now = time.time()
    st.session_state[_CLEARED] = now
    st.session_state[_KEPT] = set(unfinished)
    st.query_params[CLEARED_PARAM] = f"{now:.3f}"


def _dismiss(task_ids: list[str]) -> None:
    st.session_state.setdefault(_DISMISSED, set()).update(task_ids)


def _shown(hydra: Hydra) -> list[tuple[TaskHandle, TaskView]]:
    handles = {h.id: h for h in hydra.tasks(limit=50)}
    views = pick_shown((h.view() for h in handles.values()), dismissed=st.session_state.get(_DISMISSED, set()),
                       cleared_at=cleared_at(), kept=st.session_state.get(_KEPT, set()))
    return [(handles[v.task_id], v) for v in views]


def live_tasks(hydra: Hydra) -> None:
    """The cards, refreshed by a fragment whose rate follows whether anything runs."""
    active = frozenset(h.id for h in hydra.tasks(limit=50) if not h.done())
    st.session_state[_ACTIVE] = active
    st.session_state[_THREAD_SEEN] = tuple(conversation.thread_ids())
    cleared_at()  # read the URL's ?cleared= in the full run (a fragment may not change the URL's first read)
    st.fragment(run_every=ACTIVE_EVERY if active else IDLE_EVERY)(_live_panel)(hydra)


def _live_panel(hydra: Hydra) -> None:
    shown = _shown(hydra)
    active = frozenset(v.task_id for _, v in shown if fmt.value_of(v.status) not in fmt.TERMINAL)
    if active != st.session_state.get(_ACTIVE, frozenset()):
        # A task started or ended since the last full run: rerun the page once, so the
        # polling rate and the history table follow.
        st.session_state[_ACTIVE] = active
        st.rerun()
    if tuple(conversation.thread_ids()) != st.session_state.get(_THREAD_SEEN):
        # "Follow up" on a card (a click inside this fragment reruns only the fragment): the
        # conversation panel above is outside it, so the page reruns once to draw it.
        st.rerun()
    if not shown:
        st.caption("No tasks yet. Submit one above; several run at once, side by side, the newest first."
                   if cleared_at() is None else "Finished tasks cleared; they are in the history below.")
        return
    head, button = st.columns([4, 1], vertical_alignment="center")
    running = sum(fmt.value_of(v.status) == "running" for _, v in shown)
    queued = sum(fmt.value_of(v.status) == "queued" for _, v in shown)
    head.caption(f"{running} running · {queued} queued · {len(shown) - running - queued} finished · newest first")
    if len(shown) > running + queued:
        button.button("Clear finished", key="clear_finished", icon=":material/clear_all:", type="tertiary",
                      on_click=_clear_finished, args=(sorted(active),))
    for start in range(0, len(shown), PER_ROW):
        columns = st.columns(PER_ROW)
        for column, (handle, view) in zip(columns, shown[start:start + PER_ROW], strict=False):
            with column:
                task_card(view, assessment=handle.assessment, system=handle.task.system, turns=_turns_of(handle),
                          title=tables.row_prompt({"prompt": handle.task.prompt, "messages": handle.task.messages}),
                          actions=_actions(hydra, handle, view))


def _turns_of(handle: TaskHandle) -> int:
    """How many user turns the task's conversation holds (1 for a lone prompt)."""
    return max(1, sum(1 for m in handle.task.messages or () if m.get("role") == "user"))


def _actions(hydra: Hydra, handle: TaskHandle, view: TaskView) -> TaskActions:
    follow = (partial(conversation.open_thread, view.task_id)
              if conversation.can_follow_up(fmt.value_of(view.status), view.text) else None)
    return TaskActions(on_cancel=handle.cancel, on_dismiss=partial(_dismiss, [view.task_id]),
                       on_rerun=guarded(partial(hydra.resubmit, view.task_id, source="ui"), "Run again failed"),
                       on_follow_up=follow)


# --- history ---------------------------------------------------------------------------------

def _live_statuses(hydra: Hydra, rows: Sequence[dict]) -> dict[str, str]:
    """The status each kept handle has now: a row written a moment ago may lag behind it."""
    out = {}
    for row in rows:
        handle = hydra.handle(row["id"])
        if handle is not None:
            out[row["id"]] = fmt.value_of(handle.status)
    return out


def history(hydra: Hydra, limit: int = 50) -> None:
    rows = hydra.history.recent_tasks(limit=limit)
    if not rows:
        st.caption("Nothing yet: finished tasks are kept here, across restarts.")
        return
    st.dataframe(tables.history_frame(rows, _live_statuses(hydra, rows)), hide_index=True,
                 column_config=tables.HISTORY_COLUMNS, column_order=tables.HISTORY_ORDER,
                 height=min(420, 38 + 35 * len(rows)), key="history-table")
    retry = [r for r in rows if r.get("status") in fmt.RESUBMITTABLE][:5]
    if retry:
        st.markdown("**Interrupted or failed**")
        for row in retry:
            text, button = st.columns([6, 1], vertical_alignment="center")
            reason = f" — {fmt.md_escape(fmt.one_line(row.get('error'), 90))}" if row.get("error") else ""
            text.markdown(f"{fmt.status_badge(row['status'])} {fmt.md_escape(fmt.one_line(tables.row_prompt(row), 70))}"
                          f"{reason}")
            button.button("Run again", key=f"history-resubmit-{row['id']}", icon=":material/replay:",
                          on_click=guarded(partial(hydra.resubmit, row["id"], source="ui"), "Run again failed"))
    with st.expander("Read a past answer"):
        _past_answer(hydra, rows)


def _past_answer(hydra: Hydra, rows: list[dict]) -> None:
    by_id = {r["id"]: r for r in rows}
    if st.session_state.get("history_pick") not in by_id:
        st.session_state.pop("history_pick", None)
    picked = st.selectbox("Task", list(by_id), key="history_pick",
                          format_func=lambda tid: f"{fmt.fmt_when(by_id[tid]['submitted_at'])} · "
                                                  f"{by_id[tid]['status']} · {fmt.one_line(tables.row_prompt(by_id[tid]), 70)}")
    choice = by_id.get(picked)
    if not choice:
        return
    st.caption(fmt.task_meta(choice.get("node"), choice.get("model"), choice.get("mode"),
                             choice.get("task_type"), choice.get("priority")))
    if choice.get("thinking"):
        st.markdown("**Thinking**")  # expanders do not nest
        with st.container(height=200, border=True):
            st.markdown(safe_markdown(choice["thinking"]))
    render_answer(choice.get("text") or "", placeholder="_No answer recorded._")
    if choice.get("error"):
        st.error(safe_markdown(choice["error"]))
    row = st.container(horizontal=True, gap="small")
    row.button("Run again", key=f"history-rerun-{choice['id']}", icon=":material/replay:", type="tertiary",
               help="The same prompt with the same settings, as a new task.",
               on_click=guarded(partial(hydra.resubmit, choice["id"], source="ui"), "Run again failed"))
    if conversation.can_follow_up(choice.get("status") or "", choice.get("text") or ""):
        row.button("Follow up", key=f"history-follow-{choice['id']}", icon=":material/forum:", type="tertiary",
                   on_click=conversation.open_thread, args=(choice["id"],))
