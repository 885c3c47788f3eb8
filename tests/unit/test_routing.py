"""Routing predicates and ``route()`` over hand-built node views (no I/O, no threads). The fast
mode's own tests are in test_fast_mode_routing.py."""
from __future__ import annotations

import pytest

from hydra.sollol.eligibility import needs_load, vram_low, why_no_large_load, why_unfit, why_unroutable
from hydra.sollol.node import Circuit, NodeView
from hydra.sollol.routing import route
from hydra.sollol.types import Placement, RoutingMode, TierEntry
from tests.unit.routing_views import CFG, CODE, gpu, info, random_cluster, reason_of, request, view

MIB = 1024 * 1024


# --- predicates ---

@pytest.mark.parametrize("node, expected", [
    (view(), None),
    (view(healthy=False, last_error="cannot connect"), "unhealthy: cannot connect"),
    (view(circuit=Circuit.OPEN, last_error="HTTP 500"), "circuit open after: HTTP 500"),
    (view(circuit=Circuit.HALF_OPEN), None),
    (view(circuit=Circuit.HALF_OPEN, trial=True), "circuit half-open, trial request in flight"),
    (view(in_flight=2, slots=2), None),  # busy is not unroutable: the task waits for a slot
], ids=["healthy", "unhealthy", "circuit-open", "half-open-no-trial", "half-open-trial-running", "busy"])
def test_is_routable(node, expected):
    assert why_unroutable(node) == expected


@pytest.mark.parametrize("node, model, expected", [
    (view(max_b=30), "qwen2.5-coder:7b", None),
    (view(max_b=30, models=("llama3.1:70b",)), "llama3.1:70b", "too large: 70.6B > max 30B"),
    (gpu(max_b=70), "llama3.1:70b", None),  # nominal sizes: "70B" holds 70.6B
    (view(max_b=30, models=("qwen2.5-coder:32b",)), "qwen2.5-coder:32b", "too large: 32.8B > max 30B"),
    (gpu(max_b=None, vram_mb=4_000), "qwen2.5-coder:7b", "too large: needs 4,349 MB > 4,000 MB VRAM"),
    (view(max_b=None, models=("llama3.1:70b",)), "llama3.1:70b", None),  # nothing declared: no limit known
], ids=["cpu-fits", "over-max-model-b", "gpu-70b-fits", "32b-on-30b-node", "over-vram", "undeclared"])
def test_fits(node, model, expected):
    assert why_unfit(node, info(model)) == expected


@pytest.mark.parametrize("loaded, model, expected", [
    ((), "mistral:latest", True),
    (("mistral:latest",), "mistral:latest", False),
    (("mistral:latest",), "mistral", False),  # Ollama resolves a bare name to :latest
    (("qwen2.5-coder:1.5b",), "qwen2.5-coder:7b", True),
], ids=["cold", "warm", "warm-bare-name", "other-model-warm"])
def test_needs_load(loaded, model, expected):
    assert needs_load(view(loaded=loaded), model) is expected


@pytest.mark.parametrize("mode", list(RoutingMode))
@pytest.mark.parametrize("written", ["mistral", "Mistral", "mistral:latest", " Mistral:Latest "])
def test_a_model_name_is_resolved_as_ollama_resolves_it(mode, written):
    # One rule (model_names.model_key) for routing, tiers and the warm check: no tag means :latest,
    # case and surrounding spaces do not matter.
    node = view(models=("mistral:latest",), loaded=("mistral:latest",))
    out = route(request(mode, (TierEntry(written),)), [node], CFG, {}, {})
    assert (out.node, out.model) == ("cpu", written)
    assert not needs_load(node, written)


def test_tiers_compare_model_names_with_the_engines_rule():
    from hydra import tiers
    from hydra.sollol.model_names import model_key
    assert tiers.model_key is model_key


