"""Conversations: any task followed up as a chat thread that sends its whole history as ``messages``.

A thread is the list of its turns' task ids, oldest first, kept in the browser session. Each
follow-up is an ordinary task whose ``messages`` are the previous turn's messages, its answer and
the new question, so the first turns of every follow-up are the same bytes as the turn before:
a node that kept that prefix in its cache (issue 12 routes follow-ups there) reuses it. A turn
runs with the settings of the one before it (the model that answered it, mode, priority, answer
cap, temperature); the system prompt travels as the thread's first message.

The pure part (``TurnSource``, ``thread_messages``, ``follow_up_messages``) has no streamlit in
it; ``thread_panel`` draws the open thread.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from hydra.service import Hydra
from hydra.sollol import TaskHandle
from hydra.sollol.errors import HydraError
from hydra.ui import formatting as fmt
from hydra.ui.answer import render_answer
from hydra.ui.safe_markdown import safe_markdown

THREAD = "conversation:thread"        # session key: task ids of the open thread, oldest first
_TEXT = "conversation:text"
_FLASH = "conversation:flash"


@dataclass(frozen=True)
class TurnSource:
    """What a follow-up needs of one task, from its live handle or its history row."""

    task_id: str
    prompt: str
    messages: tuple[Mapping[str, Any], ...]
    system: str | None
    answer: str
    status: str
    node: str | None = None
    model_ran: str | None = None
    model_asked: str | None = None
    mode: str | None = None
    priority: int = 5
    max_tokens: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def question(self) -> str:
        """This turn's own question: the prompt, or the last user message."""
        if self.prompt:
            return self.prompt
        return next((str(m.get("content") or "") for m in reversed(self.messages) if m.get("role") == "user"), "")


def source_of(hydra: Hydra, task_id: str) -> TurnSource | None:
    handle = hydra.handle(task_id)
    if handle is not None:
        return _from_handle(handle)
    row = hydra.history.get_task(task_id)
    return _from_row(row) if row is not None else None


def _from_handle(handle: TaskHandle) -> TurnSource:
    task, view = handle.task, handle.view()
    return TurnSource(task_id=task.id, prompt=task.prompt, messages=tuple(task.messages or ()), system=task.system,
                      answer=view.text, status=fmt.value_of(view.status), node=view.node, model_ran=view.model,
                      model_asked=task.model, mode=fmt.value_of(task.mode) or None, priority=task.priority,
                      max_tokens=task.max_tokens, options=dict(task.options or {}))


def _from_row(row: Mapping[str, Any]) -> TurnSource:
    options = row.get("options") or {}
    return TurnSource(task_id=row["id"], prompt=row.get("prompt") or "", messages=tuple(row.get("messages") or ()),
                      system=options.get("system"), answer=row.get("text") or "", status=row.get("status") or "",
                      node=row.get("node"), model_ran=row.get("model"), model_asked=options.get("model"),
                      mode=options.get("mode"), priority=int(row.get("priority") or 5),
                      max_tokens=options.get("max_tokens"), options=options.get("options") or {})


def thread_messages(source: TurnSource) -> list[dict[str, Any]]:
    """The conversation up to and including ``source``'s answer, as Ollama's chat messages."""
    if source.messages:
        messages = [dict(m) for m in source.messages]
        if source.system and not any(m.get("role") == "system" for m in messages):
            messages.insert(0, {"role": "system", "content": source.system})
    else:
        messages = [{"role": "system", "content": source.system}] if source.system else []
        messages.append({"role": "user", "content": source.prompt})
    messages.append({"role": "assistant", "content": source.answer})
    return messages


def follow_up_messages(source: TurnSource, question: str) -> list[dict[str, Any]]:
    return [*thread_messages(source), {"role": "user", "content": question}]


def can_follow_up(status: str, answer: str) -> bool:
    """A finished turn with an answer to continue from."""
    return status in fmt.TERMINAL and bool(answer.strip())


def follow_up(hydra: Hydra, source: TurnSource, question: str) -> TaskHandle:
    """Submit the next turn of ``source``'s conversation, with its settings. The model that answered
    answers again (the conversation stays one voice, and a node that cached its prefix can reuse it)."""
    return hydra.submit("", messages=follow_up_messages(source, question),
                        model=source.model_asked or source.model_ran,
                        mode=source.mode, priority=source.priority,
                        max_tokens=source.max_tokens or hydra.settings.max_tokens, options=dict(source.options),
                        source="ui")


