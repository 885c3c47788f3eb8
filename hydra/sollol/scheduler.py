"""One priority queue with aging, global and per-node limits, and the dispatcher thread.

Aging without re-sorting: a task's effective priority is
``priority + waited / aging_s``; comparing two tasks, the ``now`` term cancels,
so the static heap key ``enqueued / aging_s - priority`` orders them at every
instant. A low-priority task therefore overtakes newer urgent ones once it has
waited ``aging_s`` per level of difference: nothing starves.

Late binding: a task is bound to a node only when it can start there. Each
round the dispatcher takes the best-ranked queued tasks, routes each over
fresh node views, and binds those whose place has a free slot.
"""
from __future__ import annotations

import dataclasses
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from .config import SollolConfig
from .handle import TaskState
from .node import NodeView
from .routing import RouteOutcome, is_routable
from .types import TaskStatus

log = logging.getLogger("hydra.sollol.scheduler")

ROUND_SCAN = 64          # queued tasks looked at per round beyond the free slots
IDLE_TICK_S = 0.25       # re-examine waiting tasks this often even without events


class TaskQueue:
    """Heap of (key, seq, state). Cancelled entries are dropped lazily when popped."""

    def __init__(self, aging_s: float) -> None:
        self._heap: list[tuple[float, int, TaskState]] = []
        self._seq = itertools.count()
        self._aging_s = aging_s
        self._live = 0

    def key(self, state: TaskState) -> float:
        return state.submitted_mono / self._aging_s - state.task.priority

    def push(self, state: TaskState) -> None:
        # A failed-over task keeps its original key, so it goes back near the front.
        heapq.heappush(self._heap, (self.key(state), next(self._seq), state))
        self._live += 1

    def pop_batch(self, limit: int) -> list[TaskState]:
        out: list[TaskState] = []
        while self._heap and len(out) < limit:
            _, _, state = heapq.heappop(self._heap)
            self._live -= 1
            if state.status is TaskStatus.QUEUED:
                out.append(state)
        return out

    def discard(self) -> None:
        """An entry became dead (cancelled while queued); keep the live count right."""
        self._live = max(0, self._live - 1)

    def __len__(self) -> int:
        return self._live

    def drain(self) -> list[TaskState]:
        items = [s for _, _, s in self._heap if s.status is TaskStatus.QUEUED]
        self._heap.clear()
        self._live = 0
        return items


class Engine(Protocol):
    def node_views(self) -> list[NodeView]: ...
    def route_task(self, state: TaskState, views: list[NodeView]) -> RouteOutcome: ...
    def start_attempt(self, state: TaskState, outcome: RouteOutcome) -> bool: ...
    def give_up(self, state: TaskState, reason: str) -> None: ...
    def expire(self, state: TaskState) -> None: ...


class Dispatcher:
    """Owns the queue; one thread binds queued tasks to nodes as slots free up."""

    def __init__(self, engine: Engine, config_source: Callable[[], SollolConfig],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._engine = engine
        self._config = config_source
        self._clock = clock
        self._cond = threading.Condition()
        self._queue = TaskQueue(config_source().aging_s)
        self._in_flight = 0          # attempts bound and not yet ended (logical; the global cap)
        self._round_lock = threading.Lock()  # one dispatch round at a time (no I/O inside)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="sollol-dispatcher")

    # --- API for the router ---

    def start(self) -> None:
        self._thread.start()

    def submit(self, state: TaskState) -> None:
        with self._cond:
            self._queue.push(state)
            idle = self._in_flight < self._config().effective_concurrency
        # With room to run it, bind in the caller's thread: saves a thread hop on the TTFT path.
        # Only one round at a time (the lock); when busy, the dispatcher thread does it.
        if idle and self._round_lock.acquire(blocking=False):
            try:
                self._round_unlocked()
            finally:
                self._round_lock.release()
        else:
            self.wake()

    def requeue(self, state: TaskState) -> None:
        self.submit(state)

    def attempt_ended(self) -> None:
        with self._cond:
            self._in_flight = max(0, self._in_flight - 1)
            self._cond.notify()

    def cancelled_while_queued(self) -> None:
        with self._cond:
            self._queue.discard()
            self._cond.notify()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify()

    @property
    def depth(self) -> int:
        return len(self._queue)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def close(self) -> list[TaskState]:
        with self._cond:
            self._closed = True
            left = self._queue.drain()
            self._cond.notify_all()
        self._thread.join()
        return left

    # --- the loop ---

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._closed:
                    return
                self._cond.wait(IDLE_TICK_S)
                if self._closed:
                    return
            try:
                self.dispatch_round()
            except Exception:
                log.critical("dispatcher round crashed", exc_info=True)

    def dispatch_round(self) -> int:
        """Bind as many queued tasks as the limits allow. Returns how many were bound."""
        with self._round_lock:
            return self._round_unlocked()

    def _round_unlocked(self) -> int:
        config = self._config()
        with self._cond:
            free_global = config.effective_concurrency - self._in_flight
            if free_global <= 0 or not len(self._queue):
                return 0
            batch = self._queue.pop_batch(free_global + ROUND_SCAN)
        views = {v.name: v for v in self._engine.node_views()}
        bound, keep = 0, []
        now = self._clock()
        for state in batch:
            if state.status is not TaskStatus.QUEUED:
                continue
            if state.deadline_mono is not None and now >= state.deadline_mono:
                self._engine.expire(state)
                continue
            if bound >= free_global or not any(v.free_slots for v in views.values()):
                keep.append(state)
                continue
            outcome = self._engine.route_task(state, list(views.values()))
            if outcome.node is not None:
                with self._cond:  # counted before the worker can end it
                    self._in_flight += 1
                if self._engine.start_attempt(state, outcome):
                    bound += 1
                    view = views[outcome.node]
                    views[outcome.node] = dataclasses.replace(view, in_flight=view.in_flight + 1)
                else:
                    self.attempt_ended()
                continue
            if outcome.wait or self._may_appear(state, views.values(), config, now):
                state.waiting_since = state.waiting_since or now
                keep.append(state)
            else:
                self._engine.give_up(state, outcome.reason)
        with self._cond:
            for state in keep:
                self._queue.push(state)
        return bound

    @staticmethod
    def _may_appear(state: TaskState, views, config: SollolConfig, now: float) -> bool:
        """A task with no place now may still get one: a node is down, unknown or its circuit open."""
        if state.waiting_since is not None and now - state.waiting_since > config.no_route_wait_s:
            return False
        return any(is_routable(v) is not None and v.name not in state.excluded for v in views)