@pytest.mark.parametrize("node, config, expected", [
    (gpu(vram_mb=8_000, vram_used_mb=7_950), CFG, True),
    (gpu(vram_mb=8_000, vram_used_mb=7_900), CFG, False),  # exactly 100 MB free is enough
    (gpu(vram_mb=8_000, vram_used_mb=7_950), CFG.replace(vram_monitoring=False), False),
    (gpu(vram_mb=8_000, vram_used_mb=4_000), CFG.replace(min_vram_mb=5_000), True),
    (view(), CFG, False),
    # A CPU-only node is never "low on VRAM", whatever numbers it carries.
    (NodeView("cpu", "http://127.0.0.9:1", False, False, 30, 2, 0, True, Circuit.CLOSED, False, {}, frozenset(),
              8_000, 7_999, True, None), CFG, False),
    (view(), CFG.replace(min_vram_mb=1_048_576), False),
], ids=["gpu-low", "gpu-at-threshold", "monitoring-off", "custom-threshold", "cpu",
        "cpu-with-stray-vram-figures", "cpu-huge-threshold"])
def test_vram_low(node, config, expected):
    assert vram_low(node, config) is expected


LOW = {"vram_mb": 8_000, "vram_used_mb": 7_990}


@pytest.mark.parametrize("node, model, blocked", [
    (gpu(**LOW), "mistral:latest", True),                                   # cold and large
    (gpu(**LOW, loaded=("mistral:latest",)), "mistral:latest", False),      # warm: no new load
    (gpu(**LOW), "qwen2.5-coder:1.5b", False),                              # under large_model_b
    (gpu(), "mistral:latest", False),                                       # plenty of VRAM
    (view(), "mistral:latest", False),                                      # CPU node
], ids=["gpu-low-cold-large", "gpu-low-warm", "gpu-low-small-model", "gpu-roomy", "cpu"])
def test_blocks_large_load(node, model, blocked):
    why = why_no_large_load(node, model, info(model), CFG)
    assert (why is not None) is blocked
    if blocked:
        assert why.startswith("VRAM low: 10 MB free < 100 MB")


# --- route() ---

def test_async_prefers_the_cpu_node_when_both_are_free():
    out = route(request(), [gpu(), view()], CFG, {}, {})
    assert (out.node, out.model) == ("cpu", "qwen2.5-coder:7b")
    assert "CPU node first" in out.reason
    gpu_candidate = next(c for c in out.candidates if c.node == "gpu" and c.eligible)
    cpu_candidate = next(c for c in out.candidates if c.node == "cpu" and c.eligible)
    assert gpu_candidate.score > cpu_candidate.score


def test_async_takes_the_gpu_once_the_cpu_node_is_full():
    out = route(request(), [gpu(), view(in_flight=2)], CFG, {}, {})
    assert out.node == "gpu"
    assert reason_of(out, "cpu").startswith("busy (2/2 slots)")


def test_async_spreads_over_cpu_nodes_by_load():
    out = route(request(), [view("cpu-a", in_flight=1), view("cpu-b"), gpu()], CFG, {}, {})
    assert out.node == "cpu-b"


def test_async_waits_when_every_place_is_busy():
    out = route(request(), [gpu(in_flight=2), view(in_flight=2)], CFG, {}, {})
    assert out.node is None and out.wait
    assert "waiting for a free slot" in out.reason


def test_async_has_no_local_preference():
    out = route(request(), [gpu(local=True), view(local=False)], CFG, {}, {})
    assert out.node == "cpu"


def test_reliable_excludes_a_node_below_min_success_rate():
    rates = {"gpu": (0.9, 20), "cpu": (1.0, 20)}
    out = route(request(RoutingMode.RELIABLE), [gpu(), view()], CFG, {}, rates)
    assert out.node == "cpu"
    assert reason_of(out, "gpu") == "reliable: success 90% < 98%"


def test_reliable_picks_the_most_capable_proven_node():
    rates = {"gpu": (1.0, 20), "cpu": (1.0, 20)}
    out = route(request(RoutingMode.RELIABLE), [view(), gpu()], CFG, {}, rates)
    assert out.node == "gpu"
    assert "most capable eligible (70B)" in out.reason


