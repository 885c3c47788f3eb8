"""NodeState.view(): a cached copy, retired by any change of what a view shows."""
from __future__ import annotations

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
        lambda: setattr(state, "removed", True),
    ]
    for change in changes:
        before = state.view()
        change()
        after = state.view()
        assert after is not before
    final = state.view()
    assert final.in_flight == 0 and final.loaded == frozenset({"m:1b"}) and not final.healthy
    assert final.circuit is Circuit.OPEN and final.last_error == "first token timeout"


def test_a_circuit_that_cools_down_shows_half_open_in_the_next_view():
    state = _state()
    state.charge("boom", threshold=1)
    opened = state.view(now=state.opened_at + 0.1, breaker_cooldown_s=1.0)
    assert opened.circuit is Circuit.OPEN
    later = state.view(now=state.opened_at + 5.0, breaker_cooldown_s=1.0)
    assert later.circuit is Circuit.HALF_OPEN and later is not opened


def test_mark_loaded_in_place_is_seen():
    state = _state()
    before = state.view()
    state.mark_loaded("m:1b")
    assert "m:1b" in state.view().loaded and "m:1b" not in before.loaded
