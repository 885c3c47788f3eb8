"""The priority queue with aging, and one dispatch round over a fake engine and a fake clock."""
from __future__ import annotations

import threading

import pytest

from hydra.sollol.config import SollolConfig
from hydra.sollol.handle import TaskState
from hydra.sollol.node import Circuit, NodeView
from hydra.sollol.routing import RouteOutcome
from hydra.sollol.scheduler import Dispatcher, TaskQueue
from hydra.sollol.types import RoutingMode, Task, TaskStatus

AGING_S = 10.0


def state(priority: int, enqueued: float, name: str = "") -> TaskState:
    task = Task(prompt=name or f"p{priority}@{enqueued}", priority=priority)
    return TaskState(task=task, mode=RoutingMode.ASYNC, task_type="general", submitted_mono=enqueued)


def order(queue: TaskQueue) -> list[str]:
    return [s.task.prompt for s in queue.pop_batch(100)]


@pytest.mark.parametrize("entries, expected", [
    ([("low", 2, 0.0), ("high", 10, 0.0)], ["high", "low"]),
    ([("a", 5, 0.0), ("b", 5, 0.0), ("c", 5, 0.0)], ["a", "b", "c"]),            # FIFO within a level
    ([("old-low", 1, 0.0), ("new-high", 10, 5.0)], ["new-high", "old-low"]),      # waited half a level
    ([("old-low", 1, 0.0), ("new-high", 10, 91.0)], ["old-low", "new-high"]),     # waited > 9 levels
    ([("old-low", 1, 0.0), ("new-high", 10, 90.0)], ["old-low", "new-high"]),     # tie: the earlier one
    ([("p2", 2, 0.0), ("p7", 7, 20.0), ("p9", 9, 25.0)], ["p9", "p7", "p2"]),
], ids=["priority-10-before-2", "fifo-same-priority", "fresh-urgent-wins", "aged-low-wins",
        "aged-tie-first-come", "mixed"])
def test_queue_order_with_aging(entries, expected):
    queue = TaskQueue(AGING_S)
    for name, priority, enqueued in entries:
        queue.push(state(priority, enqueued, name))
    assert order(queue) == expected


def test_cancelled_entries_are_dropped_when_popped():
    queue = TaskQueue(AGING_S)
    a, b = state(5, 0.0, "a"), state(5, 1.0, "b")
    queue.push(a)
    queue.push(b)
    a.finish(TaskStatus.CANCELLED, error="cancelled")
    assert order(queue) == ["b"]
    assert len(queue) == 0


def test_pop_batch_respects_its_limit_and_keeps_the_rest():
    queue = TaskQueue(AGING_S)
    for i in range(5):
        queue.push(state(10 - i, 0.0, f"t{i}"))
    assert [s.task.prompt for s in queue.pop_batch(2)] == ["t0", "t1"]
    assert len(queue) == 3
    assert order(queue) == ["t2", "t3", "t4"]


def test_drain_returns_only_live_tasks():
    queue = TaskQueue(AGING_S)
    live, dead = state(5, 0.0, "live"), state(5, 0.0, "dead")
    queue.push(live)
    queue.push(dead)
    dead.finish(TaskStatus.CANCELLED)
    assert [s.task.prompt for s in queue.drain()] == ["live"]
    assert len(queue) == 0


# --- the dispatcher over a fake engine ---

def node_view(name: str, slots: int, in_flight: int = 0) -> NodeView:
    return NodeView(name=name, url="http://127.0.0.9:1", gpu=False, local=False, max_model_b=30, slots=slots,
                    in_flight=in_flight, healthy=True, circuit=Circuit.CLOSED, trial_in_flight=False, installed={},
                    loaded=frozenset(), vram_total_mb=None, vram_used_mb=None, polled=True, last_error=None)


class FakeEngine:
    """Binds every task to the first node with a free slot, as in the views it is given."""

    def __init__(self, nodes: dict[str, int], *, routable: bool = True) -> None:
        self.nodes = nodes              # name -> slots
        self.busy = {n: 0 for n in nodes}
        self.routable = routable
        self.started: list[str] = []
        self.given_up: list[tuple[str, str]] = []
        self.expired: list[str] = []

    def views(self):
        return [node_view(n, s, self.busy[n]) for n, s in self.nodes.items()]

    def route(self, st, views, ahead=0):
        if not self.routable:
            return RouteOutcome(None, None, "no routable node can serve x", ())
        free = next((v for v in views if v.free_slots), None)
        if free is None:
            return RouteOutcome(None, "m", "waiting for a free slot", (), wait=True)
        return RouteOutcome(free.name, "m", "ok", ())

    def bind(self, st, outcome):
        st.bind(outcome.node, outcome.model, None)
        self.busy[outcome.node] += 1
        self.started.append(st.task.prompt)
        return True

    def give_up(self, st, reason):
        self.given_up.append((st.task.prompt, reason))
        st.finish(TaskStatus.FAILED, error=reason)

    def expire(self, st):
        self.expired.append(st.task.prompt)
        st.finish(TaskStatus.FAILED, error="deadline")


