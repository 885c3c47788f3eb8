"""Where tasks go: the seed's routing modes, model placement and tier fallback, over simulated nodes."""
from __future__ import annotations

import httpx
import pytest

from hydra.sim.presets import model as catalog_model
from hydra.sim.presets import preset
from hydra.sim.testing import profile
from hydra.sollol import RoutingMode, Task, TaskStatus

CODE = "Write a Python function that merges two sorted lists"


def chats(node) -> int:
    return int(node.stats()["requests"].get("/api/chat", 0))


def candidate(decision, node: str):
    found = [c for c in decision.candidates if c.node == node]
    assert len(found) == 1, decision.candidates
    return found[0]


def warm(node, model: str) -> None:
    """Load ``model`` on a simulated node directly (an empty prompt only loads), outside the router."""
    response = httpx.post(f"{node.url}/api/generate", json={"model": model}, timeout=10)
    assert response.status_code == 200, response.text


def test_async_sends_to_the_cpu_node_while_both_are_free(seed, make_router):
    router = make_router(seed)
    for _ in range(3):
        result = router.submit(Task(prompt=CODE, max_tokens=10)).result(timeout=30)
        assert result.status is TaskStatus.DONE, result.error
        assert (result.node, result.mode) == ("light", RoutingMode.ASYNC)
        gpu, cpu = candidate(result.decision, "powerful"), candidate(result.decision, "light")
        assert cpu.reason.startswith("chosen: CPU node first")
        assert gpu.eligible and gpu.score > cpu.score
    assert chats(seed["powerful"]) == 0


def test_async_keeps_both_nodes_busy_under_load(seed, make_router):
    router = make_router(seed)
    handles = [router.submit(Task(prompt=f"{CODE} (variant {i})", max_tokens=40)) for i in range(8)]
    results = [h.result(timeout=60) for h in handles]
    assert all(r.status is TaskStatus.DONE for r in results), [r.error for r in results]
    for name in ("light", "powerful"):
        stats = seed[name].stats()
        # Both nodes ran as many requests at once as they have slots, and never more.
        assert stats["max_in_flight_seen"] == seed[name].profile.slots, (name, stats)
        assert stats["max_queued_seen"] == 0, (name, stats)   # the router queued, not the node
        assert sum(r.node == name for r in results) >= 2
    # The first four went two and two: the CPU node first, the GPU for what it had no room for
    # (never more tasks bound to a node than its slots, even when submissions come back to back).
    first = sorted(router.decisions(limit=100), key=lambda d: d.time)[:4]
    assert [d.node for d in first] == ["light", "light", "powerful", "powerful"]


@pytest.mark.parametrize("warm_on, expected", [
    (("powerful",), "powerful"),
    (("light",), "light"),                 # a warm CPU beats a GPU that must load first
    (("light", "powerful"), "powerful"),   # both warm: the quicker one
], ids=["warm-gpu", "warm-cpu-only", "both-warm"])
def test_fast_picks_the_warm_quicker_node(seed, make_router, eventually, warm_on, expected):
    router = make_router(seed)
    model = "qwen2.5-coder:7b"
    for name in warm_on:
        warm(seed[name], model)
    eventually(lambda: all(any(m.name == model for m in router.snapshot().node(n).loaded) for n in warm_on),
               what=f"{model} loaded on {warm_on} in the router's view")
    result = router.submit(Task(prompt=CODE, model=model, mode="fast", max_tokens=20)).result(timeout=30)
    assert result.status is TaskStatus.DONE, result.error
    assert result.node == expected
    assert "(warm)" in result.decision.reason
    other = "light" if expected == "powerful" else "powerful"
    assert candidate(result.decision, other).score > candidate(result.decision, expected).score


def test_reliable_avoids_a_node_below_the_success_threshold(seed, make_router):
    # A high breaker threshold keeps the circuit closed: only the success rate can keep the node out.
    router = make_router(seed, breaker_threshold=100)
    seed["powerful"].set_fault("http_500", count=3)
    for _ in range(3):
        result = router.submit(Task(prompt=CODE, mode="reliable", max_tokens=10)).result(timeout=30)
        # The most capable node was tried first, failed, and the task moved to the other node.
        assert (result.status, result.node, result.attempts) == (TaskStatus.DONE, "light", 2), result.error
    assert router.snapshot().node("powerful").circuit == "closed"
    assert router.snapshot().node("powerful").success_rate == 0.0
    before = chats(seed["powerful"])

    handles = [router.submit(Task(prompt=f"{CODE} #{i}", mode="reliable", max_tokens=10)) for i in range(6)]
    results = [h.result(timeout=30) for h in handles]
    assert all(r.status is TaskStatus.DONE and r.node == "light" for r in results), results
    assert chats(seed["powerful"]) == before
    for r in results:
        assert candidate(r.decision, "powerful").reason == "reliable: success 0% < 98%"
    # The task's own threshold decides: accepting any success rate sends it to the most capable node again.
    lenient = router.submit(Task(prompt=CODE, mode="reliable", min_success_rate=0.0, max_tokens=10))
    assert lenient.result(timeout=30).node == "powerful"


