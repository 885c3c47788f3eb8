"""The threads of one node's slots and how work reaches them; what a thread does with an assignment
(one attempt) is worker.py's, handed in as ``run``.

Work goes to the thread that went idle last (a stack, not a shared FIFO queue): its HTTP connection
to the node is still open and its caches are warm. With a FIFO, a 200-slot node serving one request
at a time hands each to the thread idle longest, which opens a new connection on the path to the
first token (measured: +0.45 ms TTFT at 200 slots). A failure in one run never ends the thread.
"""
from __future__ import annotations

import collections
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .handle import TaskState

log = logging.getLogger("hydra.sollol.worker")  # the workers' logger: these are their threads


def no_wakeup_preemption() -> None:
    """Linux: the calling thread is scheduled SCHED_BATCH, so waking it (an assignment put in its
    inbox, a line from its node) does not preempt the thread that woke it. The woken thread needs the
    interpreter lock, which the waker holds, so preempting it only costs two context switches and
    stalls the waker: on the gateway's event loop under load (one run each, load average about 5),
    handing an assignment to a slot thread took 70 -> 40 us and queueing a history event 4 -> 1.5 us;
    in an interleaved run, gateway CPU 0.95x, TTFT p50 0.92x. Elsewhere a no-op."""
    setter = getattr(os, "sched_setscheduler", None)
    if setter is None:
        return
    try:
        setter(0, os.SCHED_BATCH, os.sched_param(0))
    except OSError:  # not permitted here (a container's seccomp policy): scheduling stays as it was
        pass


@dataclass(frozen=True)
class Assignment:
    state: TaskState
    attempt: int
    model: str
    trial: bool      # the half-open circuit's one trial request


class SlotThreads:
    """``slots`` threads named ``sollol-worker-<node>-<i>``, each running one assignment at a time."""

    def __init__(self, node: str, slots: int, *, run: Callable[[Assignment], None],
                 prepare: Callable[[], None]) -> None:
        self._node = node
        self._run_one = run
        self._prepare = prepare   # each thread's own HTTP client, made before work comes
        self._inboxes: list[queue.SimpleQueue[Assignment | None]] = [queue.SimpleQueue() for _ in range(slots)]
        self._threads = [threading.Thread(target=self._run, args=(inbox,), name=f"sollol-worker-{node}-{i}",
                                          daemon=True) for i, inbox in enumerate(self._inboxes)]
        self._idle: list[queue.SimpleQueue[Assignment | None]] = []  # most recently idle last
        self._backlog: collections.deque[Assignment] = collections.deque()  # when none is idle yet
        self._lock = threading.Lock()
        self._stopped = False
        self._running = 0                                     # threads started and not yet ended
        self._on_stopped: Callable[[], None] | None = None   # run once, when the last thread ends

    @property
    def threads(self) -> tuple[threading.Thread, ...]:
        return tuple(self._threads)

    def start(self) -> None:
        with self._lock:
            self._running = len(self._threads)
        for thread in self._threads:
            thread.start()

    def submit(self, assignment: Assignment) -> bool:
        """False once stopped: an assignment behind the stop sentinels would never run."""
        with self._lock:
            if self._stopped:
                return False
            if self._idle:
                self._idle.pop().put(assignment)
            else:  # every worker is still finishing its last task (the slot is already free)
                self._backlog.append(assignment)
            return True

    def stop(self, on_stopped: Callable[[], None] | None = None) -> None:
        """Each thread ends after the attempts already handed to it; the last one to end calls
        ``on_stopped`` (at once here when none is running)."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            self._on_stopped = on_stopped
            for inbox in self._inboxes:
                inbox.put(None)  # after any assignment already handed to it; the backlog is drained first
            now = self._running == 0
        if now and on_stopped is not None:
            on_stopped()

    def join(self, timeout: float) -> list[threading.Thread]:
        """Wait up to ``timeout`` seconds in all; returns the threads still running (never the caller's)."""
        deadline = time.monotonic() + timeout
        me = threading.current_thread()
        for thread in self._threads:
            if thread is not me and thread.ident is not None:
                thread.join(max(0.0, deadline - time.monotonic()))
        return [t for t in self._threads if t is not me and t.is_alive()]

    def _thread_ended(self) -> None:
        with self._lock:
            self._running -= 1
            last = self._running == 0 and self._stopped
            on_stopped = self._on_stopped if last else None
        if on_stopped is not None:
            try:
                on_stopped()
            except Exception:
                log.warning("closing the client of %s failed", self._node, exc_info=True)

    def _next(self, inbox: queue.SimpleQueue[Assignment | None]) -> Assignment | None:
        with self._lock:
            if self._backlog:
                return self._backlog.popleft()
            self._idle.append(inbox)
        return inbox.get()

    def _run(self, inbox: queue.SimpleQueue[Assignment | None]) -> None:
        try:
            self._serve(inbox)
        finally:
            self._thread_ended()

    def _serve(self, inbox: queue.SimpleQueue[Assignment | None]) -> None:
        no_wakeup_preemption()
        try:
            self._prepare()
        except Exception:
            log.warning("worker of %s could not prepare its HTTP client", self._node, exc_info=True)
        while True:
            item = self._next(inbox)
            if item is None:
                return
            try:
                self._run_one(item)
            except Exception:
                log.critical("worker of %s crashed on task %s", self._node, item.state.id, exc_info=True)
