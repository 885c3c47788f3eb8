"""The fast mode's choice over hand-built node views: the warm node, the quicker node, a lower tier
that finishes sooner, and its inlined scan against the reference score (no I/O, no threads)."""
from __future__ import annotations

import pytest

from hydra.sollol.eligibility import needs_load, why_no_large_load, why_unfit, why_unroutable
from hydra.sollol.node import NodeView
from hydra.sollol.routing import route
from hydra.sollol.types import ModelInfo, Placement, RoutingMode, TierEntry
from tests.unit.routing_views import CFG, random_cluster, request, view


def test_fast_picks_the_warm_node():
    nodes = [view("cold"), view("warm", loaded=("qwen2.5-coder:7b",))]
    out = route(request(RoutingMode.FAST, entries=(TierEntry("qwen2.5-coder:7b"),)), nodes, CFG, {}, {})
    assert (out.node, out.model) == ("warm", "qwen2.5-coder:7b")
    assert "(warm)" in out.reason


def test_fast_picks_the_quicker_node_by_measured_speed():
    nodes = [view("slow", loaded=("qwen2.5-coder:7b",)), view("quick", loaded=("qwen2.5-coder:7b",))]
    estimates = {("slow", "qwen2.5-coder:7b"): (0.5, 5.0, None), ("quick", "qwen2.5-coder:7b"): (0.1, 50.0, None)}
    out = route(request(RoutingMode.FAST), nodes, CFG, estimates, {})
    assert out.node == "quick"


def test_fast_prefers_the_local_node_on_a_tie():
    nodes = [view("remote", local=False), view("local", local=True)]
    out = route(request(RoutingMode.FAST), nodes, CFG, {}, {})
    assert out.node == "local"


def test_fast_takes_a_lower_tier_when_it_finishes_sooner():
    node = view(loaded=("qwen2.5-coder:1.5b",))  # the small model is warm, the 7b would need a load
    fast = route(request(RoutingMode.FAST), [node], CFG, {}, {})
    assert fast.model == "qwen2.5-coder:1.5b"
    # The other modes keep the seed's rule: the first model of the tier that fits.
    for mode in (RoutingMode.ASYNC, RoutingMode.RELIABLE):
        out = route(request(mode), [node], CFG, {}, {})
        assert out.model == "qwen2.5-coder:7b", mode


def test_fast_keeps_the_first_tier_when_it_is_as_quick():
    node = view(loaded=("qwen2.5-coder:7b", "qwen2.5-coder:1.5b"))
    estimates = {("cpu", "qwen2.5-coder:7b"): (0.1, 40.0, None), ("cpu", "qwen2.5-coder:1.5b"): (0.1, 40.0, None)}
    out = route(request(RoutingMode.FAST), [node], CFG, estimates, {})
    assert out.model == "qwen2.5-coder:7b"


@pytest.mark.parametrize("seed", range(6))
def test_fast_scores_are_score_fast_for_every_pair_and_the_lowest_wins(seed):
    """The fast scan inlines score_fast for speed: every recorded score must be what the reference
    formula gives for that node's best entry, and the decision must take the lowest of them."""
    from hydra.sollol.scoring import score_fast
    nodes, estimates, rates = random_cluster(seed)
    entries = (TierEntry("llama3.1:70b", Placement.MOST_CAPABLE_ONLY), TierEntry("deepseek-coder-v2", Placement.POWERFUL),
               TierEntry("qwen2.5-coder:7b", Placement.POWERFUL), TierEntry("mistral", Placement.ANY),
               TierEntry("qwen2.5-coder:1.5b", Placement.LIGHT))
    req = request(RoutingMode.FAST, entries, prompt_tokens=120, max_tokens=300, ahead=1)
    outcome = route(req, nodes, CFG, estimates, rates)
    by_name = {n.name: n for n in nodes}
    top = max(n.capability for n in nodes if why_unroutable(n) is None)
    scored = [c for c in outcome.candidates if c.eligible]
    assert scored, "the random cluster must give the fast scan something to score"

    def fits(node: NodeView) -> list[tuple[int, TierEntry, ModelInfo]]:
        out = []
        for index, entry in enumerate(entries):
            model_info = node.installed.get(entry.model) or node.installed.get(entry.model + ":latest")
            if model_info is None or why_unfit(node, model_info) or why_no_large_load(node, entry.model, model_info, CFG):
                continue
            if entry.placement is Placement.MOST_CAPABLE_ONLY and node.capability < top:
                continue
            out.append((index, entry, model_info))
        return out
    # The best tier any routable node holds: lower tiers are scored against its model's prior speed.
    head_index, head_info = min(((i, m) for n in nodes if why_unroutable(n) is None for i, _e, m in fits(n)),
                                key=lambda pair: pair[0])
    for c in scored:
        node = by_name[c.node]
        expected = [(score_fast(index, entry, node, model_info, req, estimates, top, rates,
                                head_info if index > head_index else None), entry.model)
                    for index, entry, model_info in fits(node)]
        best_score, best_model = min(expected)
        assert c.model == best_model
        assert c.score == pytest.approx(round(best_score, 4), abs=1e-4)
        warm = "warm" if not needs_load(node, best_model) else "cold load"
        assert c.reason.endswith(f"est. {best_score:.2f} s to finish ({warm})"), c.reason
    if outcome.node is not None:
        assert outcome.node == min(scored, key=lambda c: c.score).node
