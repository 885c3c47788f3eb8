"""Workers reuse the node's connections: one request at a time on a many-slot node goes over one
connection, not a new one per worker thread; several at once still run in parallel."""
from __future__ import annotations

from hydra.sim.testing import profile
from hydra.sollol import Task, TaskStatus


def test_sequential_tasks_on_a_many_slot_node_reuse_one_connection(clusters, make_router):
    cluster = clusters([profile("wide", slots=16, models=("qwen2.5-coder:1.5b",))])
    router = make_router(cluster)
    node = cluster.nodes[0]
    # One task first: the worker that ran it has its connection open from now on.
    assert router.submit(Task(prompt="warm", model="qwen2.5-coder:1.5b", max_tokens=2)).result(timeout=30).status \
        is TaskStatus.DONE
    before = node.stats()["connections"]
    for i in range(24):
        result = router.submit(Task(prompt=f"task {i}", model="qwen2.5-coder:1.5b", max_tokens=2)).result(timeout=30)
        assert result.status is TaskStatus.DONE, result.error
    opened = node.stats()["connections"] - before
    # The monitor may open one of its own meanwhile; a worker per task would have opened 15 more.
    assert opened <= 2, f"{opened} new connections for 24 sequential tasks"


def test_tasks_at_once_still_use_every_slot(clusters, make_router):
    cluster = clusters([profile("wide", slots=6, models=("qwen2.5-coder:1.5b",))])
    router = make_router(cluster, max_concurrent_requests=6)
    handles = [router.submit(Task(prompt=f"long {i}", model="qwen2.5-coder:1.5b", max_tokens=200)) for i in range(6)]
    assert all(h.result(timeout=60).status is TaskStatus.DONE for h in handles)
    assert cluster.nodes[0].stats()["max_in_flight_seen"] == 6
