"""How large the history's WAL grows under sustained load.

    python -m bench.history_wal [--tasks 3000] [--db PATH]

Records the events the router emits for ``--tasks`` tasks (queued, routed, running, two partial
saves, finished) as fast as one thread can write them, through the service's own ``EventWriter``
and ``History``, while a reader thread runs the pages' queries in a loop (recent tasks,
decisions, distribution, performance). No node is needed: the events are made here. Prints the
largest WAL file seen (sampled after every task) and the write rate. Target: under 64 MB through
3,000 tasks.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from hydra.history import History
from hydra.history.recorder import EventWriter
from hydra.sollol.types import Candidate, RoutingDecision, RoutingMode, Task, TaskEvent, TaskResult, TaskStatus

TARGET_WAL_BYTES = 64 * 2**20
ANSWER = "Routing spreads the load over the nodes that can serve the model. " * 12  # ~800 characters


@dataclass(frozen=True)
class WalReport:
    tasks: int
    seconds: float
    max_wal_bytes: int
    final_wal_bytes: int
    reads: int
    row_wait_p50_ms: float   # how long a submitter waits for its queued row
    row_wait_max_ms: float


def task_events(i: int) -> tuple[Task, list[TaskEvent]]:
    """The events of one task as the router would emit them (the partial saves are separate)."""
    task = Task(prompt=f"Explain routing, take {i}", id=f"bench-{i}", priority=1 + i % 10, task_type="general")
    candidates = (Candidate("light", "qwen3:1.7b", 0.3, True, "lowest load"),
                  Candidate("heavy", "qwen3:1.7b", None, False, "circuit open"))
    decision = RoutingDecision(task.id, time.time(), RoutingMode.ASYNC, "general", "light", "qwen3:1.7b",
                               "async: least loaded", candidates, 1, task.priority)
    result = TaskResult(task.id, TaskStatus.DONE, text=ANSWER, node="light", model="qwen3:1.7b",
                        mode=RoutingMode.ASYNC, task_type="general", attempts=1, ttft_s=0.05, duration_s=0.5,
                        queued_s=0.001, eval_count=160, prompt_eval_count=8, tokens_per_s=300.0)
    return task, [TaskEvent("queued", task), TaskEvent("routed", task, decision=decision),
                  TaskEvent("running", task, node="light", model="qwen3:1.7b", attempt=1),
                  TaskEvent("finished", task, result=result)]


def _read_pages(history: History, stop: threading.Event, count: list[int]) -> None:
    while not stop.is_set():
        history.recent_tasks(limit=50)
        history.decisions(limit=200)
        history.distribution(since=time.time() - 3600)
        history.performance()
        count[0] += 1


def drive(path: Path, tasks: int = 3000) -> WalReport:
    """Record ``tasks`` tasks' events into a History at ``path`` at full speed; the WAL's largest size."""
    history = History(path)
    writer = EventWriter(history)
    writer.start()
    wal = Path(f"{path}-wal")
    stop, reads = threading.Event(), [0]
    reader = threading.Thread(target=_read_pages, args=(history, stop, reads), name="bench-pages")
    reader.start()
    largest = 0
    waits: list[float] = []
    started = time.perf_counter()
    try:
        for i in range(tasks):
            task, (queued, routed, running, finished) = task_events(i)
            committed = writer.expect(task.id)
            asked = time.perf_counter()
            for event in (queued, routed, running):
                writer.on_event(event)
            committed.wait(30)   # as Hydra.submit does: the next task comes once this row is on disk
            waits.append(time.perf_counter() - asked)
            history.save_partial(task.id, ANSWER[:200])   # the partial saver, now and then
            history.save_partial(task.id, ANSWER[:500])
            writer.on_event(finished)
            largest = max(largest, wal.stat().st_size if wal.exists() else 0)
        writer.close()
        largest = max(largest, wal.stat().st_size if wal.exists() else 0)
        seconds = time.perf_counter() - started
    finally:
        stop.set()
        reader.join()
        final = wal.stat().st_size if wal.exists() else 0
        history.close()
    waits.sort()
    return WalReport(tasks, seconds, largest, final, reads[0], waits[len(waits) // 2] * 1000, waits[-1] * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--db", type=Path, default=None, help="database file (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.db or Path(tmp) / "hydra.db"
        report = drive(path, args.tasks)
        size = os.path.getsize(path)
    print(f"{report.tasks} tasks in {report.seconds:.1f} s ({report.tasks / report.seconds:.0f} tasks/s, "
          f"{report.reads} page reads meanwhile); database {size / 2**20:.1f} MB")
    print(f"WAL: largest {report.max_wal_bytes / 2**20:.1f} MB, at the end {report.final_wal_bytes / 2**20:.1f} MB "
          f"(target: under {TARGET_WAL_BYTES / 2**20:.0f} MB)")
    print(f"wait for a task's queued row: median {report.row_wait_p50_ms:.2f} ms, "
          f"max {report.row_wait_max_ms:.1f} ms")


if __name__ == "__main__":
    main()
