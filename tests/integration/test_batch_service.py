"""Batches through the whole service over simulated nodes: rows fed as slots free, every row recorded
once, pause / resume / cancel, failed rows retried alone, the export, and interactive work first."""
from __future__ import annotations

import csv
import io
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hydra.batch import BatchInputError, BatchOptions, parse
from hydra.batch.export import export_bytes
from hydra.service import Hydra
from hydra.sim import SimCluster
from tests.integration.service_env import hydra_env

TIMEOUT = 60.0
MODEL = "llama3.2:3b"


@pytest.fixture
def hydra(seed: SimCluster, tmp_path: Path) -> Iterator[Hydra]:
    h = Hydra.from_env(hydra_env(seed, tmp_path)).start()
    try:
        yield h
    finally:
        h.close()


def lines(n: int) -> str:
    return "question\n" + "\n".join(f"What is {i} plus {i}?" for i in range(n)) + "\n"


def options(**overrides: Any) -> BatchOptions:
    return BatchOptions(**{"model": MODEL, "max_tokens": 8, **overrides})


def test_a_batch_runs_every_row_once_within_the_window_and_exports(hydra: Hydra, eventually: Callable[..., Any]):
    n = 40
    in_flight_seen: list[int] = []
    submit = hydra.submit

    def counting_submit(prompt: str = "", **fields: Any) -> Any:
        snapshot = hydra.router.snapshot()
        in_flight_seen.append(snapshot.queue_depth + snapshot.in_flight)
        return submit(prompt, **fields)

    hydra.batches._submit = counting_submit  # observe (not replace) the path rows take into the service
    batch_id = hydra.batches.create(parse(lines(n), "q.csv"), "Answer briefly: {question}", options())
    assert hydra.batches.wait(batch_id, TIMEOUT)
    progress = hydra.batches.progress(batch_id)
    assert progress is not None
    assert progress.batch.status == "done"
    assert progress.done == n and progress.failed == 0 and progress.remaining == 0
    assert sum(progress.by_node.values()) == n
    assert progress.tokens > 0 and progress.tokens_per_s
    # Rows are fed as slots free: never more in the router (running or queued) than two per slot of the cap.
    assert max(in_flight_seen) < 2 * hydra.router.snapshot().max_concurrent
    rows = hydra.batches.rows(batch_id, 0, n + 10)
    assert [r["idx"] for r in rows] == list(range(n))
    assert all(r["runs"] == 1 and r["answer"] and r["node"] for r in rows)
    # Each row's task is in history, done, with the row's answer.
    for r in rows[:5]:
        task = hydra.history.get_task(r["task_id"])
        assert task is not None and task["status"] == "done" and task["text"] == r["answer"]
        assert task["prompt"] == f"Answer briefly: {r['data']['question']}"
        assert task["priority"] == 2

    exported = list(csv.DictReader(io.StringIO(export_bytes(hydra.batches.store, batch_id, "csv").decode())))
    assert len(exported) == n
    assert exported[3]["question"] == "What is 3 plus 3?" and exported[3]["answer"] == rows[3]["answer"]
    assert {"node", "model", "ttft_s", "duration_s", "tokens", "error", "status"} <= set(exported[0])
    jsonl = [json.loads(line) for line in export_bytes(hydra.batches.store, batch_id, "jsonl").splitlines()]
    assert len(jsonl) == n and jsonl[0]["status"] == "done" and jsonl[0]["model"] == MODEL


def test_pause_holds_the_rows_and_resume_finishes_them(hydra: Hydra, eventually: Callable[..., Any]):
    batch_id = hydra.batches.create(parse(lines(60), "q.csv"), "{question}", options(max_tokens=40))
    eventually(lambda: hydra.batches.progress(batch_id).done >= 2, TIMEOUT, "two rows done")
    assert hydra.batches.pause(batch_id)
    # The rows already in flight end; then nothing more runs.
    eventually(lambda: hydra.batches.progress(batch_id).counts["running"] == 0, TIMEOUT, "in-flight rows ended")
    held = hydra.batches.progress(batch_id)
    assert held.batch.status == "paused" and held.counts["pending"] > 0
    assert hydra.router.snapshot().in_flight == 0
    assert hydra.batches.resume(batch_id)
    assert hydra.batches.wait(batch_id, TIMEOUT)
    final = hydra.batches.progress(batch_id)
    assert final.batch.status == "done" and final.done == 60


