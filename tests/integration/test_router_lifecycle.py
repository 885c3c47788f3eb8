"""Lifecycle: cancellation, exactly one end per task, close(), discovery, start-up logs, VRAM monitoring."""
from __future__ import annotations

import logging
from collections import Counter

import pytest

from hydra.sim import SimNode
from hydra.sim.testing import profile
from hydra.sollol import ConfigError, Router, ShutdownError, SollolConfig, Task, TaskEvent, TaskStatus
from hydra.sollol.discovery import scan

CODE = "Write a Python function that merges two sorted lists"
TIME_SCALE = 0.05
TERMINAL = {TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.INTERRUPTED}


def finished_events(events: list[TaskEvent]) -> Counter:
    return Counter(e.task.id for e in events if e.kind == "finished")


def test_cancelling_a_queued_task(seed, make_router):
    events: list[TaskEvent] = []
    router = make_router(seed, max_concurrent_requests=1, events=events)
    running = router.submit(Task(prompt=CODE, max_tokens=60))
    queued = router.submit(Task(prompt=CODE + " too", max_tokens=5))
    assert queued.status is TaskStatus.QUEUED
    assert queued.cancel() is True
    assert queued.cancel() is False                      # already ended: exactly one terminal state
    result = queued.result(timeout=5)
    assert (result.status, result.node, result.attempts) == (TaskStatus.CANCELLED, None, 0)
    assert running.result(timeout=30).status is TaskStatus.DONE
    assert router.queue_depth == 0
    assert not any(e.kind == "running" and e.task.id == queued.id for e in events)
    assert finished_events(events)[queued.id] == 1


def test_cancelling_a_running_task_frees_its_slot(seed, make_router, eventually):
    events: list[TaskEvent] = []
    router = make_router(seed, events=events)
    light = seed["light"]
    # ~2 s of generation on the CPU node at this time scale: long enough to cancel in the middle.
    handle = router.submit(Task(prompt=CODE, max_tokens=400))
    eventually(lambda: handle.view().node == "light" and len(handle.view().text) > 0, what="streaming")
    assert handle.cancel() is True
    assert handle.cancel() is False
    result = handle.result(timeout=5)
    assert result.status is TaskStatus.CANCELLED and result.node == "light"
    assert 0 < len(result.text) and result.eval_count is None
    # The connection is dropped, so the node stops generating long before the answer would have ended.
    eventually(lambda: light.stats()["in_flight"] == 0, timeout=1.0, what="the node to stop generating")
    eventually(lambda: router.snapshot().node("light").in_flight == 0, timeout=1.0, what="the slot freed")
    assert router.in_flight == 0
    assert router.snapshot().node("light").failures == 0   # a cancel says nothing bad about the node
    after = router.submit(Task(prompt=CODE, max_tokens=5)).result(timeout=30)
    assert (after.status, after.node) == (TaskStatus.DONE, "light")
    assert finished_events(events)[handle.id] == 1


def test_every_task_ends_in_exactly_one_terminal_state(seed, make_router, eventually):
    events: list[TaskEvent] = []
    router = make_router(seed, max_concurrent_requests=2, events=events)
    handles = [router.submit(Task(prompt=f"{CODE} #{i}", max_tokens=5)) for i in range(4)]   # done
    handles.append(router.submit(Task(prompt="x", model="no-such-model:1b")))                 # failed: no route
    long_ = [router.submit(Task(prompt=f"{CODE} long #{i}", max_tokens=600)) for i in range(2)]
    handles += long_
    eventually(lambda: all(h.status is TaskStatus.RUNNING for h in long_), timeout=30, what="long tasks running")
    waiting = [router.submit(Task(prompt=f"{CODE} later #{i}", max_tokens=5)) for i in range(3)]
    handles += waiting
    waiting[0].cancel()                                          # cancelled while queued
    # The cancel below frees a slot; without this the dispatcher may start a waiting task in it
    # before close() (then it ends interrupted, not failed), depending on thread timing.
    router.update_config(max_concurrent_requests=1)
    long_[0].cancel()                                            # cancelled while running
    router.close()                                               # long_[1] interrupted, the rest failed
    results = {h.id: h.result(timeout=10) for h in handles}
    assert all(r.status in TERMINAL for r in results.values())
    counts = finished_events(events)
    assert set(counts) == set(results) and set(counts.values()) == {1}
    by_event = {e.task.id: e.result.status for e in events if e.kind == "finished"}
    assert by_event == {i: r.status for i, r in results.items()}
    assert Counter(r.status for r in results.values()) == {
        TaskStatus.DONE: 4, TaskStatus.FAILED: 3, TaskStatus.CANCELLED: 2, TaskStatus.INTERRUPTED: 1}


