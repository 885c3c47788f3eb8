"""A task's live state and the handle callers hold.

``TaskState`` is written by the scheduler, a worker and the watchdog; every
transition goes through its condition, and ``finish`` is the only way to a
terminal status, so a task ends exactly once (done / failed / cancelled /
interrupted). Chunks are kept so every ``stream()`` replays from the start:
a page that reloads sees the output so far.
"""
from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .errors import TaskTimeoutError
from .types import Chunk, FailureKind, RoutingDecision, RoutingMode, Task, TaskResult, TaskStatus, TaskView

_DEFAULT_FAILURE = {TaskStatus.FAILED: FailureKind.NODE_FAILED, TaskStatus.CANCELLED: FailureKind.CANCELLED,
                    TaskStatus.INTERRUPTED: FailureKind.INTERRUPTED}


@dataclass
class TaskState:
    task: Task
    mode: RoutingMode
    task_type: str
    submitted_mono: float = field(default_factory=time.monotonic)
    cond: threading.Condition = field(default_factory=threading.Condition, repr=False)
    status: TaskStatus = TaskStatus.QUEUED
    chunks: list[Chunk] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    thinking: list[str] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    excluded: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    attempt: int = 0                    # number of the current (or last) attempt
    restarts: int = 0
    node: str | None = None
    model: str | None = None
    decision: RoutingDecision | None = None
    started_mono: float | None = None   # first attempt bound to a node
    attempt_started: float | None = None
    first_token_mono: float | None = None
    last_progress: float | None = None
    finished_mono: float | None = None
    eval_count: int | None = None
    prompt_eval_count: int | None = None
    tokens_per_s: float | None = None
    thinking_tokens: int = 0
    notice: str = ""
    nodes: list[str] = field(default_factory=list)  # every node that delivered output, in order
    # Thinking tokens the current attempt repeats before it passes what earlier attempts already
    # streamed: a failover while thinking starts the thinking again, and readers must not see it twice.
    thinking_replay: int = 0
    carried_tokens: int = 0             # output tokens of earlier attempts (added to the last one's count)
    result_value: TaskResult | None = None
    embeddings: tuple[tuple[float, ...], ...] = ()  # an embedding task's answer (set_embeddings)
    waiting_since: float | None = None  # when the scheduler first found no place for it
    moved: bool = False                 # already moved once to a faster node (rebalance.py)
    # Called (outside the lock) each time a running attempt ends: frees the global concurrency slot.
    on_leave_running: Callable[[], None] | None = field(default=None, repr=False)
    # Cuts the current attempt's connection (set by its worker): a cancel, timeout or move frees the
    # node at once, even while the worker is blocked waiting for a first token.
    canceller: Callable[[], None] | None = field(default=None, repr=False)
    # Called under ``cond`` at every change (new chunk, bind, requeue, end): lets an asyncio reader
    # wait without a thread of its own (TaskHandle.astream). Each must be quick and never block.
    watchers: list[Callable[[], None]] = field(default_factory=list, repr=False)

    @property
    def id(self) -> str:
        return self.task.id

    @property
    def deadline_mono(self) -> float | None:
        return None if self.task.deadline is None else self.submitted_mono + self.task.deadline

    # --- transitions (called by the engine) ---

    def bind(self, node: str, model: str, decision: RoutingDecision) -> int | None:
        """Start a new attempt on ``node``; None when the task is no longer queued (cancelled, expired)."""
        with self.cond:
            if self.status is not TaskStatus.QUEUED:
                return None
            self.waiting_since = None
            self.attempt += 1
            self.status = TaskStatus.RUNNING
            self.node, self.model, self.decision = node, model, decision
            now = time.monotonic()
            self.started_mono = self.started_mono or now
            self.attempt_started = self.last_progress = now
            self.first_token_mono = None  # per attempt: the watchdog's first-token deadline applies again
            self.thinking_replay = 0 if self.text else len(self.thinking)
            # A continuation adds to what was generated before; a restarted thinking is counted again by the node.
            self.carried_tokens = len(self.text) + len(self.thinking) if self.text else 0
            self._changed()
            return self.attempt

    def set_canceller(self, attempt: int, cancel: Callable[[], None] | None) -> bool:
        """Register (or with None, drop) the way to cut ``attempt``; False when it no longer owns the task."""
        with self.cond:
            if not self.is_current(attempt):
                return False
            self.canceller = cancel
            return True

    def is_current(self, attempt: int) -> bool:
        return self.attempt == attempt and self.status is TaskStatus.RUNNING

    def add(self, attempt: int, text: str = "", thinking: str = "",
            tool_calls: tuple[dict[str, Any], ...] = ()) -> bool:
        """Append output of ``attempt``; False when that attempt no longer owns the task. Tool calls
        are output too: a chunk with only them is progress, and may be the first token."""
        with self.cond:
            if not self.is_current(attempt):
                return False
            now = time.monotonic()
            self.last_progress = now
            if self.first_token_mono is None and (text or thinking or tool_calls):
                self.first_token_mono = now
                if not self.nodes or self.nodes[-1] != self.node:
                    self.nodes.append(self.node or "")
            if text:
                self.thinking_replay = 0  # the answer began: nothing more of the thinking to pass over
            elif thinking and self.thinking_replay > 0:
                self.thinking_replay -= 1  # already streamed by an earlier attempt: progress, not output
                self._changed()
                return True
            if text:
                self.text.append(text)
            if thinking:
                self.thinking.append(thinking)
                self.thinking_tokens += 1
            tool_calls = tuple(tool_calls)
            self.tool_calls.extend(tool_calls)
            self.chunks.append(Chunk(text=text, thinking=thinking, tool_calls=tool_calls, node=self.node or "",
                                     model=self.model or ""))
            self._changed()
            return True

    def set_embeddings(self, attempt: int, vectors: tuple[tuple[float, ...], ...]) -> bool:
        """An embedding task's whole answer from ``attempt``; False when that attempt no longer owns the task.
        The answer is its first (and only) output: the node is recorded as having delivered it."""
        with self.cond:
            if not self.is_current(attempt):
                return False
            now = time.monotonic()
            self.last_progress = self.first_token_mono = now
            self.nodes.append(self.node or "")
            self.embeddings = vectors
            self._changed()
            return True

    def continuation(self) -> str:
        """The answer streamed so far, which the next attempt continues ("" when none was)."""
        with self.cond:
            return "".join(self.text)

    def requeue(self, attempt: int, failed_node: str, error: str, *, notice: str = "",
                moved: bool = False) -> bool:
        """Back to the queue after a node failure (or a move to a faster node: ``moved``); the node
        is excluded from now on. The output so far stays: the next attempt continues the answer
        (worker.py) or passes over the thinking already streamed, so every reader sees one answer;
        ``notice`` (a failover mid-answer) goes to the task's record, never into its text."""
        with self.cond:
            if not self.is_current(attempt):
                return False
            self.excluded.add(failed_node)
            self.errors.append(error)
            self.status = TaskStatus.QUEUED
            if notice:
                self.restarts += 1
                self.notice = notice
            if moved:
                self.moved = True
                self.errors.pop()  # a move is not a failure: the node stays eligible
                self.excluded.discard(failed_node)
            self._changed()
            cancel, self.canceller = self.canceller, None
        if cancel is not None:
            cancel()
        self._left_running()
        return True

    def _changed(self) -> None:
        """Under ``cond``: wake blocked readers and tell the watchers."""
        self.cond.notify_all()
        for watcher in self.watchers:
            watcher()

    def _left_running(self) -> None:
        if self.on_leave_running is not None:
            self.on_leave_running()

    def finish(self, status: TaskStatus, *, error: str | None = None, attempt: int | None = None,
               eval_count: int | None = None, prompt_eval_count: int | None = None,
               tokens_per_s: float | None = None, failure: FailureKind | None = None,
               **result_fields: Any) -> TaskResult | None:
        """The one way to a terminal status. Returns the result if this call ended the task.
        Every status but DONE carries its ``failure`` kind (callers decide by it, not by the text);
        without one given, the status says it. ``result_fields``: more TaskResult fields (a generate's
        context, logprobs, a node's rejection)."""
        assert status.terminal
        if status is TaskStatus.DONE:
            failure = None
        elif failure is None:
            failure = _DEFAULT_FAILURE[status]
        with self.cond:
            if self.status.terminal or (attempt is not None and not self.is_current(attempt)):
                return None
            was_running = self.status is TaskStatus.RUNNING
            cancel, self.canceller = self.canceller, None
            self.status = status
            self.finished_mono = time.monotonic()
            if eval_count is not None:
                self.eval_count, self.prompt_eval_count, self.tokens_per_s = eval_count, prompt_eval_count, tokens_per_s
            self.result_value = self._result(error, failure, result_fields)
            self._changed()
            result = self.result_value
        if cancel is not None:
            cancel()
        if was_running:
            self._left_running()
        return result

    def _result(self, error: str | None, failure: FailureKind | None,
                result_fields: dict[str, Any] | None = None) -> TaskResult:
        ttft = (self.first_token_mono - self.attempt_started) if (self.first_token_mono and self.attempt_started) else None
        duration = (self.finished_mono - self.started_mono) if (self.finished_mono and self.started_mono) else None
        queued = ((self.started_mono or self.finished_mono or time.monotonic()) - self.submitted_mono)
        return TaskResult(
            task_id=self.id, status=self.status, text="".join(self.text), thinking="".join(self.thinking),
            tool_calls=tuple(self.tool_calls), node=self.node, model=self.model, mode=self.mode,
            task_type=self.task_type, attempts=self.attempt,
            failovers=len(self.errors), ttft_s=ttft, duration_s=duration, queued_s=queued,
            eval_count=self.eval_count, prompt_eval_count=self.prompt_eval_count, tokens_per_s=self.tokens_per_s,
            thinking_tokens=self.thinking_tokens, decision=self.decision, error=error,
            failure=failure, nodes=tuple(self.nodes), notice=self.notice, embeddings=self.embeddings,
            **(result_fields or {}))

    # --- reads ---

    def view(self) -> TaskView:
        with self.cond:
            result = self.result_value
            now = time.monotonic()
            ttft = result.ttft_s if result else (
                (self.first_token_mono - self.attempt_started) if self.first_token_mono and self.attempt_started else None)
            return TaskView(
                task_id=self.id, prompt=self.task.prompt or "\n".join(self.task.input or ()), status=self.status, text="".join(self.text),
                thinking="".join(self.thinking), node=self.node, model=self.model, mode=self.mode,
                task_type=self.task_type, priority=self.task.priority, submitted_at=self.task.submitted_at,
                ttft_s=ttft, duration_s=result.duration_s if result else (
                    (now - self.started_mono) if self.started_mono else None),
                tokens_per_s=self.tokens_per_s, eval_count=self.eval_count, attempts=self.attempt,
                restarts=self.restarts, reason=self.decision.reason if self.decision else "",
                error=result.error if result else None, notice=self.notice, tool_calls=tuple(self.tool_calls),
                nodes=tuple(self.nodes))


