"""One priority queue with aging, global and per-node limits, and the dispatcher thread.

Aging without re-sorting: a task's effective priority is
``priority + waited / aging_s``; comparing two tasks, the ``now`` term cancels,
so the static heap key ``enqueued / aging_s - priority`` orders them at every
instant. A low-priority task therefore overtakes newer urgent ones once it has
waited ``aging_s`` per level of difference: nothing starves.

Late binding: a task is bound to a node only when it can start there. Each
round the dispatcher takes the best-ranked queued tasks, routes each over
fresh node views, and binds those whose place has a free slot.

The dispatcher knows nothing of nodes or attempts: it is given plain callables
(``views``, ``route``, ``bind``, ``give_up``, ``expire``, ``moves``; the router
passes the attempt life cycle's, attempts.py). Rounds run on two kinds of
thread only: the dispatcher's own, and a submitter's (``submit`` with a free
slot binds at once in the caller's thread, which saves a thread hop on the
path to the first token). A requeue (a worker's failed attempt, the
watchdog's timeout) and every other event only push and wake the dispatcher
thread; they never run a round where they are.

Fail fast: a task no node can take now ends at once (no route), unless a node
it may use is due back within ``DUE_BACK_S`` (its backoff or its open circuit's
cooldown ends, or the poll that will tell comes: see ``due_back_in``); then it
waits, but no longer than until that node was due (plus ``DUE_SLACK_S``), and
never more than ``no_route_wait_s`` in all.
"""
from __future__ import annotations

import dataclasses
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable

from .config import SollolConfig
from .eligibility import due_back_in, why_unroutable
from .handle import TaskState
from .node import Circuit, NodeView
from .routing import RouteOutcome
from .types import TaskStatus

log = logging.getLogger("hydra.sollol.scheduler")

ROUND_SCAN = 64          # queued tasks looked at per round beyond the free slots
IDLE_TICK_S = 0.25       # re-examine waiting tasks this often even without events
BACKLOG_WINDOW_S = 30.0  # tasks waited this recently: the queue's tail may be rebalanced
BACKLOG_DEPTH = 2        # ... if at least this many times the concurrency cap waited at once (a real batch)
ROUND_END_WAIT_S = 1.0   # close(): how long to wait for a round in progress (rounds do no I/O: microseconds)
DUE_BACK_S = 5.0         # a task with no node waits for one due back within this long, else ends at once
DUE_SLACK_S = 1.0        # ... and past the moment it was due, for this long (the poll that tells)
UNROUTABLE_SHOWN = 4     # nodes named in a no-route reason


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

    def __len__(self) -> int:
        return self._live

    def drain(self) -> list[TaskState]:
        items = [s for _, _, s in self._heap if s.status is TaskStatus.QUEUED]
        self._heap.clear()
        self._live = 0
        return items


Views = Callable[[], list[NodeView]]
Route = Callable[[TaskState, list[NodeView], int], RouteOutcome]   # (task, views, queued ahead of it)
Bind = Callable[[TaskState, RouteOutcome], bool]                   # False: not bound, the place is still free
GiveUp = Callable[[TaskState, str], None]
Expire = Callable[[TaskState], None]
Moves = Callable[[list[NodeView]], list[tuple[TaskState, RouteOutcome]]]  # rebalance: tasks taken off slow nodes


