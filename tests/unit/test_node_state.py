"""NodeState.view(): a cached copy, retired by any change of what a view shows; the circuit changes
only by explicit steps (reading a view never moves it); the monitor takes the timed one."""
from __future__ import annotations

from hydra.sollol.config import SollolConfig
from hydra.sollol.monitor import NodeMonitor
from hydra.sollol.node import Circuit, NodeState
from hydra.sollol.types import LoadedModel, ModelInfo, NodeSpec


def _state() -> NodeState:
    state = NodeState(NodeSpec(url="http://127.0.0.9:11434", name="n", gpu=True, vram_mb=8000, slots=2))
    state.poll_ok("0.12.0", {"m:1b": ModelInfo("m:1b", 1.0, 700_000_000)}, {})
    return state


def test_an_unchanged_node_gives_the_same_view():
    state = _state()
    assert state.view() is state.view()


def test_every_kind_of_change_gives_a_fresh_view():
    state = _state()
    changes = [
        lambda: state.begin(False),
        lambda: state.end(ok=True),
        lambda: state.mark_loaded("m:1b"),
        lambda: state.poll_ok("0.12.0", None, {"m:1b": LoadedModel("m:1b", 700_000_000, 700_000_000, "")}),
        lambda: state.poll_failed("connection refused"),
        lambda: state.charge("first token timeout", threshold=1),
        lambda: state.mark_removed(),
    ]
    for change in changes:
        before = state.view()
        change()
        after = state.view()
        assert after is not before
    final = state.view()
    assert final.in_flight == 0 and final.loaded == frozenset({"m:1b"}) and not final.healthy
    assert final.circuit is Circuit.OPEN and final.last_error == "first token timeout"


def test_reading_a_view_never_changes_the_circuit():
    state = _state()
    state.charge("boom", threshold=1)
    opened = state.view()
    state.opened_at -= 3600.0  # as if an hour had passed: far past any cooldown
    later = state.view()
    assert opened.circuit is later.circuit is state.circuit is Circuit.OPEN
    assert later is opened  # nothing changed, so the same copy


def test_the_circuit_goes_half_open_by_its_own_step_after_the_cooldown():
    state = _state()
    state.charge("boom", threshold=1)
    opened = state.view()
    assert state.cooldown_left(1.0, now=state.opened_at + 0.25) == 0.75
    assert not state.half_open_if_due(1.0, now=state.opened_at + 0.5)
    assert state.view() is opened
    assert state.half_open_if_due(1.0, now=state.opened_at + 1.0)
    assert not state.half_open_if_due(1.0, now=state.opened_at + 2.0)  # one step, taken once
    half = state.view()
    assert half.circuit is Circuit.HALF_OPEN and half is not opened
    assert state.cooldown_left(1.0) is None  # not open any more


def test_an_unhealthy_node_stays_open_past_the_cooldown():
    state = _state()
    state.charge("boom", threshold=1)
    state.poll_failed("connection refused")
    assert not state.half_open_if_due(1.0, now=state.opened_at + 60.0)
    assert state.view().circuit is Circuit.OPEN


def test_half_open_takes_the_step_when_due_and_says_so():
    state = _state()
    state.charge("boom", threshold=1)
    assert state.half_open(1e9) is False and state.circuit is Circuit.OPEN
    assert state.half_open(0.0) is True and state.view().circuit is Circuit.HALF_OPEN


def test_the_cooldown_doubles_on_each_trip():
    state = _state()
    state.charge("boom", threshold=1)
    first = state.cooldown(1.0)
    state.half_open_if_due(0.0)
    state.charge("boom again", threshold=1)  # the trial failed: open again, for longer
    assert (first, state.cooldown(1.0)) == (1.0, 2.0)


class _AnsweringClient:
    """What the monitor asks a node, answered at once."""

    def version(self) -> str:
        return "0.12.0"

    def ps(self) -> dict[str, LoadedModel]:
        return {}

    def tags(self) -> dict[str, ModelInfo]:
        return {"m:1b": ModelInfo("m:1b", 1.0, 700_000_000)}

    def capabilities(self, model: str) -> list[str] | None:
        return ["completion"]


def _monitor(state: NodeState, config: SollolConfig) -> NodeMonitor:
    return NodeMonitor(state, _AnsweringClient(), lambda: config, lambda _state: None)  # type: ignore[arg-type]


def test_the_monitor_makes_an_open_circuit_half_open_at_the_first_good_poll_after_the_cooldown():
    state = _state()
    state.charge("boom", threshold=1)
    assert _monitor(state, SollolConfig(breaker_cooldown_s=3600.0)).poll_once()
    assert state.view().circuit is Circuit.OPEN  # within the cooldown: still open
    assert _monitor(state, SollolConfig(breaker_cooldown_s=0.0)).poll_once()
    assert state.view().circuit is Circuit.HALF_OPEN


def test_the_monitor_polls_again_when_the_cooldown_ends():
    state = _state()
    config = SollolConfig(poll_interval_s=2.0, breaker_cooldown_s=0.5)
    monitor = _monitor(state, config)
    assert monitor._next_poll_in(config, failures=0) == 2.0       # closed: the usual interval
    state.charge("boom", threshold=1)
    assert 0.0 < monitor._next_poll_in(config, failures=0) <= 0.5  # open: no later than the cooldown's end
    assert monitor._next_poll_in(config, failures=2) == 8.0        # down: backed off (it cannot go half-open)


def test_mark_loaded_in_place_is_seen():
    state = _state()
    before = state.view()
    state.mark_loaded("m:1b")
    assert "m:1b" in state.view().loaded and "m:1b" not in before.loaded