def test_close_fails_queued_tasks_with_a_shutdown_error(seed, make_router, eventually):
    router = make_router(seed, max_concurrent_requests=1)
    running = router.submit(Task(prompt=CODE, max_tokens=600))
    eventually(lambda: running.status is TaskStatus.RUNNING, what="the first task running")
    queued = [router.submit(Task(prompt=f"{CODE} #{i}", max_tokens=5)) for i in range(3)]
    assert all(h.status is TaskStatus.QUEUED for h in queued)
    router.close()
    for h in queued:
        result = h.result(timeout=5)
        assert result.status is TaskStatus.FAILED
        assert result.error == str(ShutdownError("the router closed before this task ran"))
        assert list(h.stream(timeout=5)) == []                   # a stream of a closed task ends at once
    assert running.result(timeout=5).status is TaskStatus.INTERRUPTED
    assert "closed while this task ran" in running.result(timeout=5).error
    with pytest.raises(ShutdownError, match="closed"):
        router.submit(Task(prompt=CODE))
    router.close()                                               # twice is harmless


def test_discovery_scans_a_small_loopback_network(eventually):
    try:
        node = SimNode(profile("scanned", models=("llama3.2:3b",)), host="127.0.0.3", port=11434,
                       time_scale=TIME_SCALE).start()
    except OSError as exc:
        pytest.skip(f"127.0.0.3:11434 is not free here: {exc}")
    try:
        found = scan("127.0.0.0/29")
        assert "http://127.0.0.3:11434" in [s.url for s in found]
        assert all(s.url.startswith("http://127.0.0.") for s in found)
        # The same scan from the settings: the router finds the node and uses it.
        config = SollolConfig(discover_localhost=False, discovery_cidr="127.0.0.0/29", poll_interval_s=0.1)
        with Router(config=config) as router:
            assert "http://127.0.0.3:11434" in [n.url for n in router.snapshot().nodes]
            result = router.submit(Task(prompt="hello", model="llama3.2:3b", max_tokens=5)).result(timeout=30)
            assert (result.status, result.node) == (TaskStatus.DONE, "127.0.0.3:11434")
    finally:
        node.stop()


@pytest.mark.parametrize("cidr", ["127.0.0.0/8", "127.0.0.0/16", "not-a-network"])
def test_discovery_refuses_large_or_bad_networks(cidr):
    with pytest.raises(ConfigError, match="SOLLOL_DISCOVERY_CIDR"):
        scan(cidr)
    router = Router(config=SollolConfig(discover_localhost=False, discovery_cidr=cidr))
    with pytest.raises(ConfigError, match="SOLLOL_DISCOVERY_CIDR"):
        router.start()
    with pytest.raises(ShutdownError, match="not started"):
        router.submit(Task(prompt=CODE))
    router.close()   # closing a router that never started is harmless


@pytest.mark.parametrize("overrides, lines", [
    ({}, ["SOLLOL discovered 2 nodes", "Default routing mode: ASYNC", "VRAM monitoring: enabled"]),
    ({"default_mode": "fast", "vram_monitoring": False},
     ["SOLLOL discovered 2 nodes", "Default routing mode: FAST", "VRAM monitoring: disabled"]),
], ids=["seed", "changed"])
def test_start_up_logs_the_seeds_lines(seed, make_router, caplog, overrides, lines):
    caplog.set_level(logging.INFO, logger="hydra.sollol")
    make_router(seed, **overrides)
    messages = [r.getMessage() for r in caplog.records if r.name == "hydra.sollol"]
    for line in lines:
        assert any(m.startswith(line) for m in messages), (line, messages)


def test_a_gpu_low_on_vram_refuses_new_large_loads_and_a_cpu_node_is_never_warned(clusters, make_router,
                                                                                   eventually, caplog):
    caplog.set_level(logging.INFO, logger="hydra.sollol")
    models = ("qwen2.5-coder:7b", "llama3.2:3b", "qwen2.5-coder:1.5b")
    # 5000 MB of VRAM: with qwen2.5-coder:7b loaded (~4730 MB) less than SOLLOL_MIN_VRAM_MB=500 is free.
    cluster = clusters([profile("smallgpu", gpu=True, memory_mb=5_000, max_model_b=8, models=models),
                        profile("cpubox", memory_mb=32_000, max_model_b=30, models=models)])
    router = make_router(cluster, min_vram_mb=500)
    warm = router.submit(Task(prompt=CODE, model="qwen2.5-coder:7b", mode="fast", max_tokens=5)).result(timeout=30)
    assert warm.node == "smallgpu"
    eventually(lambda: router.snapshot().node("smallgpu").vram_low, what="smallgpu reported low on VRAM")
    snap = router.snapshot()
    assert snap.node("smallgpu").vram_free_mb < 500
    assert not snap.node("cpubox").vram_low and snap.node("cpubox").vram_total_mb is None

    # A new large model: the GPU would be quicker (fast mode), but it takes no new large loads now.
    large = router.submit(Task(prompt=CODE, model="llama3.2:3b", mode="fast", max_tokens=5)).result(timeout=30)
    assert large.node == "cpubox"
    refused = next(c for c in large.decision.candidates if c.node == "smallgpu")
    assert not refused.eligible and "VRAM low" in refused.reason and "no new large loads" in refused.reason
    # The model it already holds is still served there.
    again = router.submit(Task(prompt=CODE, model="qwen2.5-coder:7b", mode="fast", max_tokens=5)).result(timeout=30)
    assert again.node == "smallgpu"

    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("smallgpu" in m and "VRAM" in m for m in warnings), warnings
    assert not any("cpubox" in m for m in warnings), warnings
