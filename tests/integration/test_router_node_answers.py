"""Hung and slow nodes, and node answers with meaning, against simulated nodes (issue 13, items 6 and 7).

A node that accepts and never answers costs a task its first-token deadline (about 10 s with the model
loaded there), not the 180 s ceiling, and the timeouts count against it; a cold load longer than that
still succeeds, its deadline computed from the model's size. A 429 backs the node off for its
Retry-After and the task goes elsewhere, the breaker untouched; a 401 marks the node as refusing Hydra's
credentials until it accepts them again; a model-404 hides the model on that node.
"""
from __future__ import annotations

import time

import pytest

from hydra.sim.testing import profile
from hydra.sollol import Task, TaskStatus
from hydra.sollol.watchdog import WARM_FLOOR_S

MODEL = "qwen2.5-coder:1.5b"
CODE = "Write a Python function that merges two sorted lists"
CEILING = 180.0   # the default ceiling (the integration fixtures' router_config lowers it to 5 s)


def pair(clusters, first: str):
    """A CPU node ``first`` (async mode sends work there first) and a GPU node "good"."""
    return clusters([profile(first, models=(MODEL,)), profile("good", gpu=True, memory_mb=24_000, models=(MODEL,))])


def attempts_of(router, task_id: str):
    """The routing decisions of one task, oldest first."""
    return [d for d in reversed(router.decisions(limit=10_000)) if d.task_id == task_id]


def candidate(decision, node: str):
    return next(c for c in decision.candidates if c.node == node)


@pytest.mark.timeout(90)
def test_a_node_that_accepts_and_never_answers_costs_a_task_its_deadline_and_is_cut_off(clusters, make_router):
    cluster = pair(clusters, "hung")
    router = make_router(cluster, tiers=None, first_token_timeout_s=CEILING, breaker_threshold=2,
                         breaker_cooldown_s=60.0)
    warm = router.submit(Task(prompt=CODE, model=MODEL, max_tokens=3)).result(timeout=30)
    assert (warm.status, warm.node) == (TaskStatus.DONE, "hung")
    assert MODEL in {m.name for m in router.snapshot().node("hung").loaded}   # the model is loaded there

    cluster["hung"].set_fault("hang")   # accepts every request and never says a word
    started = time.monotonic()
    handles = [router.submit(Task(prompt=f"{CODE} #{i}", model=MODEL, max_tokens=3)) for i in range(2)]
    results = [h.result(timeout=30) for h in handles]
    assert all((r.status, r.node, r.attempts) == (TaskStatus.DONE, "good", 2) for r in results), results
    for result in results:
        first, second = attempts_of(router, result.task_id)
        assert first.node == "hung" and second.node == "good"
        waited = second.time - first.time   # what the hung node cost this task
        assert WARM_FLOOR_S <= waited <= 15.0, waited
    assert time.monotonic() - started < 20.0
    hung = router.snapshot().node("hung")
    assert "no first token after" in (hung.last_error or "") and "for a loaded model" in (hung.last_error or "")

    # Two timeouts in a row reached breaker_threshold: the node takes nothing more, at no cost to the next task.
    assert (hung.circuit, hung.healthy) == ("open", True)
    after = router.submit(Task(prompt=CODE, model=MODEL, max_tokens=3)).result(timeout=5)
    assert (after.status, after.node, after.attempts) == (TaskStatus.DONE, "good", 1)
    assert candidate(after.decision, "hung").reason.startswith("circuit open after: no first token")


@pytest.mark.timeout(90)
def test_a_cold_load_longer_than_a_loaded_models_deadline_is_not_cut(clusters, make_router):
    # Real seconds (time_scale 1): this 1.5B model takes ~12 s to load here, longer than a loaded model's
    # deadline; its own deadline comes from its size (3 x the 1.55 s prior + 10 s), so it is not cut.
    cluster = clusters([profile("slow-disk", models=(MODEL,), load_mult=16.5)], time_scale=1.0)
    node = cluster["slow-disk"]
    load_s = node.profile.load_s(node.profile.models[0])
    assert WARM_FLOOR_S < load_s < 13.0
    router = make_router(cluster, tiers=None, first_token_timeout_s=CEILING)
    result = router.submit(Task(prompt=CODE, model=MODEL, max_tokens=3)).result(timeout=60)
    assert (result.status, result.attempts, result.failovers) == (TaskStatus.DONE, 1, 0), result.error
    assert result.ttft_s is not None and result.ttft_s >= load_s


