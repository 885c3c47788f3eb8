"""Async mode sends a task that will think to the powerful node while it has a free slot (issue 18):
the seed runs qwen3:14b "on powerful node for thinking". A batch still spreads over both nodes."""
from __future__ import annotations

from collections import Counter

from hydra.sollol import RoutingMode, Task, TaskStatus

PROOF = "Prove that the square root of 2 is irrational"


def test_a_lone_reasoning_task_goes_to_the_idle_powerful_node(seed, make_router):
    router = make_router(seed)
    result = router.submit(Task(prompt=PROOF, max_tokens=20)).result(timeout=30)
    assert result.status is TaskStatus.DONE, result.error
    assert (result.mode, result.model, result.node) == (RoutingMode.ASYNC, "qwen3:14b", "powerful")
    assert "— thinking: powerful node preferred (est. " in result.decision.reason
    assert result.decision.reason.endswith(" s on light)")


def test_a_lone_thinking_task_of_an_explicit_model_goes_to_the_powerful_node(seed, make_router):
    router = make_router(seed)
    thinking = router.submit(Task(prompt="Is 91 prime?", model="qwen3:1.7b", think=True, thinking_budget=50,
                                  max_tokens=50, options={"sim_think_tokens": 12})).result(timeout=30)
    assert thinking.status is TaskStatus.DONE, thinking.error
    assert thinking.node == "powerful" and "thinking: powerful node preferred" in thinking.decision.reason
    plain = router.submit(Task(prompt="Tell me about harbours", model="qwen3:1.7b", max_tokens=50)).result(timeout=30)
    assert (plain.status, plain.node) == (TaskStatus.DONE, "light")   # CPU first: this one will not think


def test_a_batch_of_reasoning_tasks_still_spreads_over_both_nodes(seed, make_router):
    router = make_router(seed)
    handles = [router.submit(Task(prompt=f"{PROOF} (variant {i})", max_tokens=200)) for i in range(24)]
    results = [h.result(timeout=120) for h in handles]
    assert all(r.status is TaskStatus.DONE for r in results), [r.error for r in results]
    by_node = Counter(r.node for r in results)
    assert by_node["powerful"] >= 2 and by_node["light"] >= 2, by_node
    reasons = [r.decision.reason for r in results]
    # While the powerful node is busy the usual rule takes the CPU node; while it has a slot, thinking goes there.
    assert any(r.node == "light" and "CPU node first" in r.decision.reason for r in results), reasons
    assert any(r.node == "powerful" and "thinking: powerful node preferred" in r.decision.reason for r in results)


def test_the_seeds_proof_runs_on_the_powerful_node_through_the_service(seed, tmp_path, eventually):
    from hydra.service import Hydra

    env = {"SOLLOL_NODES": seed.sollol_nodes(), "HYDRA_DB": str(tmp_path / "h.db"), "HYDRA_EMBEDDED_NODE": "off",
           "SOLLOL_DISCOVER_LOCALHOST": "false", "HYDRA_GATEWAY_PORT": "0"}
    hydra = Hydra.from_env(env, poll_interval_s=0.1).start()
    try:
        eventually(lambda: len(hydra.snapshot().healthy_nodes) == 2, what="both nodes healthy")
        result = hydra.submit(PROOF, max_tokens=20).result(timeout=30)
    finally:
        hydra.close()
    assert result.status is TaskStatus.DONE, result.error
    assert (result.mode, result.model, result.node) == (RoutingMode.ASYNC, "qwen3:14b", "powerful")
    assert "thinking: powerful node preferred" in result.decision.reason
