"""A running router recorded into history: its events, and its running tasks' text so far.

``EventWriter`` writes the router's events in order on one thread of its own, off the
dispatch and TTFT path. A submitter that must not return before its task is on disk
(a submitted task survives a kill) waits for its ``queued`` row with ``expect``; the
commit runs while the task is already on its way to its node. One event that cannot be
recorded is logged and skipped: the writer goes on, or every later submit would wait
for a row that never comes and history would stop.

``PartialSaver`` saves the text of running tasks now and then, so a crash keeps it.
"""
from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable

from hydra.sollol.handle import TaskHandle
from hydra.sollol.types import TaskEvent, TaskStatus

from .store import History

log = logging.getLogger(__name__)

PARTIAL_SAVE_EVERY_S = 2.0


class EventWriter:
    def __init__(self, history: History) -> None:
        self._history = history
        self._events: queue.SimpleQueue[TaskEvent | None] = queue.SimpleQueue()
        self._lock = threading.Lock()  # _waiting
        self._waiting: dict[str, threading.Event] = {}
        self._thread = threading.Thread(target=self._run, name="hydra-history-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def on_event(self, event: TaskEvent) -> None:
        """The router's listener: queues the event and returns at once."""
        self._events.put(event)

    def expect(self, task_id: str) -> threading.Event:
        """Call before submitting ``task_id``: the event is set once its queued row is written,
        or once it never will be (that event could not be recorded, or the writer closed)."""
        recorded = threading.Event()
        with self._lock:
            self._waiting[task_id] = recorded
        return recorded

    def forget(self, task_id: str) -> None:
        """The submit of ``task_id`` was refused: no queued event is coming."""
        with self._lock:
            self._waiting.pop(task_id, None)

    def close(self) -> None:
        """After the router closed: writes everything it said, then releases whoever still waits."""
        if self._thread.is_alive():
            self._events.put(None)
            self._thread.join()
        with self._lock:
            waiting, self._waiting = list(self._waiting.values()), {}
        for recorded in waiting:  # nobody is left to write them: let their submit() return
            recorded.set()

    def _run(self) -> None:
        while (event := self._events.get()) is not None:
            try:
                self._history.record_event(event)  # logs its own database troubles
            except Exception:  # anything else (a value it cannot store): this event is lost, not the writer
                log.exception("history could not record the %s event of task %s", event.kind, event.task.id)
            finally:
                if event.kind == "queued":
                    self._release(event.task.id)

    def _release(self, task_id: str) -> None:
        with self._lock:
            recorded = self._waiting.pop(task_id, None)
        if recorded is not None:
            recorded.set()


class PartialSaver:
    """Every ``every_s``, the text so far of each running task in ``handles()`` that grew since."""

    def __init__(self, history: History, handles: Callable[[], Iterable[TaskHandle]],
                 every_s: float = PARTIAL_SAVE_EVERY_S) -> None:
        self._history = history
        self._handles = handles
        self._every_s = every_s
        self._saved: dict[str, int] = {}  # task id -> characters saved; only this thread touches it
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hydra-partial-saver", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            self._save_once()

    def _save_once(self) -> None:
        live = set()
        for handle in self._handles():
            if handle.status is not TaskStatus.RUNNING:
                continue
            live.add(handle.id)
            view = handle.view()
            size = len(view.text) + len(view.thinking)
            if size and self._saved.get(handle.id) != size:
                try:
                    self._history.save_partial(handle.id, view.text, view.thinking)
                except Exception:  # history trouble must not stop the saving of later tasks
                    log.warning("could not save partial output of task %s", handle.id, exc_info=True)
                    continue
                self._saved[handle.id] = size
        for task_id in set(self._saved) - live:
            del self._saved[task_id]