@pytest.mark.parametrize("rates, min_rate, expected", [
    ({"gpu": (0.0, 2)}, 0.98, "gpu"),    # two samples are not enough to judge
    ({"gpu": (0.97, 50)}, 0.98, "cpu"),
    ({"gpu": (0.97, 50)}, 0.95, "gpu"),  # the task's own threshold
    ({"gpu": (0.98, 50)}, 0.98, "gpu"),  # at the threshold is good enough
], ids=["too-few-samples", "just-below", "task-threshold", "at-threshold"])
def test_reliable_threshold(rates, min_rate, expected):
    out = route(request(RoutingMode.RELIABLE, min_success_rate=min_rate), [view(), gpu()], CFG, {}, rates)
    assert out.node == expected


def test_reliable_avoids_a_half_open_circuit():
    out = route(request(RoutingMode.RELIABLE), [view(), gpu(circuit=Circuit.HALF_OPEN)], CFG, {}, {})
    assert out.node == "cpu"
    assert reason_of(out, "gpu") == "reliable: circuit not closed"


def test_most_capable_only():
    entries = (TierEntry("llama3.1:70b", Placement.MOST_CAPABLE_ONLY), TierEntry("mistral:latest", Placement.ANY))
    nodes = [gpu("gpu-70"), gpu("gpu-80", max_b=80)]
    out = route(request(entries=entries), nodes, CFG, {}, {})
    assert (out.node, out.model) == ("gpu-80", "llama3.1:70b")
    assert reason_of(out, "gpu-70") == "llama3.1:70b: not the most capable node (70B < 80B)"


def test_most_capable_only_among_routable_nodes():
    entries = (TierEntry("llama3.1:70b", Placement.MOST_CAPABLE_ONLY),)
    nodes = [gpu("gpu-70"), gpu("gpu-80", max_b=80, healthy=False)]
    out = route(request(entries=entries), nodes, CFG, {}, {})
    assert out.node == "gpu-70"


def test_general_tier_falls_back_when_the_70b_fits_nowhere():
    entries = (TierEntry("llama3.1:70b", Placement.MOST_CAPABLE_ONLY), TierEntry("mistral:latest", Placement.ANY))
    nodes = [view("cpu", models=("llama3.1:70b", "mistral:latest"))]
    out = route(request(entries=entries), nodes, CFG, {}, {})
    assert (out.node, out.model) == ("cpu", "mistral:latest")
    assert out.reason.startswith("async: cpu with mistral:latest")
    only = route(request(entries=entries[:1]), nodes, CFG, {}, {})
    assert only.node is None and not only.wait
    assert reason_of(only, "cpu") == "llama3.1:70b: too large: 70.6B > max 30B"


def test_explicit_model():
    req = request(entries=(TierEntry("mistral"),), explicit_model=True)
    nodes = [view("without", models=("llama3.2:3b",)), view("with", models=("mistral:latest",))]
    out = route(req, nodes, CFG, {}, {})
    assert (out.node, out.model) == ("with", "mistral")
    assert reason_of(out, "without") == "mistral: model not installed"


def test_explicit_model_installed_nowhere_is_impossible():
    req = request(entries=(TierEntry("nonexistent:1b"),), explicit_model=True)
    out = route(req, [view(), gpu()], CFG, {}, {})
    assert out.node is None and not out.wait
    assert "no routable node can serve nonexistent:1b" in out.reason
    assert all(not c.eligible and c.reason == "nonexistent:1b: model not installed" for c in out.candidates)


def test_a_failed_node_is_excluded():
    out = route(request(excluded=frozenset({"cpu"})), [view(), gpu()], CFG, {}, {})
    assert out.node == "gpu"
    assert reason_of(out, "cpu") == "failed this task already"


def test_only_the_failed_node_left_means_no_route():
    out = route(request(excluded=frozenset({"cpu"})), [view()], CFG, {}, {})
    assert out.node is None and not out.wait