class TaskHandle:
    """What ``Router.submit`` returns: stream, wait, cancel, look."""

    def __init__(self, state: TaskState, cancel: Callable[[TaskState], bool]) -> None:
        self._state = state
        self._cancel = cancel

    @property
    def id(self) -> str:
        return self._state.id

    @property
    def task(self) -> Task:
        return self._state.task

    @property
    def status(self) -> TaskStatus:
        return self._state.status

    @property
    def assessment(self) -> Any:
        """What the caller attached as ``task.meta["assessment"]`` (the reasoning engine's verdict)."""
        return self._state.task.meta.get("assessment")

    def done(self) -> bool:
        return self._state.status.terminal

    def view(self) -> TaskView:
        return self._state.view()

    def stream(self, timeout: float | None = None) -> Iterator[Chunk]:
        """Chunks from the start, as generated; ends when the task ends. ``timeout`` bounds each wait."""
        state, index = self._state, 0
        while True:
            with state.cond:
                while index >= len(state.chunks) and not state.status.terminal:
                    if not state.cond.wait(timeout):
                        raise TaskTimeoutError(f"task {state.id}: no output for {timeout} s (it goes on)")
                pending = state.chunks[index:]
                finished = state.status.terminal
            index += len(pending)
            yield from pending
            if finished and index >= len(state.chunks):
                return

    def watch(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` (under the task's lock: quick, never blocking) at every change of the task;
        returns the function that stops it."""
        state = self._state
        with state.cond:
            state.watchers.append(callback)

        def unwatch() -> None:
            with state.cond:
                if callback in state.watchers:
                    state.watchers.remove(callback)
        return unwatch

    async def astream(self) -> AsyncIterator[Chunk]:
        """``stream()`` for asyncio: the same chunks, without a thread blocked per reader. The event
        loop is woken at most once per batch of chunks, however many arrive before it runs."""
        import asyncio

        loop = asyncio.get_running_loop()
        ready = asyncio.Event()
        scheduled = False  # a wake-up is already on its way to the loop (guarded by the task's lock)

        def deliver() -> None:
            nonlocal scheduled
            with state.cond:
                scheduled = False
            ready.set()

        def wake() -> None:
            nonlocal scheduled
            if not scheduled:
                try:
                    loop.call_soon_threadsafe(deliver)
                    scheduled = True
                except RuntimeError:
                    pass  # the loop is closed: nobody is reading any more

        state, index = self._state, 0
        unwatch = self.watch(wake)
        try:
            while True:
                ready.clear()  # before reading: a change after this read sets it again
                with state.cond:
                    pending = state.chunks[index:]
                    finished = state.status.terminal
                index += len(pending)
                for chunk in pending:
                    yield chunk
                if finished:
                    with state.cond:
                        if index >= len(state.chunks):
                            return
                    continue
                if not pending:
                    await ready.wait()
        finally:
            unwatch()

    async def aresult(self) -> TaskResult:
        """``result()`` for asyncio, without blocking the loop."""
        async for _ in self.astream():
            pass
        return self.result(timeout=5)

    def result(self, timeout: float | None = None) -> TaskResult:
        state = self._state
        with state.cond:
            if not state.cond.wait_for(lambda: state.result_value is not None, timeout):
                raise TaskTimeoutError(f"task {state.id} still {state.status.value} after {timeout} s (it goes on)")
            assert state.result_value is not None
            return state.result_value

    def cancel(self) -> bool:
        """Cancel if not finished; True when this call cancelled it."""
        return self._cancel(self._state)

    def __repr__(self) -> str:
        return f"<TaskHandle {self.id} {self.status.value}>"