def test_a_429_backs_the_node_off_and_the_task_runs_elsewhere_without_opening_the_breaker(clusters, make_router):
    cluster = pair(clusters, "limited")
    cluster["limited"].set_fault("http_429", delay_s=30)    # Retry-After: 30
    router = make_router(cluster, tiers=None)
    result = router.submit(Task(prompt=CODE, model=MODEL, max_tokens=3)).result(timeout=30)
    assert (result.status, result.node, result.failovers) == (TaskStatus.DONE, "good", 1), result.error
    limited = router.snapshot().node("limited")
    assert (limited.healthy, limited.circuit, limited.failures) == (True, "closed", 0)   # never charged
    assert limited.backed_off_until is not None and 25.0 < limited.backed_off_until - time.time() <= 30.5

    later = router.submit(Task(prompt=CODE, model=MODEL, max_tokens=3)).result(timeout=30)
    assert [d.node for d in attempts_of(router, later.task_id)] == ["good"]   # no attempt wasted there
    assert candidate(later.decision, "limited").reason.startswith("backed off for")
    assert cluster["limited"].stats()["faults_applied"] == {"http_429": 1}


def test_a_429_with_a_short_retry_after_on_the_only_node_is_waited_out(clusters, make_router):
    cluster = clusters([profile("solo", models=(MODEL,))])
    cluster["solo"].set_fault("http_429", count=1, delay_s=1)
    router = make_router(cluster, tiers=None)
    started = time.monotonic()
    result = router.submit(Task(prompt=CODE, model=MODEL, max_tokens=3)).result(timeout=30)
    elapsed = time.monotonic() - started
    assert (result.status, result.node, result.attempts) == (TaskStatus.DONE, "solo", 2), result.error
    assert 1.0 <= elapsed < 3.0, elapsed   # it waited for the Retry-After, not for a timeout
    assert router.snapshot().node("solo").failures == 0


def test_a_401_marks_the_node_as_refusing_credentials_until_it_accepts_them(clusters, make_router, eventually):
    cluster = pair(clusters, "gate")
    cluster["gate"].set_fault("http_401")
    router = make_router(cluster, tiers=None)
    first = router.submit(Task(prompt=CODE, model=MODEL, max_tokens=3)).result(timeout=30)
    assert (first.status, first.node, first.failovers) == (TaskStatus.DONE, "good", 1), first.error
    gate = router.snapshot().node("gate")
    assert "HTTP 401" in (gate.refuses_credentials or "")
    assert (gate.healthy, gate.circuit, gate.failures) == (True, "closed", 0)

    second = router.submit(Task(prompt=CODE, model=MODEL, max_tokens=3)).result(timeout=30)
    assert [d.node for d in attempts_of(router, second.task_id)] == ["good"]
    assert candidate(second.decision, "gate").reason.startswith("refuses Hydra's credentials")

    cluster["gate"].clear_faults()   # the credentials are accepted again: the monitor's check sees it
    eventually(lambda: router.snapshot().node("gate").refuses_credentials is None, what="gate accepting again")
    back = router.submit(Task(prompt=CODE, model=MODEL, max_tokens=3)).result(timeout=30)
    assert (back.status, back.node) == (TaskStatus.DONE, "gate")


def test_a_node_that_lists_a_model_but_answers_404_for_it_gets_no_more_tasks_for_it(clusters, make_router,
                                                                                  eventually):
    cluster = pair(clusters, "stale")
    stale = cluster["stale"]
    stale.set_fault("model_404")   # its list still shows the model, its chat says it has none
    router = make_router(cluster, tiers=None)
    tags_before = stale.stats()["requests"].get("/api/tags", 0)
    first = router.submit(Task(prompt=CODE, model=MODEL, max_tokens=3)).result(timeout=30)
    assert (first.status, first.node, first.failovers) == (TaskStatus.DONE, "good", 1), first.error
    eventually(lambda: stale.stats()["requests"].get("/api/tags", 0) > tags_before, what="its list fetched again")
    snap = router.snapshot().node("stale")
    assert snap.missing_models == (MODEL,) and (snap.healthy, snap.failures) == (True, 0)
    for i in range(3):
        later = router.submit(Task(prompt=f"{CODE} {i}", model=MODEL, max_tokens=3)).result(timeout=30)
        assert [d.node for d in attempts_of(router, later.task_id)] == ["good"]
    assert stale.stats()["faults_applied"] == {"model_404": 1}