def test_unpolled_node_makes_the_task_wait():
    out = route(request(), [view(polled=False, models=())], CFG, {}, {})
    assert out.node is None and out.wait
    assert "waiting for model lists" in out.reason


def test_cpu_only_node_is_never_refused_for_vram():
    out = route(request(), [view(in_flight=0)], CFG.replace(min_vram_mb=1_048_576), {}, {})
    assert out.node == "cpu"
    assert all("VRAM" not in c.reason for c in out.candidates)


def test_gpu_under_min_vram_refuses_new_large_loads_but_not_warm_models():
    low = gpu(**LOW, loaded=("qwen2.5-coder:7b",))
    entries = (TierEntry("mistral:latest"),)
    out = route(request(RoutingMode.FAST, entries=entries), [low, view()], CFG, {}, {})
    assert out.node == "cpu"
    assert reason_of(out, "gpu").startswith("mistral:latest: VRAM low: 10 MB free < 100 MB")
    warm = route(request(RoutingMode.FAST, entries=(TierEntry("qwen2.5-coder:7b"),)), [low], CFG, {}, {})
    assert warm.node == "gpu"
    small = route(request(RoutingMode.FAST, entries=(TierEntry("qwen2.5-coder:1.5b"),)), [low], CFG, {}, {})
    assert small.node == "gpu"


def test_every_candidate_has_a_reason_and_only_eligible_ones_a_score():
    nodes = [view(), gpu(healthy=False, last_error="down"), view("busy", in_flight=2),
             view("other", models=("llama3.2:3b",))]
    out = route(request(), nodes, CFG, {}, {})
    assert out.node == "cpu"
    assert {c.node for c in out.candidates} == {"cpu", "gpu", "busy", "other"}
    for c in out.candidates:
        assert c.reason
        assert (c.score is not None) == c.eligible
    chosen = [c for c in out.candidates if c.reason.startswith("chosen:")]
    assert [(c.node, c.model) for c in chosen] == [("cpu", "qwen2.5-coder:7b")]




def test_a_view_with_its_fit_table_routes_as_one_without():
    """NodeState hands views a cached fit table; a bare view builds its own. Same answers either way."""
    import dataclasses

    from hydra.sollol.node import fit_table
    nodes, estimates, rates = random_cluster(3)
    cached = [dataclasses.replace(n, fit=fit_table(n.installed, n.max_model_b, n.gpu, n.vram_total_mb)) for n in nodes]
    for mode in RoutingMode:
        for entries in (CODE, (TierEntry("mistral"), TierEntry("llama3.1:70b", Placement.MOST_CAPABLE_ONLY))):
            a = route(request(mode, entries), nodes, CFG, estimates, rates)
            b = route(request(mode, entries), cached, CFG, estimates, rates)
            assert (a.node, a.model, a.reason, a.wait) == (b.node, b.model, b.reason, b.wait)
            assert a.candidates == b.candidates


def _drain_cluster() -> list[NodeView]:
    loaded = ("qwen2.5-coder:7b",)
    return [gpu("gpu-a", slots=4, in_flight=4, loaded=loaded), gpu("gpu-b", slots=4, in_flight=4, loaded=loaded),
            view("cpu", slots=1, in_flight=0, loaded=loaded)]


def test_async_slow_node_takes_long_work_while_the_backlog_outlasts_it():
    # 80 tasks ahead spread over 8 fast slots: the cluster is busy well past the CPU node's 13 s.
    req = request(RoutingMode.ASYNC, (TierEntry("qwen2.5-coder:7b"),), ahead=80)
    assert route(req, _drain_cluster(), CFG, {}, {}).node == "cpu"


def test_async_slow_node_leaves_long_work_to_fast_nodes_that_drain_sooner():
    # 30 ahead: the fast nodes clear them (and this task) in ~9 s, before the CPU node would (13 s).
    # Counting all 30 on one fast node (the old estimate) said ~14 s and gave the task to the CPU node.
    req = request(RoutingMode.ASYNC, (TierEntry("qwen2.5-coder:7b"),), ahead=30)
    outcome = route(req, _drain_cluster(), CFG, {}, {})
    assert outcome.node is None and outcome.wait