def test_cancel_ends_running_and_pending_rows(hydra: Hydra, eventually: Callable[..., Any]):
    batch_id = hydra.batches.create(parse(lines(80), "q.csv"), "{question}", options(max_tokens=200))
    eventually(lambda: hydra.batches.progress(batch_id).counts["running"] > 0, TIMEOUT, "rows running")
    assert hydra.batches.cancel(batch_id)
    final = hydra.batches.progress(batch_id)
    assert final.batch.status == "cancelled"
    assert final.remaining == 0 and final.cancelled > 0
    assert final.done + final.failed + final.cancelled == 80
    eventually(lambda: hydra.router.snapshot().in_flight == 0, 10, "the cancelled rows' tasks to end")


def test_failed_rows_are_retried_alone(seed: SimCluster, tmp_path: Path, eventually: Callable[..., Any]):
    h = Hydra.from_env(hydra_env(seed, tmp_path), breaker_cooldown_s=0.3, max_backoff_s=0.3,
                       poll_interval_s=0.1).start()
    try:
        batch_id = h.batches.create(parse(lines(40), "q.csv"), "{question}", options(max_tokens=20))
        eventually(lambda: h.batches.progress(batch_id).done >= 3, TIMEOUT, "three rows done")
        h.batches.pause(batch_id)
        eventually(lambda: h.batches.progress(batch_id).counts["running"] == 0, TIMEOUT, "in-flight rows ended")
        for node in seed.nodes:  # both nodes now answer 500: the rest of the rows fail
            node.set_fault("http_500")
        h.batches.resume(batch_id)
        assert h.batches.wait(batch_id, TIMEOUT)
        failed = h.batches.progress(batch_id)
        assert failed.batch.status == "done" and failed.failed > 0 and failed.done >= 3
        done_before = {r["idx"] for r in h.batches.rows(batch_id, 0, 50, status="done")}
        assert all(r["error"] for r in h.batches.rows(batch_id, 0, 50, status="failed"))
        for node in seed.nodes:
            node.clear_faults()
        eventually(lambda: all(n.healthy and n.circuit != "open" for n in h.snapshot().nodes), TIMEOUT,
                   "the nodes back")
        assert h.batches.retry_failed(batch_id) == failed.failed
        eventually(lambda: h.batches.progress(batch_id).batch.status == "done", TIMEOUT, "the retry to end")
        # A node whose circuit is half-open takes one trial at a time; rows the router could not place
        # meanwhile failed fast (no route): retried again, as a user would, until every row is done.
        for _ in range(5):
            if not h.batches.retry_failed(batch_id):
                break
            eventually(lambda: h.batches.progress(batch_id).batch.status == "done", TIMEOUT, "the retry to end")
        rows = h.batches.rows(batch_id, 0, 50)
        assert all(r["status"] == "done" for r in rows), [(r["status"], r["error"]) for r in rows]
        assert all(r["runs"] == 1 for r in rows if r["idx"] in done_before)   # done rows never ran again
        assert all(r["runs"] >= 2 for r in rows if r["idx"] not in done_before)
    finally:
        h.close()


def test_bad_input_creates_nothing(hydra: Hydra):
    with pytest.raises(BatchInputError, match=r"\{answer\} is not a column"):
        hydra.batches.create(parse(lines(3), "q.csv"), "{answer}", options())
    with pytest.raises(BatchInputError, match="priority"):
        hydra.batches.create(parse(lines(3), "q.csv"), "{question}", options(priority=11))
    with pytest.raises(BatchInputError, match="mode"):
        hydra.batches.create(parse(lines(3), "q.csv"), "{question}", options(mode="turbo"))
    assert hydra.batches.batches() == []


