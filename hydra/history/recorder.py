"""A running router recorded into history: its events, and its running tasks' text so far.

``EventWriter`` writes the router's events in order on one thread of its own, off the
dispatch and TTFT path. Whatever queued while it wrote goes in the next transaction together
(group commit): under load one commit serves hundreds of submits instead of one each. A submitter that must not return before its task is on disk
(a submitted task survives a kill) waits for its ``queued`` row with ``expect``; the
commit runs while the task is already on its way to its node, and the submitter learns
whether it succeeded: a task whose row could not be written is refused (service.py).

A refused task leaves no row: its later events (the cancel's ``finished``) are skipped.
The other events history could not write while it was degraded (a task that finished
while the disk was full) are kept, in order, and written once it can write again, so a row
does not stay "running" for a task that is over. One event that cannot be recorded for a
reason of its own (a value it cannot store) is logged and skipped: the writer goes on.

``PartialSaver`` saves the text of running tasks now and then, so a crash keeps it.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable

from hydra.sollol.errors import HydraError, ShutdownError
from hydra.sollol.handle import TaskHandle
from hydra.sollol.slot_threads import no_wakeup_preemption
from hydra.sollol.types import TaskEvent, TaskStatus

from .health import HistoryUnavailableError
from .store import History

log = logging.getLogger(__name__)

PARTIAL_SAVE_EVERY_S = 2.0
MAX_KEPT_EVENTS = 5000   # events kept while history cannot write; past it the oldest are lost (rows stay live)
RETRY_EVERY_S = 1.0      # while some are kept, how often the writer tries them again when no event comes
MAX_BATCH_EVENTS = 1000  # events in one group commit (a few ms of writing: submitters wait on it)


class PendingRow:
    """One submitter's wait for its task's queued row."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        self._settled = threading.Event()
        self._error: HydraError | None = None
        self._wake: Callable[[], None] | None = None

    def settle(self, error: HydraError | None) -> None:
        self._error = error
        self._settled.set()
        wake = self._wake  # read after set(): settled() sets it before it looks, so one of us wakes it
        if wake is not None:
            wake()

    def wait(self, timeout: float) -> HydraError | None:
        """None once the row is committed; otherwise why it is not, and will not be in time."""
        if not self._settled.wait(timeout):
            return self._late(timeout)
        return self._error

    async def settled(self, timeout: float) -> HydraError | None:
        """``wait`` on an event loop: the writer wakes the loop (no thread waits meanwhile)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def resolve() -> None:
            if not done.done():
                done.set_result(None)

        def wake() -> None:  # on the writer's thread (or here, when already settled)
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                loop.call_soon_threadsafe(resolve)

        self._wake = wake
        if self._settled.is_set():
            return self._error
        try:
            await asyncio.wait_for(done, timeout)
        except TimeoutError:
            return self._late(timeout)
        return self._error

    def _late(self, timeout: float) -> HydraError:
        return HistoryUnavailableError(f"its row was not written within {timeout:.0f} s (is HYDRA_DB locked "
                                       "by another process?)", task_id=self.task_id)


class EventWriter:
    def __init__(self, history: History) -> None:
        self._history = history
        self._events: queue.SimpleQueue[TaskEvent | None] = queue.SimpleQueue()
        self._lock = threading.Lock()  # _waiting
        self._waiting: dict[str, PendingRow] = {}
        # Only the writer thread touches these two.
        self._kept: deque[TaskEvent] = deque()
        self._refused: dict[str, None] = {}   # tasks whose queued row failed (ordered: the oldest go first)
        self._thread = threading.Thread(target=self._run, name="hydra-history-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def on_event(self, event: TaskEvent) -> None:
        """The router's listener: queues the event and returns at once."""
        self._events.put(event)

    def expect(self, task_id: str) -> PendingRow:
        """Call before submitting ``task_id``: settled once its queued row is written, or once it
        never will be (that event could not be recorded, or the writer closed)."""
        pending = PendingRow(task_id)
        with self._lock:
            self._waiting[task_id] = pending
        return pending

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
        for pending in waiting:  # nobody is left to write them: let their submit() return
            pending.settle(ShutdownError(f"Hydra closed before task {pending.task_id} was recorded"))
        if self._kept:
            log.warning("history closed with %d events it could not write; their tasks' rows stay queued or "
                        "running until the next start marks them interrupted", len(self._kept))

    def _run(self) -> None:
        no_wakeup_preemption()  # each event wakes this thread; the router's thread that queued it goes on
        while True:
            try:
                event = self._events.get(timeout=RETRY_EVERY_S if self._kept else None)
            except queue.Empty:
                self._replay()
                continue
            batch, closing = self._drain(event)
            self._handle_batch(batch)
            if closing:
                break
        self._replay()

    def _drain(self, first: TaskEvent | None) -> tuple[list[TaskEvent], bool]:
        """``first`` and whatever queued behind it (MAX_BATCH_EVENTS at most); True once close() was asked."""
        batch: list[TaskEvent] = []
        event = first
        while event is not None:
            batch.append(event)
            if len(batch) >= MAX_BATCH_EVENTS:
                return batch, False
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return batch, False
        return batch, True

    def _handle_batch(self, batch: list[TaskEvent]) -> None:
        """Group commit: the events of many tasks in one transaction, then every submitter whose queued row
        it held is released. When it cannot (kept events to write first, a refused task among them, or
        the transaction failed: then nothing of it was written), each event goes on its own, as ever."""
        if len(batch) > 1 and not self._kept and not any(e.task.id in self._refused for e in batch):
            try:
                with self._history.group():
                    for event in batch:
                        self._history.write_event(event)
            except Exception:  # noqa: BLE001 - any failure: one by one below, each with its own outcome
                log.debug("history: a group of %d events failed; writing them one by one", len(batch))
            else:
                for event in batch:
                    if event.kind == "queued":
                        self._release(event.task.id, None)
                return
        for event in batch:
            self._handle(event)

    def _handle(self, event: TaskEvent) -> None:
        task_id = event.task.id
        if task_id in self._refused:  # no row, and none wanted: its submit was refused
            if event.kind == "finished":
                del self._refused[task_id]
            return
        error = self._replay()    # the kept ones first: the rows' events stay in order
        retry = error is not None
        if error is None:
            error, retry = self._try(event)
        if event.kind == "queued":
            if error is not None:
                self._refuse(task_id)
            self._release(task_id, error)
        elif retry:
            self._keep(event)
        elif error is not None:
            log.warning("history lost the %s event of task %s: %s", event.kind, task_id, error)

    def _try(self, event: TaskEvent) -> tuple[HydraError | None, bool]:
        """Write one event: (why it was not written or None, whether a later try may succeed)."""
        try:
            self._history.write_event(event)
        except HistoryUnavailableError as exc:
            return exc, not self._history.health.ok
        except ShutdownError as exc:
            return exc, False
        except Exception as exc:  # anything else (a value it cannot store): this event is lost, not the writer
            log.exception("history could not record the %s event of task %s", event.kind, event.task.id)
            return HistoryUnavailableError(f"its {event.kind} event could not be recorded ({exc!r})"), False
        return None, False

    def _replay(self) -> HydraError | None:
        """Write the kept events, oldest first; the error if history still cannot write (None: all done)."""
        written = 0
        while self._kept:
            error, retry = self._try(self._kept[0])
            if retry:
                return error
            if error is not None:
                log.warning("history lost the %s event of task %s: %s", self._kept[0].kind, self._kept[0].task.id,
                            error)
            else:
                written += 1
            self._kept.popleft()
        if written:
            log.info("history wrote %d events kept while it could not write", written)
        return None

    def _keep(self, event: TaskEvent) -> None:
        self._kept.append(event)
        if len(self._kept) > MAX_KEPT_EVENTS:
            lost = self._kept.popleft()
            log.warning("history cannot write and keeps at most %d events: the %s event of task %s is lost",
                        MAX_KEPT_EVENTS, lost.kind, lost.task.id)

    def _refuse(self, task_id: str) -> None:
        self._refused[task_id] = None
        if len(self._refused) > MAX_KEPT_EVENTS:   # a task that never finished: forget the oldest
            del self._refused[next(iter(self._refused))]

    def _release(self, task_id: str, error: HydraError | None) -> None:
        with self._lock:
            pending = self._waiting.pop(task_id, None)
        if pending is not None:
            pending.settle(error)


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
        if not self._history.health.ok:  # it says so itself, once; its probe tells when it can write again
            return
        grown = self._grown()
        if not grown:
            return
        # One transaction for every task's text (group commit): hundreds of running tasks would otherwise
        # take the write lock hundreds of times in a row, and the submits waiting for their rows behind them.
        try:
            with self._history.group():
                for task_id, text, thinking in grown:
                    try:
                        self._history.save_partial(task_id, text, thinking)
                    except Exception:  # history trouble must not stop the saving of later tasks
                        log.warning("could not save partial output of task %s", task_id, exc_info=True)
                        continue
                    self._saved[task_id] = len(text) + len(thinking)
        except (HistoryUnavailableError, ShutdownError):
            log.warning("could not save the partial output of running tasks", exc_info=True)
            self._saved.clear()  # none of this round's saves is on disk: the next round writes them again

    def _grown(self) -> list[tuple[str, str, str]]:
        """(id, text, thinking) of each running task whose output grew since it was last saved."""
        live = set()
        grown = []
        for handle in self._handles():
            if handle.status is not TaskStatus.RUNNING:
                continue
            live.add(handle.id)
            view = handle.view()
            size = len(view.text) + len(view.thinking)
            if size and self._saved.get(handle.id) != size:
                grown.append((handle.id, view.text, view.thinking))
        for task_id in set(self._saved) - live:
            del self._saved[task_id]
        return grown
