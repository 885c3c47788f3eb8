"""Limits and order: the global cap of 4 requests, priorities, and aging so nothing starves."""
from __future__ import annotations

import threading
import time
from typing import Self

from hydra.sim.testing import profile
from hydra.sollol import Task, TaskEvent, TaskStatus

PROMPT = "Write a Python function that merges two sorted lists"


class Sampler:
    """Samples in-flight counts on a thread until stopped; keeps the maxima."""

    def __init__(self, router, nodes) -> None:
        self.router, self.nodes = router, list(nodes)
        self.max_router = self.max_snapshot = self.max_nodes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-sampler")

    def _run(self) -> None:
        while not self._stop.wait(0.002):
            self.max_router = max(self.max_router, self.router.in_flight)
            self.max_snapshot = max(self.max_snapshot, self.router.snapshot().in_flight)
            self.max_nodes = max(self.max_nodes, sum(n.stats()["in_flight"] for n in self.nodes))

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def test_the_four_request_cap_holds_under_fifty_submissions(seed, make_router):
    router = make_router(seed)
    assert router.config.max_concurrent_requests == 4   # the seed's default
    with Sampler(router, seed) as sampler:
        handles = [router.submit(Task(prompt=f"{PROMPT} #{i}", max_tokens=8)) for i in range(50)]
        results = [h.result(timeout=90) for h in handles]
    assert [r.status for r in results] == [TaskStatus.DONE] * 50, [r.error for r in results if r.error]
    stats = [n.stats() for n in seed]
    assert sum(s["max_in_flight_seen"] for s in stats) <= 4, stats
    assert all(s["max_in_flight_seen"] == 2 for s in stats), stats   # and the cap was reached
    assert 0 < sampler.max_router <= 4 and sampler.max_snapshot <= 4 and sampler.max_nodes <= 4
    assert router.in_flight == 0 and router.queue_depth == 0


def test_the_cap_binds_even_when_nodes_have_room_for_more(clusters, make_router):
    # One node with 8 slots: only the router's cap keeps it at 4.
    cluster = clusters([profile("roomy", slots=8, models=("qwen2.5-coder:1.5b",))])
    router = make_router(cluster)
    with Sampler(router, cluster) as sampler:
        handles = [router.submit(Task(prompt=f"{PROMPT} #{i}", max_tokens=15)) for i in range(50)]
        results = [h.result(timeout=90) for h in handles]
    assert all(r.status is TaskStatus.DONE for r in results)
    assert cluster["roomy"].stats()["max_in_flight_seen"] == 4
    assert sampler.max_router <= 4 and sampler.max_nodes <= 4


def test_parallel_requests_off_runs_one_at_a_time(seed, make_router):
    router = make_router(seed, parallel_requests=False)
    results = [h.result(timeout=60) for h in [router.submit(Task(prompt=f"{PROMPT} #{i}", max_tokens=5))
                                              for i in range(6)]]
    assert all(r.status is TaskStatus.DONE for r in results)
    assert sum(n.stats()["max_in_flight_seen"] for n in seed) == 1


def test_a_priority_10_task_overtakes_queued_priority_2_tasks(seed, make_router):
    events: list[TaskEvent] = []
    router = make_router(seed, events=events)
    low = [router.submit(Task(prompt=f"{PROMPT} #{i}", priority=2, max_tokens=30)) for i in range(12)]
    queued = [h for h in low if h.status is TaskStatus.QUEUED]
    assert len(queued) >= 6, "the cap should leave most low-priority tasks queued"
    urgent = router.submit(Task(prompt="Fix this bug now", priority=10, max_tokens=5))
    results = [h.result(timeout=60) for h in [*low, urgent]]
    assert all(r.status is TaskStatus.DONE for r in results)
    order = [e.task.id for e in events if e.kind in ("running", "finished")]
    # Async may let a queued task take a free slot of a slow node while the urgent one waits a moment
    # for a quicker node; but the urgent task is done before most of the work queued ahead of it starts
    # (in arrival order it would start after all of it).
    done_at = order.index(urgent.id, order.index(urgent.id) + 1)
    started_before = [h for h in queued if order.index(h.id) < done_at]
    assert len(started_before) <= len(queued) // 2, (len(started_before), len(queued))


def test_with_one_slot_the_urgent_task_runs_next(seed, make_router):
    events: list[TaskEvent] = []
    router = make_router(seed, max_concurrent_requests=1, events=events)
    low = [router.submit(Task(prompt=f"{PROMPT} #{i}", priority=2, max_tokens=10)) for i in range(5)]
    urgent = router.submit(Task(prompt="Fix this bug now", priority=10, max_tokens=5))
    assert all(h.result(timeout=60).status is TaskStatus.DONE for h in [*low, urgent])
    started = [e.task.id for e in events if e.kind == "running"]
    assert started.index(urgent.id) == 1   # right after the task that was already running


def test_a_priority_1_task_still_finishes_under_constant_load(seed, make_router):
    # aging 0.1 s per level: the priority-1 task outranks fresh priority-10 work after ~0.9 s of waiting.
    events: list[TaskEvent] = []
    router = make_router(seed, aging_s=0.1, events=events)
    urgent = [router.submit(Task(prompt=f"{PROMPT} #{i}", priority=10, max_tokens=20)) for i in range(8)]
    patient = router.submit(Task(prompt="Background summary", priority=1, max_tokens=5))
    deadline = time.monotonic() + 30
    while not patient.done() and time.monotonic() < deadline:
        if router.queue_depth < 8:   # keep the queue full of fresher, more urgent work
            urgent.append(router.submit(Task(prompt=f"{PROMPT} #{len(urgent)}", priority=10, max_tokens=20)))
        else:
            time.sleep(0.005)
    assert patient.done(), "the priority-1 task starved behind fresher priority-10 work"
    assert patient.result(timeout=1).status is TaskStatus.DONE
    # It ran while more urgent work was still waiting: aging, not an empty queue, let it through.
    still_waiting = [h for h in urgent if h.status is TaskStatus.QUEUED]
    assert len(still_waiting) >= 4
    # Priorities were in force: fresher urgent work went first for a while, until aging caught up.
    started = [e.task.id for e in events if e.kind == "running"]
    later = {h.id for h in urgent if h.task.seq > patient.task.seq}
    assert sum(1 for i in started[:started.index(patient.id)] if i in later) >= 4
    for h in urgent:
        h.cancel()