def over(engine: FakeEngine, config_source, clock=None) -> Dispatcher:
    """A dispatcher over the fake engine's steps (the router gives it the attempt life cycle's)."""
    extra = {"clock": clock} if clock is not None else {}
    return Dispatcher(config_source, views=engine.views, route=engine.route, bind=engine.bind,
                      give_up=engine.give_up, expire=engine.expire, moves=lambda views: [], **extra)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("config, expected", [
    (SollolConfig(max_concurrent_requests=4), 4),
    (SollolConfig(max_concurrent_requests=2), 2),
    (SollolConfig(max_concurrent_requests=4, parallel_requests=False), 1),
], ids=["cap-4", "cap-2", "parallel-off"])
def test_dispatch_round_never_exceeds_the_global_cap(config, expected):
    engine = FakeEngine({"a": 8, "b": 8})
    dispatcher = over(engine, lambda: config)
    states = [state(5, float(i), f"t{i}") for i in range(12)]
    for st in states:
        st.submitted_mono = 0.0
        dispatcher.submit(st)       # binds in the caller's thread while there is room
    dispatcher.dispatch_round()
    assert dispatcher.in_flight == expected
    assert len(engine.started) == expected
    assert sum(st.status is TaskStatus.QUEUED for st in states) == 12 - expected
    # One attempt ends: exactly one more may start.
    states[0].finish(TaskStatus.DONE)
    dispatcher.attempt_ended()
    dispatcher.dispatch_round()
    assert dispatcher.in_flight == expected
    assert len(engine.started) == expected + 1


def test_dispatch_round_respects_node_slots():
    engine = FakeEngine({"a": 1, "b": 1})
    dispatcher = over(engine, lambda: SollolConfig(max_concurrent_requests=4))
    for i in range(4):
        dispatcher.submit(state(5, float(i), f"t{i}"))
    dispatcher.dispatch_round()
    assert engine.busy == {"a": 1, "b": 1}
    assert engine.started == ["t0", "t1"]


def test_dispatch_binds_the_most_urgent_first():
    engine = FakeEngine({"a": 1})
    dispatcher = over(engine, lambda: SollolConfig(max_concurrent_requests=1))
    first = state(5, 0.0, "running")
    dispatcher.submit(first)
    for name, priority in [("p2-a", 2), ("p2-b", 2), ("p10", 10)]:
        dispatcher.submit(state(priority, 1.0, name))
    first.finish(TaskStatus.DONE)
    engine.busy["a"] = 0
    dispatcher.attempt_ended()
    dispatcher.dispatch_round()
    assert engine.started == ["running", "p10"]


def test_a_task_with_no_possible_place_fails_at_once():
    engine = FakeEngine({"a": 2}, routable=False)
    dispatcher = over(engine, lambda: SollolConfig())
    st = state(5, 0.0, "lost")
    dispatcher.submit(st)
    dispatcher.dispatch_round()
    assert engine.given_up == [("lost", "no routable node can serve x")]
    assert st.status is TaskStatus.FAILED


def test_a_queued_task_past_its_deadline_expires():
    clock = Clock()
    engine = FakeEngine({"a": 1})
    dispatcher = over(engine, lambda: SollolConfig(max_concurrent_requests=1), clock=clock)
    dispatcher.submit(state(5, clock.now, "running"))
    late = state(5, clock.now, "late")
    late.task.deadline = 5.0
    dispatcher.submit(late)
    clock.now += 6.0
    dispatcher.attempt_ended()
    engine.busy["a"] = 0
    dispatcher.dispatch_round()
    assert engine.expired == ["late"]
    assert late.status is TaskStatus.FAILED


def test_close_returns_the_queued_tasks():
    engine = FakeEngine({"a": 1})
    dispatcher = over(engine, lambda: SollolConfig(max_concurrent_requests=1))
    dispatcher.start()
    states = [state(5, float(i), f"t{i}") for i in range(3)]
    for st in states:
        dispatcher.submit(st)
    left = dispatcher.close()
    assert sorted(s.task.prompt for s in left) == ["t1", "t2"]


def test_a_requeue_only_queues_and_wakes_it_never_runs_a_round_in_the_callers_thread():
    engine = FakeEngine({"a": 2})
    dispatcher = over(engine, lambda: SollolConfig(max_concurrent_requests=2))
    failed_over = state(5, 0.0, "failed-over")
    dispatcher.requeue(failed_over)         # a worker's (or the watchdog's) thread, with a free slot
    assert engine.started == [] and failed_over.status is TaskStatus.QUEUED
    dispatcher.dispatch_round()             # what the woken dispatcher thread does
    assert engine.started == ["failed-over"]


def test_the_dispatcher_thread_binds_a_requeued_task():
    engine = FakeEngine({"a": 1})
    bound_on: list[str] = []
    done = threading.Event()
    fake_bind = engine.bind

    def bind(st, outcome):
        bound_on.append(threading.current_thread().name)
        done.set()
        return fake_bind(st, outcome)

    dispatcher = Dispatcher(lambda: SollolConfig(), views=engine.views, route=engine.route, bind=bind,
                            give_up=engine.give_up, expire=engine.expire, moves=lambda views: [])
    dispatcher.start()
    try:
        dispatcher.requeue(state(5, 0.0, "again"))
        assert done.wait(5), "the dispatcher thread never bound the requeued task"
    finally:
        dispatcher.close()
    assert bound_on == ["sollol-dispatcher"]