class Dispatcher:
    """Owns the queue; one thread binds queued tasks to nodes as slots free up."""

    def __init__(self, config_source: Callable[[], SollolConfig], *, views: Views, route: Route, bind: Bind,
                 give_up: GiveUp, expire: Expire, moves: Moves, clock: Callable[[], float] = time.monotonic) -> None:
        self._views = views
        self._route = route
        self._bind = bind
        self._give_up = give_up
        self._expire = expire
        self._moves = moves
        self._config = config_source
        self._clock = clock
        self._cond = threading.Condition()
        self._queue = TaskQueue(config_source().aging_s)
        self._in_flight = 0          # attempts bound and not yet ended (logical; the global cap)
        self._round_lock = threading.Lock()  # one dispatch round at a time (no I/O inside)
        self._pending = False                 # something changed since the dispatcher last looked
        self._last_backlog = float("-inf")    # when tasks last had to wait for a place
        self._backlog_peak = 0                # deepest queue of the current backlog
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="sollol-dispatcher", daemon=True)

    # --- API for the router ---

    def start(self) -> None:
        self._thread.start()

    def submit(self, state: TaskState) -> None:
        """A new task (the submitter's thread): bound here at once when a slot is free, else queued."""
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
        """Back in the queue (an attempt failed or timed out): the dispatcher thread routes it again."""
        with self._cond:
            self._queue.push(state)
            self._pending = True
            self._cond.notify()

    def attempt_ended(self) -> None:
        with self._cond:
            self._in_flight = max(0, self._in_flight - 1)
            # The freed slot matters to a round only when tasks wait, or a backlog just drained (rebalance):
            # otherwise a round would find nothing to do, and waking this thread for it costs every task.
            if len(self._queue) or self._clock() - self._last_backlog < BACKLOG_WINDOW_S:
                self._pending = True
                self._cond.notify()

    def wake(self) -> None:
        with self._cond:
            self._pending = True
            self._cond.notify()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def close(self) -> list[TaskState]:
        with self._cond:
            self._closed = True
            left = self._queue.drain()
            self._cond.notify_all()
        # A router closed without (or after a failed) start has no thread; a listener may close it from this one.
        if self._thread.ident is not None and self._thread is not threading.current_thread():
            self._thread.join()
        # A submitter's round already past its closed check may still bind: let it end first. Bounded,
        # because a listener may close the router from inside a round, in this very thread.
        if self._round_lock.acquire(timeout=ROUND_END_WAIT_S):
            self._round_lock.release()
        return left

    # --- the loop ---

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._closed:
                    return
                if not self._pending:  # a wake-up that came during the last round is not lost
                    self._cond.wait(IDLE_TICK_S)
                self._pending = False
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
            if self._closed:
                return 0
            free_global = config.effective_concurrency - self._in_flight
            if free_global <= 0:
                if len(self._queue):
                    self._note_backlog(len(self._queue))  # tasks wait on the global cap
                return 0
            if len(self._queue):
                batch = self._queue.pop_batch(free_global + ROUND_SCAN)
            elif self._clock() - self._last_backlog < BACKLOG_WINDOW_S:
                batch = []  # nothing queued, but a backlog just drained: see whether to rebalance
            else:
                return 0
        bound = 0
        try:
            bound = self._bind_batch(batch, config)
        finally:
            # Whatever was not bound goes back, even when a round crashes half-way: no task is lost.
            with self._cond:
                for state in batch:
                    if state.status is TaskStatus.QUEUED:
                        self._queue.push(state)
                waiting = len(self._queue)
                if waiting:
                    self._note_backlog(waiting)
                deep = self._backlog_peak >= BACKLOG_DEPTH * config.effective_concurrency
        now = self._clock()
        if not waiting and deep and now - self._last_backlog < BACKLOG_WINDOW_S:
            bound += self._rebalance(self._views())
        return bound

    def _bind_batch(self, batch: list[TaskState], config: SollolConfig) -> int:
        """Route each task over fresh views; bind those whose place is free. Others stay queued."""
        views = {v.name: v for v in self._views()}
        bound, waiting = 0, 0
        now = self._clock()
        last = len(batch) - 1
        for position, state in enumerate(batch):
            if state.status is not TaskStatus.QUEUED:
                continue
            if state.deadline_mono is not None and now >= state.deadline_mono:
                self._expire(state)
                continue
            # Every slot taken: wait. No node at all is not that: routing says no route (fail fast).
            if self._in_flight >= config.effective_concurrency or (
                    views and not any(v.free_slots for v in views.values())):
                waiting += 1
                continue
            # ``ahead``: queued tasks ranked before this one that are still waiting for a place.
            outcome = self._route(state, list(views.values()), waiting)
            if outcome.node is not None:
                with self._cond:  # counted before the worker can end it
                    self._in_flight += 1
                if self._bind(state, outcome):
                    bound += 1
                    if position == last:
                        continue  # no later task in this round needs the updated view
                    view = views[outcome.node]
                    # A half-open node takes one trial: the rest of this round must see it taken.
                    views[outcome.node] = dataclasses.replace(
                        view, in_flight=view.in_flight + 1,
                        trial_in_flight=view.trial_in_flight or view.circuit is Circuit.HALF_OPEN)
                else:
                    self.attempt_ended()
                    waiting += state.status is TaskStatus.QUEUED
                continue
            if outcome.wait or self._node_due_back(state, views.values(), config, now):
                state.waiting_since = state.waiting_since or now
                waiting += 1
            else:
                self._give_up(state, outcome.reason + _unroutable_summary(views.values(), state.excluded, now))
        return bound

    def _note_backlog(self, depth: int) -> None:
        """Called under the condition: tasks are waiting; remember how deep the backlog got."""
        now = self._clock()
        if now - self._last_backlog >= BACKLOG_WINDOW_S:
            self._backlog_peak = 0  # a new backlog episode
        self._last_backlog = now
        self._backlog_peak = max(self._backlog_peak, depth)

    def _rebalance(self, views: list[NodeView]) -> int:
        """The queue ran dry after a backlog: let idle fast nodes take over slow nodes' long answers."""
        moved = 0
        for state, outcome in self._moves(views):
            with self._cond:
                self._in_flight += 1
            if self._bind(state, outcome):
                moved += 1
            else:
                self.attempt_ended()
                self.requeue(state)
        return moved

    @staticmethod
    def _node_due_back(state: TaskState, views: Iterable[NodeView], config: SollolConfig, now: float) -> bool:
        """Whether a task with no place now should wait: a node it may use is due back soon (or was due
        moments ago), and it has not waited ``no_route_wait_s`` already."""
        if state.waiting_since is not None and now - state.waiting_since > config.no_route_wait_s:
            return False
        for view in views:
            if view.name not in state.excluded:
                due = due_back_in(view, now, config.breaker_cooldown_s)
                if due is not None and -DUE_SLACK_S <= due <= DUE_BACK_S:
                    return True
        return False


def _unroutable_summary(views: Iterable[NodeView], excluded: set[str], now: float) -> str:
    """Why each node (the first few) takes nothing, for the reason a task ends with no route."""
    whys = [f"{v.name}: {'failed this task already' if v.name in excluded else why}" for v in views
            if (why := why_unroutable(v, now)) is not None or v.name in excluded]
    if not whys:
        return ""
    more = f"; and {len(whys) - UNROUTABLE_SHOWN} more" if len(whys) > UNROUTABLE_SHOWN else ""
    return f" ({'; '.join(whys[:UNROUTABLE_SHOWN])}{more})"
