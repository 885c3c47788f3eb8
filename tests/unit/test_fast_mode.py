"""Fast mode keeps quality: no trade-down to the last resort while a tier model is routable, and a
lower tier wins only on measured speed (issue 14 item 5). Pure ``route()`` over hand-built views."""
from __future__ import annotations

import pytest

from hydra.sollol.config import SollolConfig
from hydra.sollol.fit import prior_load_s, prior_tps
from hydra.sollol.node import Circuit, NodeView
from hydra.sollol.routing import LAST_RESORT_SKIPPED, RouteRequest, route
from hydra.sollol.types import ModelInfo, Placement, RoutingMode, TierEntry
from hydra.tiers import EMBEDDED_MODEL, build_tiers

SIZES = {"qwen2.5-coder:7b": 7.6, "qwen2.5-coder:1.5b": 1.5, "qwen3:14b": 14.8, "qwen3:1.7b": 2.0,
         EMBEDDED_MODEL: 0.135}
CFG = SollolConfig()
CODE = build_tiers()["code"]  # the seed's code list, the embedded model last


def node(name: str, *models: str, gpu: bool = False, slots: int = 2, in_flight: int = 0, healthy: bool = True,
         local: bool = False, loaded: tuple[str, ...] | None = None) -> NodeView:
    return NodeView(
        name=name, url=f"http://127.0.0.9:{abs(hash(name)) % 50000 + 1024}", gpu=gpu, local=local,
        max_model_b=70 if gpu else 30, slots=slots, in_flight=in_flight, healthy=healthy, circuit=Circuit.CLOSED,
        trial_in_flight=False,
        installed={m: ModelInfo(m, SIZES[m], size_bytes=int(SIZES[m] * 0.6e9)) for m in models},
        loaded=frozenset(models if loaded is None else loaded), vram_total_mb=48_000 if gpu else None,
        vram_used_mb=0 if gpu else None, polled=True, last_error=None if healthy else "cannot connect")


def fast(entries: tuple[TierEntry, ...] = CODE, max_tokens: int = 200) -> RouteRequest:
    return RouteRequest(mode=RoutingMode.FAST, task_type="code", entries=entries, min_success_rate=0.98,
                        max_tokens=max_tokens)


def embedded(**kw) -> NodeView:
    return node("embedded", EMBEDDED_MODEL, slots=1, local=True, **kw)


def test_fast_never_trades_down_to_the_last_resort_while_a_tier_model_is_routable():
    # The embedded model measured very fast and idle; the coder model busy on its only node: fast waits
    # for the coder model rather than hand a code task to the 135M model.
    estimates = {("embedded", EMBEDDED_MODEL): (0.05, 300.0, None)}
    busy = node("light", "qwen2.5-coder:7b", in_flight=2)
    out = route(fast(), [busy, embedded()], CFG, estimates, {})
    assert out.node is None and out.wait and out.model == "qwen2.5-coder:7b"
    free = route(fast(), [node("light", "qwen2.5-coder:7b"), embedded()], CFG, estimates, {})
    assert (free.node, free.model) == ("light", "qwen2.5-coder:7b")
    [skipped] = [c for c in free.candidates if c.node == "embedded"]
    assert not skipped.eligible and skipped.reason == f"{EMBEDDED_MODEL}: {LAST_RESORT_SKIPPED}"


def test_fast_takes_the_last_resort_when_no_tier_model_is_routable():
    down = node("light", "qwen2.5-coder:7b", healthy=False)
    out = route(fast(), [down, embedded()], CFG, {}, {})
    assert (out.node, out.model) == ("embedded", EMBEDDED_MODEL)


def test_an_unmeasured_lower_tier_does_not_win_on_its_size_alone():
    # Both warm and idle; by the size prior alone the 1.5b decodes 5x faster than the 7b.
    entries = (TierEntry("qwen2.5-coder:7b", Placement.POWERFUL), TierEntry("qwen2.5-coder:1.5b", Placement.LIGHT))
    nodes = [node("big", "qwen2.5-coder:7b"), node("small", "qwen2.5-coder:1.5b")]
    out = route(fast(entries), nodes, CFG, {}, {})
    assert (out.node, out.model) == ("big", "qwen2.5-coder:7b")
    # Measured: the small model really is much faster there, so it wins.
    measured = {("small", "qwen2.5-coder:1.5b"): (0.1, 40.0, None), ("big", "qwen2.5-coder:7b"): (0.3, 8.0, None)}
    out = route(fast(entries), nodes, CFG, measured, {})
    assert (out.node, out.model) == ("small", "qwen2.5-coder:1.5b")


def test_a_lower_tier_still_wins_by_skipping_a_cold_load():
    # The load is known (the 7b is not in /api/ps); the speed is not assumed better than the 7b's.
    entries = (TierEntry("qwen2.5-coder:7b", Placement.POWERFUL), TierEntry("qwen2.5-coder:1.5b", Placement.LIGHT))
    only = node("cpu", "qwen2.5-coder:7b", "qwen2.5-coder:1.5b", loaded=("qwen2.5-coder:1.5b",))
    out = route(fast(entries), [only], CFG, {}, {})
    assert out.model == "qwen2.5-coder:1.5b"
    assert prior_load_s(False, only.installed["qwen2.5-coder:7b"]) > 5.0


@pytest.mark.parametrize("gpu", [False, True])
def test_a_tiny_model_is_assumed_no_faster_than_a_1b_one(gpu):
    tiny = ModelInfo(EMBEDDED_MODEL, 0.135)
    assert prior_tps(gpu, tiny) == prior_tps(gpu, ModelInfo("one", 1.0))
    assert prior_tps(gpu, tiny) < prior_tps(gpu, ModelInfo("half", 0.5)) * 2
