"""Task intake: a caller's request made into a Task and handed to the Router with its history row.

The prompt is classified here, once (the Router then trusts ``task_type``), because the reasoning
engine needs the type too; the reasoning engine decides thinking and its budget. A task history
cannot record is refused, never run without its row. The recent interactive handles are kept for
the pages. ``hydra.service.Hydra`` owns one and delegates its task methods to it.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from hydra import reasoning, tiers
from hydra.config import Settings
from hydra.history import History, HistoryUnavailableError
from hydra.history.recorder import EventWriter, PendingRow
from hydra.sollol import Router, Task, TaskError, TaskHandle, validation
from hydra.sollol.errors import HydraError
from hydra.task_counts import DEFAULT_SOURCE, check_source

KEPT_HANDLES = 200
QUEUED_COMMIT_WAIT_S = 30.0  # submit() returns once the task's row is committed; past this, it refuses the task


class TaskIntake:
    """Builds, submits and records tasks for one service; ``settings`` is read at every task (they change)."""

    def __init__(self, router: Router, history: History, recorder: EventWriter,
                 settings: Callable[[], Settings]) -> None:
        self._router = router
        self._history = history
        self._recorder = recorder
        self._settings = settings
        self._lock = threading.Lock()  # _handles
        self._handles: OrderedDict[str, TaskHandle] = OrderedDict()

    def submit(self, prompt: str = "", **fields: Any) -> TaskHandle:
        """Hydra.submit: returns once history has the task's row."""
        task = self.build(prompt, **fields)
        handle, pending = self._start_recorded(task)
        return self._recorded(handle, pending.wait(QUEUED_COMMIT_WAIT_S), keep=not task.background)

    async def asubmit(self, prompt: str = "", **fields: Any) -> TaskHandle:
        """Hydra.asubmit: the wait for the row takes no thread."""
        task = self.build(prompt, **fields)
        handle, pending = self._start_recorded(task)
        try:
            error = await pending.settled(QUEUED_COMMIT_WAIT_S)
        except BaseException:  # cancelled (its request is gone): nobody will read this task
            handle.cancel()
            raise
        return self._recorded(handle, error, keep=not task.background)

    def build(self, prompt: str = "", *, task_type: str | None = None, model: str | None = None,
              mode: str | None = None, priority: int = 5, max_tokens: int | None = None,
              think: bool | str | None = None, messages: list[dict[str, Any]] | None = None,
              source: str = DEFAULT_SOURCE, **task_fields: Any) -> Task:
        """The Task of one submit: classified, assessed, its thinking and budget decided."""
        check_source(source)
        _check_shape(prompt, messages)  # the classifier and the reasoning engine read them before Task.validate
        text = prompt or _last_user_text(messages)
        kind = task_type or (tiers.classify(text) if text.strip() else "general")
        settings = self._settings()
        assessment = reasoning.assess(text, kind, reasoning.ReasoningSettings.from_settings(settings), model=model)
        if think is None:
            think = assessment.think
        # A caller who asks for thinking gets a budget even when the assessment would not think.
        budget = (assessment.budget or settings.max_thinking_tokens) if think else None
        return Task(prompt=prompt, messages=messages, task_type=kind, model=model or None, mode=mode or None,
                    priority=priority, max_tokens=max_tokens, think=think,
                    thinking_budget=budget,
                    meta={"assessment": assessment, "reasoning": _assessment_record(assessment),
                          "requested_task_type": task_type, "source": source}, **task_fields)

    def embed(self, texts: str | list[str], *, model: str, mode: str | None = None, priority: int = 5,
              source: str = DEFAULT_SOURCE, **task_fields: Any) -> TaskHandle:
        """Hydra.embed: no classifier or reasoning engine, there is no prompt to read."""
        task = Task(input=[texts] if isinstance(texts, str) else texts, task_type="embedding", model=model,
                    mode=mode or None, priority=priority, meta={"source": check_source(source)}, **task_fields)
        handle, pending = self._start_recorded(task)
        return self._recorded(handle, pending.wait(QUEUED_COMMIT_WAIT_S))

    def resubmit(self, task_id: str, source: str = DEFAULT_SOURCE) -> TaskHandle:
        """The task of history's row ``task_id`` submitted again, as a new task."""
        row = self._history.get_task(task_id)
        if row is None:
            raise TaskError(f"no task {task_id} in history")
        options = row.get("options") or {}
        if options.get("task_type") == "embedding":
            return self.embed(options.get("input") or [], model=options.get("model") or "", mode=options.get("mode"),
                              priority=int(row.get("priority") or 5), truncate=options.get("truncate"),
                              dimensions=options.get("dimensions"), keep_alive=options.get("keep_alive"),
                              options=options.get("options") or {}, source=source)
        return self.submit(row.get("prompt") or "", task_type=options.get("task_type"),
                           model=options.get("model"), mode=options.get("mode"),
                           priority=int(row.get("priority") or 5), max_tokens=options.get("max_tokens"),
                           messages=row.get("messages"), format=options.get("format"),
                           keep_alive=options.get("keep_alive"), tools=options.get("tools"),
                           options=options.get("options") or {},
                           system=options.get("system"), source=source)

    def tasks(self, limit: int = 50) -> list[TaskHandle]:
        """The kept handles, newest first."""
        with self._lock:
            return list(self._handles.values())[:limit]

    def handle(self, task_id: str) -> TaskHandle | None:
        with self._lock:
            return self._handles.get(task_id)

    def _start_recorded(self, task: Task) -> tuple[TaskHandle, PendingRow]:
        """The router's submit; the writer commits the task's queued row meanwhile (``PendingRow``).
        A task history cannot record is refused (HistoryUnavailableError), never run without its row:
        at once while history is degraded, or cancelled when its own row fails (``_recorded``)."""
        self._history.require_writable(task.id)
        pending = self._recorder.expect(task.id)  # before submitting: the row may be written at once
        try:
            handle = self._router.submit(task)
        except BaseException:
            self._recorder.forget(task.id)
            raise
        return handle, pending

    def _recorded(self, handle: TaskHandle, error: HydraError | None, *, keep: bool = True) -> TaskHandle:
        """After the wait for its row: the handle, kept for the pages (not a batch row's, ``keep`` False: its
        batch shows it, and the Tasks page's live cards are for interactive work), or the refusal."""
        if error is not None:
            # Nobody has read a chunk of it yet (the handle is not returned); cancelling frees its node at once.
            handle.cancel()
            raise error.refusing(handle.id) if isinstance(error, HistoryUnavailableError) else error
        if not keep:
            return handle
        with self._lock:
            self._handles[handle.id] = handle
            self._handles.move_to_end(handle.id, last=False)
            while len(self._handles) > KEPT_HANDLES:
                self._handles.popitem(last=True)
        return handle


def _last_user_text(messages: list[dict[str, Any]] | None) -> str:
    # content is optional in Ollama's messages (null or absent): it reads as no text
    return next((m.get("content") or "" for m in reversed(messages or []) if m.get("role") == "user"), "")


def _assessment_record(a: reasoning.Assessment) -> dict[str, Any]:
    return {"score": a.score, "level": a.level, "think": a.think, "budget": a.budget,
            "model_override": a.model_override, "explanation": a.explanation,
            "reasons": [{"feature": r.feature, "points": r.points, "detail": r.detail} for r in a.reasons]}


def _check_shape(prompt: Any, messages: Any) -> None:
    """The prompt and messages as a caller's mistake (TaskError naming the field), not a crash inside
    the classifier; Task.validate checks every other field."""
    if not isinstance(prompt, str):
        raise TaskError(f"prompt must be a string, got {validation.kind(prompt)}")
    if messages is not None:
        try:
            validation.check_messages(messages)
        except validation.FieldError as exc:
            raise TaskError(str(exc)) from None
