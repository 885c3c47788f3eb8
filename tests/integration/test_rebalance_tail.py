"""Work stealing at the tail of a backlog, over the seed's simulated nodes."""
from __future__ import annotations

import pytest

from hydra.sim import start_cluster
from hydra.sollol import Router, SollolConfig, Task
from hydra.sollol.config import parse_nodes

MODEL = "mistral:latest"


@pytest.fixture()
def router(monkeypatch):
    for name in ("SOLLOL_NODES", "OLLAMA_HOST", "SOLLOL_DEFAULT_ROUTING_MODE"):
        monkeypatch.delenv(name, raising=False)
    with start_cluster("seed", time_scale=0.1) as cluster:
        config = SollolConfig(nodes=tuple(parse_nodes(cluster.sollol_nodes())), discover_localhost=False,
                              max_concurrent_requests=4, poll_interval_s=0.2)
        with Router(config=config) as r:
            yield r


def test_small_batch_is_not_rebalanced(router):
    handles = [router.submit(Task(prompt=f"Write an essay {i}", model=MODEL, max_tokens=60)) for i in range(8)]
    results = [h.result(timeout=60) for h in handles]
    assert sum(r.node == "light" for r in results) >= 2  # what started on the CPU node finished there
    assert not any(r.notice for r in results)  # nothing moved: no notice, each answer from one node
    assert all(len({c.node for c in h.stream()}) == 1 for h in handles)


def test_lone_task_stays_on_the_cpu_node(router):
    handle = router.submit(Task(prompt="Write a haiku about queues", model=MODEL, max_tokens=60))
    result = handle.result(timeout=60)
    assert result.status.value == "done" and result.node == "light"
    assert result.nodes == ("light",) and not result.notice  # never moved


def test_long_cpu_answers_move_to_the_idle_gpu_when_the_backlog_drains(router):
    # Two long answers start on the CPU node (async: CPU first); short ones fill the GPU and make a
    # backlog deep enough (>= 2 x the cap of 4) to count as a batch.
    long = [router.submit(Task(prompt=f"Write a long essay {i}", model=MODEL, max_tokens=300)) for i in range(2)]
    short = [router.submit(Task(prompt=f"Say hi {i}", model=MODEL, max_tokens=10)) for i in range(14)]
    results = [h.result(timeout=120) for h in long + short]
    assert all(r.status.value == "done" for r in results), [r.error for r in results]
    moved = [h for h in long if "moved from" in h.result(timeout=1).notice]
    assert moved, "no long answer was moved off the slow CPU node"
    for handle in moved:
        result = handle.result(timeout=1)
        assert result.node == "powerful" and result.failovers == 0
        assert "moved from light to powerful" in result.notice and result.nodes == ("light", "powerful")
        assert [c.node for c in handle.stream()][-1] == "powerful"
        # One answer: begun on light, continued on powerful, 300 tokens in all.
        assert result.eval_count == 300 and result.text.startswith(f"[simulated {MODEL} on light]")
        assert len(list(handle.stream())) == 300
    for handle in moved:
        trail = sorted((d for d in router.decisions(200) if d.task_id == handle.id), key=lambda d: d.attempt)
        assert [d.node for d in trail] == ["light", "powerful"]
        assert "moved from light" in trail[1].reason