# --- the session's open thread -------------------------------------------------------------

def open_thread(task_id: str) -> None:
    """Follow up ``task_id``: continue the open thread if it is one of its turns (from there), else start one."""
    thread: list[str] = st.session_state.get(THREAD) or []
    st.session_state[THREAD] = thread[:thread.index(task_id) + 1] if task_id in thread else [task_id]
    st.session_state.pop(_TEXT, None)


def close_thread() -> None:
    st.session_state.pop(THREAD, None)


def thread_ids() -> list[str]:
    return list(st.session_state.get(THREAD) or [])


def thread_active(hydra: Hydra) -> bool:
    """Whether the open thread's last turn is still queued or running (the panel then polls)."""
    ids = thread_ids()
    handle = hydra.handle(ids[-1]) if ids else None
    return handle is not None and not handle.done()


def thread_panel(hydra: Hydra) -> None:
    """The open thread: every turn with the model and node that answered it, then the follow-up box."""
    ids = thread_ids()
    if not ids:
        return
    sources = [s for s in (source_of(hydra, tid) for tid in ids) if s is not None]
    if not sources:
        close_thread()
        return
    with st.container(border=True, key="conversation"):
        head, close = st.columns([5, 1], vertical_alignment="center")
        head.markdown(f"#### :material/forum: Conversation · {fmt.plural(len(sources), 'turn')}")
        close.button("Close", key="conversation:close", icon=":material/close:", type="tertiary",
                     on_click=close_thread)
        first = sources[0]
        earlier = [m for m in thread_messages(first)[:-1] if m.get("role") != "system"][:-1]
        if first.system or any(m.get("role") == "system" for m in first.messages):
            system = first.system or next(str(m.get("content") or "") for m in first.messages
                                          if m.get("role") == "system")
            st.caption(f":material/settings: System prompt: {fmt.md_escape(fmt.one_line(system, 200))}")
        if earlier:
            with st.expander(f"Earlier messages ({len(earlier)}), sent by the client with the first turn"):
                for message in earlier:
                    st.markdown(f"**{fmt.md_escape(str(message.get('role')))}:** "
                                f"{safe_markdown(str(message.get('content') or ''))}")
        st.fragment(run_every=0.5 if thread_active(hydra) else None)(_turns)(hydra, ids)
        _follow_up_form(hydra)


def _turns(hydra: Hydra, ids: list[str]) -> None:
    for source in (s for s in (source_of(hydra, tid) for tid in ids) if s is not None):
        with st.chat_message("user"):
            st.markdown(safe_markdown(source.question))
        with st.chat_message("assistant"):
            render_answer(source.answer, placeholder="_Waiting for the answer…_")
            where = fmt.task_meta(source.node, source.model_ran, source.mode, None, None)
            st.caption(f"{fmt.status_badge(source.status)} {where}")


def _follow_up_form(hydra: Hydra) -> None:
    with st.form("conversation:form", border=False):
        st.text_area("Follow up", key=_TEXT, height=80, placeholder="Ask a follow-up question…",
                     help="Sent with the whole conversation so far. Ctrl+Enter (⌘+Enter) sends.")
        st.form_submit_button("Send", key="conversation:send", type="primary", icon=":material/send:",
                              on_click=_send, args=(hydra,))
    for kind, text in st.session_state.pop(_FLASH, []):
        getattr(st, kind)(safe_markdown(text))


def _send(hydra: Hydra) -> None:
    state = st.session_state
    question = (state.get(_TEXT) or "").strip()
    ids = thread_ids()
    last = source_of(hydra, ids[-1]) if ids else None
    if not question or last is None:
        state[_FLASH] = [("warning", "Type a follow-up question first.")]
        return
    if last.status not in fmt.TERMINAL:
        state[_FLASH] = [("warning", "The last answer is still coming; send once it has finished.")]
        return
    try:
        handle = follow_up(hydra, last, question)
    except HydraError as exc:
        state[_FLASH] = [("error", f"Not sent: {exc}")]  # the question stays in the box
        return
    state[THREAD] = [*ids, handle.id]
    state[_TEXT] = ""