def test_llama_70b_lands_only_on_the_node_that_can_hold_it(clusters, make_router):
    profiles = preset("seed")
    profiles[0].models.append(catalog_model("llama3.1:70b"))  # installed on the 30B node, but cannot run there
    cluster = clusters(profiles)
    router = make_router(cluster)
    modes = ["async", "fast", "reliable"]
    handles = [router.submit(Task(prompt=f"Summarise the history of Rome, part {i}", model="llama3.1:70b",
                                  mode=mode, max_tokens=10)) for i, mode in enumerate(modes)]
    # The general tier starts with it (fast may take a lower tier that finishes sooner, so not fast here).
    handles += [router.submit(Task(prompt=f"Tell me a story, part {i}", task_type="general", mode=mode,
                                   max_tokens=10)) for i, mode in enumerate(["async", "reliable"])]
    results = [h.result(timeout=60) for h in handles]
    for r in results:
        assert (r.status, r.node, r.model) == (TaskStatus.DONE, "powerful", "llama3.1:70b"), r
        assert candidate(r.decision, "light").reason.startswith("llama3.1:70b: too large: 70.6B > max 30B")
    assert chats(cluster["light"]) == 0


@pytest.mark.parametrize("light_models, powerful_models, node, model", [
    (("qwen2.5-coder:3b", "qwen2.5-coder:1.5b"), ("deepseek-coder-v2:latest", "qwen2.5-coder:3b"),
     "powerful", "deepseek-coder-v2:latest"),
    (("qwen2.5-coder:3b", "qwen2.5-coder:1.5b"), ("qwen2.5-coder:3b", "llama3.2:3b"),
     "light", "qwen2.5-coder:3b"),
    (("qwen2.5-coder:1.5b",), ("llama3.2:3b",), "light", "qwen2.5-coder:1.5b"),
], ids=["second-tier-on-gpu", "fourth-tier-cpu-first", "last-tier"])
def test_tier_fallback_when_the_first_model_is_installed_nowhere(clusters, make_router, light_models,
                                                                 powerful_models, node, model):
    cluster = clusters([profile("light", models=light_models),
                        profile("powerful", gpu=True, memory_mb=24_000, max_model_b=70, models=powerful_models)])
    router = make_router(cluster)
    results = [router.submit(Task(prompt=f"{CODE} #{i}", max_tokens=10)).result(timeout=30) for i in range(2)]
    for r in results:
        assert (r.status, r.task_type, r.node, r.model) == (TaskStatus.DONE, "code", node, model), r.error
        # The decision says why the better tiers were not taken.
        assert all(c.reason for c in r.decision.candidates)
        assert "qwen2.5-coder:7b" not in {c.model for c in r.decision.candidates if c.eligible}


def test_every_routed_task_has_a_decision_with_candidates_scores_and_reasons(seed, make_router):
    router = make_router(seed)
    prompts = [(CODE, "async"), ("Prove that the square root of 2 is irrational", "reliable"),
               ("What is the capital of France?", "fast"), (CODE + " quickly", "fast"),
               ("Tell me a story", "async"), ("Solve 3x + 5 = 20", "reliable")]
    handles = [router.submit(Task(prompt=p, mode=m, max_tokens=10)) for p, m in prompts]
    results = [h.result(timeout=60) for h in handles]
    recorded = {d.task_id: d for d in router.decisions(limit=100)}
    for h, r in zip(handles, results):
        assert r.status is TaskStatus.DONE, r.error
        d = r.decision
        assert d is not None and d.task_id == h.id and recorded[h.id] == d
        assert (d.node, d.model, d.mode) == (r.node, r.model, r.mode)
        assert d.reason.startswith(f"{d.mode.value}: {d.node} with {d.model}")
        assert {c.node for c in d.candidates} == {"light", "powerful"}
        for c in d.candidates:
            assert c.reason, c
            assert (c.score is not None) == c.eligible, c
        chosen = [c for c in d.candidates if c.reason.startswith("chosen: ")]
        assert [(c.node, c.model) for c in chosen] == [(d.node, d.model)]
    snapshot = router.snapshot()
    assert sum(snapshot.by_node.values()) == len(prompts)
    assert snapshot.by_mode == {"async": 2, "reliable": 2, "fast": 2}
