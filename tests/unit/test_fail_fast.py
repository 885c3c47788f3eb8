"""Fail fast: a task no node can take ends at once with no route and the nodes' reasons, unless a node it
may use is due back within a few seconds; then it waits, but not past the moment that node was due."""
from __future__ import annotations

import dataclasses

import pytest

from hydra.sollol.config import SollolConfig
from hydra.sollol.handle import TaskState
from hydra.sollol.node import Circuit, NodeView
from hydra.sollol.routing import RouteOutcome
from hydra.sollol.scheduler import DUE_BACK_S, DUE_SLACK_S, Dispatcher
from hydra.sollol.types import RoutingMode, Task, TaskStatus

NOW = 1000.0


def down(name: str, **fields: object) -> NodeView:
    view = NodeView(name=name, url="http://127.0.0.9:1", gpu=False, local=False, max_model_b=30, slots=2,
                    in_flight=0, healthy=False, circuit=Circuit.CLOSED, trial_in_flight=False, installed={},
                    loaded=frozenset(), vram_total_mb=None, vram_used_mb=None, polled=True,
                    last_error="cannot connect to http://127.0.0.9:1: is Ollama running there?")
    return dataclasses.replace(view, **fields)  # type: ignore[arg-type]


class Nowhere:
    """An engine whose nodes take nothing now (routing says so); the test says when each is due back."""

    def __init__(self, views: list[NodeView]) -> None:
        self.nodes = views
        self.now = NOW
        self.given_up: list[str] = []

    def clock(self) -> float:
        return self.now

    def route(self, state: TaskState, views: list[NodeView], ahead: int = 0) -> RouteOutcome:
        return RouteOutcome(None, None, "no routable node can serve m:1b", ())

    def give_up(self, state: TaskState, reason: str) -> None:
        self.given_up.append(reason)
        state.finish(TaskStatus.FAILED, error=reason)

    def dispatcher(self) -> Dispatcher:
        return Dispatcher(lambda: SollolConfig(breaker_cooldown_s=5.0), views=lambda: self.nodes, route=self.route,
                          bind=lambda s, o: False, give_up=self.give_up, expire=lambda s: None,
                          moves=lambda views: [], clock=self.clock)


def submitted(engine: Nowhere, excluded: set[str] = frozenset()) -> TaskState:  # type: ignore[assignment]
    state = TaskState(Task(prompt="p"), RoutingMode.ASYNC, "general")
    state.excluded.update(excluded)
    dispatcher = engine.dispatcher()
    dispatcher.submit(state)
    return state


def test_every_node_down_for_a_while_ends_the_task_at_once_with_their_reasons() -> None:
    engine = Nowhere([down("light"), down("powerful", circuit=Circuit.OPEN, opened_at=NOW, trips=6)])
    state = submitted(engine)  # the powerful node's circuit reopens in 120 s: not soon
    assert state.status is TaskStatus.FAILED
    [reason] = engine.given_up
    assert reason.startswith("no routable node can serve m:1b (light: unhealthy: cannot connect")
    assert "powerful: unhealthy" in reason


@pytest.mark.parametrize("case, node, slack", [
    # Once its backoff ends the node takes work again: nothing more to wait for.
    ("its backoff ends in 2 s", dataclasses.replace(down("n"), healthy=True, backoff_until=NOW + 2.0), 0.0),
    # These come back through a poll: a moment past the due time is given for it.
    ("its open circuit's cooldown ends in 2 s", dataclasses.replace(
        down("n"), healthy=True, circuit=Circuit.OPEN, opened_at=NOW - 3.0, trips=1), DUE_SLACK_S),
    ("it was healthy until its last poll, re-polled in 2 s", down("n", repoll_at=NOW + 2.0), DUE_SLACK_S),
])
def test_a_node_due_back_soon_is_waited_for_until_it_was_due(case: str, node: NodeView, slack: float) -> None:
    engine = Nowhere([node])
    dispatcher = engine.dispatcher()
    state = TaskState(Task(prompt="p"), RoutingMode.ASYNC, "general")
    dispatcher.submit(state)
    assert state.status is TaskStatus.QUEUED, case
    engine.now = NOW + 1.9
    dispatcher.dispatch_round()
    assert state.status is TaskStatus.QUEUED, case
    if slack:
        engine.now = NOW + 2.0 + slack - 0.1   # due, and a moment for the poll that tells
        dispatcher.dispatch_round()
        assert state.status is TaskStatus.QUEUED, case
    engine.now = NOW + 2.0 + DUE_SLACK_S + 0.1   # it did not come back when due: no more waiting
    dispatcher.dispatch_round()
    assert state.status is TaskStatus.FAILED and len(engine.given_up) == 1, case


def test_a_node_due_back_later_than_a_few_seconds_is_not_waited_for() -> None:
    engine = Nowhere([dataclasses.replace(down("n"), healthy=True, backoff_until=NOW + DUE_BACK_S + 1.0)])
    assert submitted(engine).status is TaskStatus.FAILED
    assert "n: backed off for 6.0 s more" in engine.given_up[0]


def test_a_node_that_failed_this_task_is_not_waited_for() -> None:
    engine = Nowhere([dataclasses.replace(down("n"), healthy=True, backoff_until=NOW + 1.0)])
    assert submitted(engine, excluded={"n"}).status is TaskStatus.FAILED
    assert "n: failed this task already" in engine.given_up[0]