def test_an_interactive_task_during_a_batch_starts_on_the_next_free_slot(hydra: Hydra,
                                                                        eventually: Callable[..., Any]):
    batch_id = hydra.batches.create(parse(lines(200), "q.csv"), "{question}", options(max_tokens=60))
    eventually(lambda: hydra.batches.progress(batch_id).done >= 4, TIMEOUT, "the batch under way")
    ended: list[str] = []
    started = threading.Event()
    before = hydra.batches.progress(batch_id).finished
    handle = hydra.submit("Say hello", model=MODEL, max_tokens=4, priority=5)
    unwatch = handle.watch(lambda: started.set() if handle.status.value != "queued" else None)
    if handle.status.value != "queued":  # it left the queue before the watch was set: no change left to see
        started.set()
    assert started.wait(TIMEOUT)
    unwatch()
    ended.append(handle.id)
    # It started when one slot freed: at most one row per slot ended before it (the cap is 4).
    assert hydra.batches.progress(batch_id).finished - before <= hydra.router.snapshot().max_concurrent
    assert handle.result(TIMEOUT).status.value == "done"
    hydra.batches.cancel(batch_id)


def test_batch_rows_do_not_crowd_the_tasks_pages_cards(hydra: Hydra):
    interactive = hydra.submit("Say hi", model=MODEL, max_tokens=4)
    batch_id = hydra.batches.create(parse(lines(8), "q.csv"), "{question}", options())
    assert hydra.batches.wait(batch_id, TIMEOUT)
    assert [h.id for h in hydra.tasks()] == [interactive.id]


def test_rows_wait_while_no_node_is_healthy_instead_of_failing(clusters: Callable[..., SimCluster], tmp_path: Path,
                                                               eventually: Callable[..., Any]):
    cluster = clusters("seed")
    h = Hydra.from_env(hydra_env(cluster, tmp_path), no_route_wait_s=0.2, poll_interval_s=0.1,
                       max_backoff_s=0.3).start()
    try:
        for node in cluster.nodes:
            node.kill()
        eventually(lambda: not h.has_healthy_node(), TIMEOUT, "every node down")
        batch_id = h.batches.create(parse(lines(10), "q.csv"), "{question}", options())
        # The router fails a task fast now (no route) ...
        probe = h.submit("probe", model=MODEL, max_tokens=4)
        assert probe.result(TIMEOUT).failure is not None
        # ... but no row was sent to fail: they wait for a node.
        held = h.batches.progress(batch_id)
        assert held.failed == 0 and held.done == 0 and held.counts["pending"] == 10
        for node in cluster.nodes:
            node.restart()
        assert h.batches.wait(batch_id, TIMEOUT)
        final = h.batches.progress(batch_id)
        assert final.done == 10 and final.failed == 0
    finally:
        h.close()


def test_a_clean_stop_puts_rows_in_flight_back_and_the_next_start_finishes_them(seed: SimCluster, tmp_path: Path,
                                                                               eventually: Callable[..., Any]):
    first = Hydra.from_env(hydra_env(seed, tmp_path)).start()
    batch_id = first.batches.create(parse(lines(30), "q.csv"), "{question}", options(max_tokens=80))
    eventually(lambda: first.batches.progress(batch_id).done >= 2, TIMEOUT, "the batch under way")
    first.close()
    stopped = stored_progress(tmp_path, batch_id)
    assert stopped.counts["running"] == 0 and stopped.counts["pending"] > 0 and stopped.failed == 0
    second = Hydra.from_env(hydra_env(seed, tmp_path)).start()
    try:
        assert second.batches.wait(batch_id, TIMEOUT)
        final = second.batches.progress(batch_id)
        assert final.batch.status == "done" and final.done == 30 and final.failed == 0
        assert all(r["runs"] in (1, 2) for r in second.batches.rows(batch_id, 0, 50))
        # History's writer commits a task's end on its own thread, a moment after the handle has it.
        expected = {f"What is {i} plus {i}?" for i in range(30)}

        def done_prompts() -> list[str]:
            return [t["prompt"] for t in second.history.recent_tasks(limit=1000) if t["status"] == "done"]

        eventually(lambda: expected <= set(done_prompts()), TIMEOUT, "history to record every row's task")
        assert sorted(done_prompts()) == sorted(expected)  # each row's prompt done exactly once
    finally:
        second.close()


def stored_progress(tmp_path: Path, batch_id: str) -> Any:
    """The batch as the file holds it, read while no service runs."""
    from hydra.batch import BatchStore
    store = BatchStore(tmp_path / "h.db")
    try:
        return store.progress(batch_id)
    finally:
        store.close()