# --- async: a task that will think goes to the powerful node while it has a free slot ---

REASONING = (TierEntry("qwen3:14b", Placement.POWERFUL), TierEntry("qwen2.5-coder:1.5b", Placement.LIGHT))
SEED_LIKE = {"models": ("qwen3:14b", "qwen2.5-coder:7b", "qwen2.5-coder:1.5b", "mistral:latest")}


def test_async_sends_a_thinking_task_to_the_free_powerful_node():
    req = request(RoutingMode.ASYNC, (TierEntry("qwen2.5-coder:7b"),), thinking=True)
    out = route(req, [gpu(**SEED_LIKE), view(**SEED_LIKE)], CFG, {}, {})
    assert (out.node, out.model) == ("gpu", "qwen2.5-coder:7b")
    assert "— thinking: powerful node preferred (est. " in out.reason and " s on cpu)" in out.reason
    chosen = [c for c in out.candidates if c.reason.startswith("chosen: ")]
    assert [c.node for c in chosen] == ["gpu"]


def test_async_keeps_cpu_first_for_a_task_that_will_not_think():
    out = route(request(RoutingMode.ASYNC, (TierEntry("qwen2.5-coder:7b"),)), [gpu(**SEED_LIKE), view(**SEED_LIKE)],
                CFG, {}, {})
    assert out.node == "cpu" and "thinking" not in out.reason


def test_async_sends_the_reasoning_model_to_the_powerful_node():
    # qwen3:14b thinks by default and the seed marks it "powerful node preferred": a task the router did not
    # flag (thinking=False) on it still counts as one that will think.
    out = route(request(RoutingMode.ASYNC, REASONING), [gpu(**SEED_LIKE), view(**SEED_LIKE)], CFG, {}, {})
    assert (out.node, out.model) == ("gpu", "qwen3:14b")
    assert "thinking: powerful node preferred" in out.reason


def test_async_thinking_task_follows_the_usual_rule_while_the_powerful_node_is_busy():
    # A deep backlog (ahead): waiting for the busy GPU would take longer than the free CPU node needs.
    nodes = [gpu(**SEED_LIKE, in_flight=2), view(**SEED_LIKE)]
    out = route(request(RoutingMode.ASYNC, REASONING, thinking=True, ahead=80), nodes, CFG, {}, {})
    assert (out.node, out.model) == ("cpu", "qwen3:14b")
    assert "CPU node first" in out.reason and "thinking" not in out.reason


def test_async_thinking_task_stays_on_the_cpu_node_when_it_is_nearly_as_quick():
    # Measured speeds: the GPU decodes only 1.25 x faster, under the 1.5 x the rule asks for.
    estimates = {("gpu", "qwen2.5-coder:7b"): (0.1, 10.0, 0.0), ("cpu", "qwen2.5-coder:7b"): (0.1, 8.0, 0.0)}
    loaded = ("qwen2.5-coder:7b",)
    nodes = [gpu(**SEED_LIKE, loaded=loaded), view(**SEED_LIKE, loaded=loaded)]
    out = route(request(RoutingMode.ASYNC, (TierEntry("qwen2.5-coder:7b"),), thinking=True), nodes, CFG,
                estimates, {})
    assert out.node == "cpu" and "thinking" not in out.reason


@pytest.mark.parametrize("mode", [RoutingMode.FAST, RoutingMode.RELIABLE])
def test_the_thinking_preference_is_async_only(mode):
    plain = route(request(mode, REASONING), [gpu(**SEED_LIKE), view(**SEED_LIKE)], CFG, {}, {})
    thinking = route(request(mode, REASONING, thinking=True), [gpu(**SEED_LIKE), view(**SEED_LIKE)], CFG, {}, {})
    assert (thinking.node, thinking.reason) == (plain.node, plain.reason)
