"""Feeds one batch's rows to the service as slots free, and records each row's end exactly once.

At most ``window()`` rows are in flight (two per slot of the cluster: manager.SlotWindow):
the rest wait in the store, not in the router's queue, so the engine's memory and queue
stay small however big the batch. The rows that do wait in the router's queue are
``background`` tasks, which an interactive task overtakes whatever their age
(sollol/scheduler.py): it starts on the next slot that frees.

A row is claimed (committed ``running`` with its task id) before its task is submitted
with that id, and ended by ``store.finish_row`` guarded by the id. A task that ends because
the router is closing (this process stopping) puts its row back to ``pending``: it runs on
the next start. Pause stops feeding (the rows in flight finish and are recorded); cancel
also cancels them; both are in the store, so they survive a restart.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from hydra.sollol import FailureKind, HydraError, TaskHandle, TaskResult, TaskStatus
from hydra.sollol.errors import ShutdownError, TaskError

from .rows import BatchOptions, RowOutcome
from .store import BatchStore

log = logging.getLogger("hydra.batch")

TICK_S = 0.5            # look again this often even without a task's change
CLOSE_WAIT_S = 10.0     # shutdown: how long the rows in flight may take to end after their cancel
RESTARTED = (FailureKind.INTERRUPTED, FailureKind.SHUTDOWN)  # the process stops: run again next start
# A row that finds no route while no node at all is healthy goes back to pending and waits for one;
# with healthy nodes, no route is the row's own (a model none has) and it fails, to be retried.


class Submit(Protocol):
    def __call__(self, prompt: str = "", **fields: Any) -> TaskHandle: ...


@dataclass
class _InFlight:
    index: int
    task_id: str
    handle: TaskHandle
    unwatch: Callable[[], None]


def outcome_of(result: TaskResult) -> RowOutcome:
    status = {TaskStatus.DONE: "done", TaskStatus.CANCELLED: "cancelled"}.get(result.status, "failed")
    return RowOutcome(status=status, answer=result.text, node=result.node, model=result.model, ttft_s=result.ttft_s,
                      duration_s=result.duration_s, tokens=result.eval_count, tokens_per_s=result.tokens_per_s,
                      error=result.error if status != "done" else None, prompt_tokens=result.prompt_eval_count)


class BatchRunner:
    """One thread per running batch; ``pause``/``cancel``/``shutdown`` from any thread."""

    def __init__(self, store: BatchStore, batch_id: str, options: BatchOptions, submit: Submit,
                 window: Callable[[], int], on_exit: Callable[[BatchRunner], None] | None = None,
                 cluster_up: Callable[[], bool] = lambda: True) -> None:
        self.store = store
        self.batch_id = batch_id
        self._options = options
        self._submit = submit
        self._window = window
        self._on_exit = on_exit
        self._cluster_up = cluster_up
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._paused = False
        self._cancelled = False
        self._closing = False
        self._in_flight: dict[str, _InFlight] = {}
        self.peak_in_flight = 0
        self._thread = threading.Thread(target=self._run, name=f"hydra-batch-{batch_id[-6:]}", daemon=True)

    def start(self) -> BatchRunner:
        self._wake.set()  # the first rows go at once
        self._thread.start()
        return self

    def pause(self) -> None:
        with self._lock:
            self._paused = True
        self._wake.set()

    def resume(self) -> None:
        with self._lock:
            self._paused = False
        self._wake.set()

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
        self._wake.set()

    def shutdown(self, timeout: float = CLOSE_WAIT_S) -> None:
        """The process stops: no more rows; those in flight are cancelled and go back to pending."""
        with self._lock:
            self._closing = True
        self._wake.set()
        self._thread.join(timeout)

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # --- the thread ---

    def _run(self) -> None:
        try:
            self._loop()
        except Exception:
            log.critical("batch %s: the runner crashed; its rows in flight go back to pending on the next start",
                         self.batch_id, exc_info=True)
        finally:
            if self._on_exit is not None:
                self._on_exit(self)

    def _loop(self) -> None:
        while True:
            self._wake.wait(TICK_S)
            self._wake.clear()
            with self._lock:
                paused, cancelled, closing = self._paused, self._cancelled, self._closing
            if cancelled or closing:
                self._stop(cancelled)
                return
            self._harvest()
            if paused:
                continue  # the rows in flight end and are recorded; nothing new starts
            if not self._feed():
                return  # the service refused: the batch is paused with the reason
            if not self._in_flight and self.store.complete(self.batch_id):
                return

    def _feed(self) -> bool:
        if not self._cluster_up():
            return True  # no healthy node (the nodes not polled yet at a start, all down): wait, fail no row
        free = max(1, self._window()) - len(self._in_flight)
        for index, prompt, task_id, request in self.store.claim(self.batch_id, free):
            try:
                if request is not None:  # a gateway batch: the row's own request, the batch's mode and priority
                    fields = {**self._fields(), "model": None, "max_tokens": None, **request}
                    handle = self._submit("", id=task_id, background=True, **fields)
                else:
                    handle = self._submit(prompt, id=task_id, background=True, **self._fields())
            except TaskError as exc:  # this row's own prompt cannot be a task: the row fails, the batch goes on
                self.store.finish_row(self.batch_id, index, task_id, RowOutcome("failed", error=str(exc)))
                continue
            except (ShutdownError, HydraError) as exc:  # history unwritable, the router closed: stop, keep the row
                self.store.release(self.batch_id, index, task_id)
                self.store.set_status(self.batch_id, "paused", error=f"paused: {exc}", only_from=("running",))
                log.warning("batch %s paused: %s", self.batch_id, exc)
                return False
            self._in_flight[task_id] = _InFlight(index, task_id, handle, handle.watch(self._waker(handle)))
            if handle.done():
                self._wake.set()
        self.peak_in_flight = max(self.peak_in_flight, len(self._in_flight))
        return True

    def _waker(self, handle: TaskHandle) -> Callable[[], None]:
        """Called at every change of the task (every chunk): wake the runner only when it ends."""
        def wake() -> None:
            if handle.done():
                self._wake.set()
        return wake

    def _fields(self) -> dict[str, Any]:
        o = self._options
        fields: dict[str, Any] = {"mode": o.mode, "priority": o.priority, "model": o.model, "task_type": o.task_type,
                                  "max_tokens": o.max_tokens}
        if o.format is not None:
            fields["format"] = o.format
        if o.system:
            fields["system"] = o.system
        return fields

    def _harvest(self) -> None:
        for task_id, item in list(self._in_flight.items()):
            if item.handle.done():
                self._record(item, item.handle.result(timeout=1))

    def _record(self, item: _InFlight, result: TaskResult) -> None:
        item.unwatch()
        del self._in_flight[item.task_id]
        if result.failure in RESTARTED or (self._closing and result.status is TaskStatus.CANCELLED) or (
                result.failure is FailureKind.NO_ROUTE and not self._cluster_up()):  # the cluster went down
            self.store.release(self.batch_id, item.index, item.task_id)
            return
        self.store.finish_row(self.batch_id, item.index, item.task_id, outcome_of(result))

    def _stop(self, cancelled: bool) -> None:
        for item in list(self._in_flight.values()):
            item.handle.cancel()
        for item in list(self._in_flight.values()):
            try:
                self._record(item, item.handle.result(timeout=CLOSE_WAIT_S))
            except HydraError:  # not ended in time: its row stays running and is settled on the next start
                item.unwatch()
        if cancelled:
            self.store.cancel_pending(self.batch_id)
            self.store.set_status(self.batch_id, "cancelled", only_from=("running", "paused"))
