"""hydra.history: the SQLite store the pages read and restarts rely on."""
from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hydra.history import SCHEMA_VERSION, History
from hydra.sollol.errors import ConfigError, ShutdownError
from hydra.sollol.types import Candidate, RoutingDecision, RoutingMode, Task, TaskEvent, TaskResult, TaskStatus


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("HYDRA_", "SOLLOL_")) or name == "OLLAMA_HOST":
            monkeypatch.delenv(name)


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def history(tmp_path: Path, clock: Clock) -> Iterator[History]:
    h = History(tmp_path / "data" / "hydra.db", clock=clock)
    yield h
    h.close()


def task(task_id: str, *, at: float = 1_000_000.0, prompt: str = "Write a Python function", **kw: object) -> Task:
    return Task(prompt=prompt, id=task_id, submitted_at=at, **kw)  # type: ignore[arg-type]


def decision(t: Task, node: str | None = "light", *, mode: RoutingMode = RoutingMode.ASYNC, at: float | None = None,
             attempt: int = 1) -> RoutingDecision:
    candidates = (Candidate("light", "qwen2.5-coder:7b", 0.2, True, "lowest load"),
                  Candidate("heavy", "qwen2.5-coder:7b", None, False, "circuit open"))
    return RoutingDecision(t.id, t.submitted_at if at is None else at, mode, "code", node,
                           "qwen2.5-coder:7b" if node else None, f"{mode.value}: least loaded", candidates,
                           attempt, t.priority)


def result(t: Task, status: TaskStatus = TaskStatus.DONE, node: str | None = "light", **kw: object) -> TaskResult:
    fields: dict[str, object] = {"text": "def f():\n    return 1\n", "node": node, "model": "qwen2.5-coder:7b",
                                     "mode": RoutingMode.ASYNC, "task_type": "code", "attempts": 1, "ttft_s": 0.25,
                                     "duration_s": 2.0, "queued_s": 0.01, "eval_count": 40, "prompt_eval_count": 12,
                                     "tokens_per_s": 20.0}
    fields.update(kw)
    return TaskResult(t.id, status, **fields)  # type: ignore[arg-type]


def run(h: History, t: Task, status: TaskStatus = TaskStatus.DONE, node: str = "light", **kw: object) -> None:
    """The events a task goes through, as the router reports them."""
    h.record_event(TaskEvent("queued", t))
    h.record_event(TaskEvent("routed", t, decision=decision(t, node)))
    h.record_event(TaskEvent("running", t, node=node, model="qwen2.5-coder:7b", attempt=1))
    h.record_event(TaskEvent("finished", t, result=result(t, status, node, **kw)))


def test_storage_is_wal_with_normal_sync_and_migrated(history: History, tmp_path: Path) -> None:
    assert (tmp_path / "data" / "hydra.db").exists()       # parent directory created
    conn = sqlite3.connect(tmp_path / "data" / "hydra.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert history._conn.execute("PRAGMA synchronous").fetchone()[0] == 1      # NORMAL: no fsync per commit
    assert history.schema_version == SCHEMA_VERSION
    conn.close()


def test_checkpoints_run_off_the_write_path_and_stop_on_close(tmp_path: Path) -> None:
    h = History(tmp_path / "h.db")
    assert h._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0   # no checkpoint inside a write
    assert h._checkpointer.is_alive()
    h.close()
    assert not h._checkpointer.is_alive()


def test_full_event_sequence_round_trips(history: History, clock: Clock) -> None:
    t = task("t1", priority=8, max_tokens=256, think=True, options={"temperature": 0.2},
             messages=[{"role": "user", "content": "hi"}])
    history.record_event(TaskEvent("queued", t))
    assert history.get_task("t1")["status"] == "queued"
    history.record_event(TaskEvent("routed", t, decision=decision(t)))
    history.set_reasoning("t1", {"score": 6.5, "level": "standard", "budget": 2000, "reasons": ["code"]})
    clock.now += 1
    history.record_event(TaskEvent("running", t, node="light", model="qwen2.5-coder:7b", attempt=1))
    history.save_partial("t1", "def f(", "hmm")
    assert history.get_task("t1")["text"] == "def f("
    history.record_event(TaskEvent("restart", t, notice="light failed mid-stream; heavy continues"))
    assert history.get_task("t1")["text"] == "def f("      # the answer continues: its text so far stays
    history.record_event(TaskEvent("routed", t, decision=decision(t, "heavy", attempt=2)))
    clock.now += 1
    history.record_event(TaskEvent("running", t, node="heavy", model="qwen2.5-coder:7b", attempt=2))
    clock.now += 2
    history.record_event(TaskEvent("finished", t, result=result(
        t, node="heavy", attempts=2, failovers=1, thinking="so", thinking_tokens=3)))

    row = history.get_task("t1")
    assert row is not None
    assert {k: row[k] for k in ("status", "node", "model", "mode", "task_type", "priority", "attempts",
                                "failovers", "text", "thinking", "thinking_tokens", "error")} == {
        "status": "done", "node": "heavy", "model": "qwen2.5-coder:7b", "mode": "async", "task_type": "code",
        "priority": 8, "attempts": 2, "failovers": 1, "text": "def f():\n    return 1\n", "thinking": "so",
        "thinking_tokens": 3, "error": None}
    assert (row["submitted_at"], row["started_at"], row["finished_at"]) == (1_000_000.0, 1_000_001.0, 1_000_004.0)
    assert (row["ttft_s"], row["duration_s"], row["queued_s"]) == (0.25, 2.0, 0.01)
    assert (row["eval_count"], row["prompt_eval_count"], row["tokens_per_s"]) == (40, 12, 20.0)
    assert row["messages"] == [{"role": "user", "content": "hi"}]
    assert row["options"]["max_tokens"] == 256 and row["options"]["think"] is True
    assert row["options"]["options"] == {"temperature": 0.2}
    assert row["reasoning"] == {"score": 6.5, "level": "standard", "budget": 2000, "reasons": ["code"]}
    trail = history.decisions(task_id="t1")
    assert [(d["attempt"], d["node"]) for d in trail] == [(2, "heavy"), (1, "light")]
    assert trail[1]["candidates"][1] == {"node": "heavy", "model": "qwen2.5-coder:7b", "score": None,
                                         "eligible": False, "reason": "circuit open"}


def test_history_survives_reopening(tmp_path: Path) -> None:
    first = History(tmp_path / "h.db")
    run(first, task("a"))
    first.save_setting("SOLLOL_DEFAULT_ROUTING_MODE", "fast")
    first.close()
    second = History(tmp_path / "h.db")
    try:
        assert second.get_task("a")["status"] == "done"
        assert second.load_settings() == {"SOLLOL_DEFAULT_ROUTING_MODE": "fast"}
        assert second.schema_version == SCHEMA_VERSION    # migrations did not run twice
    finally:
        second.close()


def test_finished_without_queued_still_records_the_task(history: History) -> None:
    t = task("late")
    history.record_event(TaskEvent("finished", t, result=result(t, TaskStatus.FAILED, node=None, error="no route")))
    row = history.get_task("late")
    assert (row["status"], row["error"], row["prompt"]) == ("failed", "no route", t.prompt)


def test_partial_save_after_the_result_is_ignored(history: History) -> None:
    t = task("t")
    run(history, t)
    assert history.save_partial("t", "stale partial") is False
    assert history.get_task("t")["text"] == "def f():\n    return 1\n"


def test_unknown_task_and_unknown_event_kind(history: History) -> None:
    assert history.get_task("nope") is None
    assert history.set_reasoning("nope", {"score": 1}) is False
    history.record_event(TaskEvent("mystery", task("x")))
    assert history.get_task("x") is None


def test_mark_interrupted_ends_queued_and_running_tasks(tmp_path: Path, clock: Clock) -> None:
    before = History(tmp_path / "h.db", clock=clock)  # the previous run
    queued, running, done = task("q"), task("r"), task("d")
    before.record_event(TaskEvent("queued", queued))
    before.record_event(TaskEvent("queued", running))
    before.record_event(TaskEvent("running", running, node="light", model="m", attempt=1))
    before.save_partial("r", "half an answ")
    run(before, done)
    meanwhile = History(tmp_path / "h.db")
    assert meanwhile.mark_interrupted() == 0  # their owner is still open: it may finish them
    meanwhile.close()
    before.close()
    clock.now = 2_000_000.0
    history = History(tmp_path / "h.db", clock=clock)

    assert history.mark_interrupted() == 2
    q, r, d = (history.get_task(i) for i in "qrd")
    assert (q["status"], q["error"]) == ("interrupted", "Hydra stopped while this task was queued; resubmit it")
    assert (r["status"], r["error"]) == ("interrupted", "Hydra stopped while this task was running; resubmit it")
    assert r["text"] == "half an answ" and r["finished_at"] == 2_000_000.0
    assert (d["status"], d["error"]) == ("done", None)
    assert history.mark_interrupted() == 0
    history.close()


_OTHER_PROCESS = """
import sys
from hydra.history import History
from hydra.sollol.types import Task, TaskEvent
history = History(sys.argv[1])
history.record_event(TaskEvent("queued", Task(prompt="theirs", id="theirs")))
print("recorded", flush=True)
sys.stdin.readline()  # holds the task "running" until told, or killed
"""


def test_a_live_process_sharing_the_database_keeps_its_tasks(tmp_path: Path) -> None:
    """Two Hydras on one HYDRA_DB: starting the second must not interrupt the first's tasks;
    once the first is killed, its tasks are interrupted at the next start."""
    import signal
    import subprocess
    import sys
    db = tmp_path / "shared.db"
    History(db).close()  # create the schema before two processes race to
    other = subprocess.Popen([sys.executable, "-c", _OTHER_PROCESS, str(db)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2])
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "recorded"
        mine = History(db)
        mine.record_event(TaskEvent("queued", task("mine")))
        assert mine.mark_interrupted() == 0
        assert mine.get_task("theirs")["status"] == "queued"
        other.send_signal(signal.SIGKILL)
        other.wait(timeout=10)
        assert mine.mark_interrupted() == 1  # theirs, not mine: this History is open
        assert mine.get_task("theirs")["status"] == "interrupted"
        assert mine.get_task("mine")["status"] == "queued"
        mine.close()
    finally:
        if other.poll() is None:
            other.kill()
            other.wait()


def test_rows_without_an_owner_count_as_gone(tmp_path: Path) -> None:
    """Rows written before owners were recorded (schema 1) have none: they are interrupted."""
    old = History(tmp_path / "h.db")
    old.record_event(TaskEvent("queued", task("legacy")))
    with old._write() as conn:
        conn.execute("UPDATE tasks SET owner = NULL")
    new = History(tmp_path / "h.db")
    assert new.mark_interrupted() == 1
    new.close()
    old.close()


def test_recent_tasks_newest_first_and_by_status(history: History) -> None:
    for i, status in enumerate([TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.DONE, TaskStatus.CANCELLED]):
        run(history, task(f"t{i}", at=1_000_000.0 + i), status)
    assert [r["id"] for r in history.recent_tasks()] == ["t3", "t2", "t1", "t0"]
    assert [r["id"] for r in history.recent_tasks(limit=2)] == ["t3", "t2"]
    assert [r["id"] for r in history.recent_tasks(statuses=[TaskStatus.DONE])] == ["t2", "t0"]
    assert [r["id"] for r in history.recent_tasks(statuses=["failed", "cancelled"])] == ["t3", "t1"]


@pytest.fixture
def routed(history: History) -> History:
    plan = [("a", "light", RoutingMode.ASYNC, 100.0), ("b", "heavy", RoutingMode.FAST, 200.0),
            ("c", "light", RoutingMode.FAST, 300.0), ("d", None, RoutingMode.RELIABLE, 400.0)]
    for task_id, node, mode, at in plan:
        t = task(task_id, at=at)
        history.record_event(TaskEvent("routed", t, decision=decision(t, node, mode=mode)))
    return history


DECISION_FILTERS = [
    ({}, ["d", "c", "b", "a"]),
    ({"limit": 2}, ["d", "c"]),
    ({"node": "light"}, ["c", "a"]),
    ({"mode": RoutingMode.FAST}, ["c", "b"]),
    ({"mode": "reliable"}, ["d"]),
    ({"task_id": "b"}, ["b"]),
    ({"since": 250.0}, ["d", "c"]),
    ({"node": "light", "mode": "fast", "since": 100.0}, ["c"]),
    ({"node": "nowhere"}, []),
]


@pytest.mark.parametrize(("filters", "expected"), DECISION_FILTERS,
                         ids=["all", "limit", "node", "mode-enum", "mode-text", "task", "since", "combined", "none"])
def test_decision_filters(routed: History, filters: dict[str, object], expected: list[str]) -> None:
    assert [d["task_id"] for d in routed.decisions(**filters)] == expected  # type: ignore[arg-type]


def test_distribution_counts_per_bucket_node_and_status(history: History) -> None:
    run(history, task("a", at=60.0))
    run(history, task("b", at=119.9))
    run(history, task("c", at=100.0), node="heavy")
    run(history, task("d", at=125.0), TaskStatus.FAILED)
    history.record_event(TaskEvent("queued", task("e", at=130.0)))

    rows = [(r["bucket"], r["node"], r["status"], r["count"]) for r in history.distribution(bucket_s=60)]
    assert rows == [(60, "heavy", "done", 1), (60, "light", "done", 2),
                    (120, None, "queued", 1), (120, "light", "failed", 1)]
    assert {r["mode"] for r in history.distribution()} == {"async"} | {None}
    assert sum(r["count"] for r in history.distribution(since=120.0)) == 2
    assert [r["bucket"] for r in history.distribution(bucket_s=3600)] == [0, 0, 0, 0]
    with pytest.raises(ValueError):
        history.distribution(bucket_s=0)


def test_performance_aggregates_per_node_and_model(history: History) -> None:
    for i, ttft in enumerate([0.1, 0.2, 0.3, 0.4, 0.5]):
        run(history, task(f"l{i}", at=float(i)), ttft_s=ttft, tokens_per_s=10.0 * (i + 1), failovers=i % 2)
    run(history, task("lf", at=10.0), TaskStatus.FAILED, ttft_s=None, tokens_per_s=None)
    run(history, task("lc", at=11.0), TaskStatus.CANCELLED)
    run(history, task("h0", at=12.0), node="heavy", ttft_s=2.0)
    history.record_event(TaskEvent("queued", task("pending", at=13.0)))

    by_node = {row["node"]: row for row in history.performance()}
    assert set(by_node) == {"light", "heavy"}
    light = by_node["light"]
    assert (light["count"], light["done"], light["failed"]) == (7, 5, 1)
    assert light["success_rate"] == pytest.approx(5 / 6)      # the cancelled task says nothing about the node
    assert light["ttft_p50_s"] == pytest.approx(0.3)
    assert light["ttft_p95_s"] == pytest.approx(0.5)        # nearest rank, as the engine's live stats
    assert light["tokens_per_s"] == pytest.approx(30.0)
    assert light["failovers"] == 2
    assert (by_node["heavy"]["count"], by_node["heavy"]["success_rate"], by_node["heavy"]["ttft_p95_s"]) == (1, 1.0, 2.0)
    assert {r["node"]: r["count"] for r in history.performance(since=11.0)} == {"light": 1, "heavy": 1}


def test_settings_save_load_delete(history: History) -> None:
    history.save_setting("SOLLOL_MAX_CONCURRENT_REQUESTS", "8")
    history.save_setting("SOLLOL_MAX_CONCURRENT_REQUESTS", "12")
    history.save_setting("HYDRA_REASONING_MODE", "deep")
    assert history.load_settings() == {"HYDRA_REASONING_MODE": "deep", "SOLLOL_MAX_CONCURRENT_REQUESTS": "12"}
    history.delete_setting("HYDRA_REASONING_MODE")
    history.delete_setting("never-saved")
    assert history.load_settings() == {"SOLLOL_MAX_CONCURRENT_REQUESTS": "12"}


def test_concurrent_writers_and_readers_lose_nothing(history: History) -> None:
    threads, per_thread = 8, 50          # 50 tasks x 4 events = 200 events per thread
    errors: list[BaseException] = []
    start = threading.Barrier(threads + 1)
    stop_reading = threading.Event()

    def write(n: int) -> None:
        try:
            start.wait(timeout=10)
            for i in range(per_thread):
                run(history, task(f"w{n}-{i}", at=float(i)))
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    def read() -> None:
        try:
            start.wait(timeout=10)
            while not stop_reading.is_set():
                history.recent_tasks(20)
                history.performance()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    writers = [threading.Thread(target=write, args=(n,)) for n in range(threads)]
    reader = threading.Thread(target=read)
    for th in (*writers, reader):
        th.start()
    for th in writers:
        th.join(timeout=60)
    stop_reading.set()
    reader.join(timeout=10)

    assert errors == []
    assert not any(th.is_alive() for th in (*writers, reader))
    rows = history.recent_tasks(limit=10_000)
    assert len(rows) == threads * per_thread
    assert {r["status"] for r in rows} == {"done"}
    assert len(history.decisions(limit=10_000)) == threads * per_thread
    assert sum(r["count"] for r in history.performance()) == threads * per_thread


def test_after_close_events_are_dropped_and_queries_refused(tmp_path: Path) -> None:
    h = History(tmp_path / "h.db")
    h.close()
    h.close()                                           # idempotent
    h.record_event(TaskEvent("queued", task("x")))      # a late router event must not raise
    with pytest.raises(ShutdownError):
        h.get_task("x")
    with pytest.raises(ShutdownError):
        h.save_setting("k", "v")


def test_in_memory_store_works_for_quick_tests() -> None:
    h = History(":memory:")
    try:
        run(h, task("m"))
        assert h.get_task("m")["status"] == "done"
        assert h.performance()[0]["count"] == 1
    finally:
        h.close()


@pytest.mark.parametrize("make", [
    lambda p: p.write_bytes(b"this is not a database, just some text " * 100),
    lambda p: p.mkdir(),
], ids=["garbage-file", "directory"])
def test_unusable_database_file_is_a_config_error_naming_hydra_db(
        tmp_path: Path, make: Callable[[Path], object]) -> None:
    path = tmp_path / "hydra.db"
    make(path)
    with pytest.raises(ConfigError) as info:
        History(path)
    assert info.value.variable == "HYDRA_DB" and str(path) in str(info.value)


def test_options_json_cannot_write_are_kept_as_text(history: History) -> None:
    """Options come from users: a key JSON cannot have (a tuple) or a cycle must not cost the row."""
    cyclic: list[object] = []
    cyclic.append(cyclic)
    t = task("odd", options={("top", "k"): 3, "seed": 1}, tools=[{"function": {"name": "f", "tag": {1, 2}}}])
    history.record_event(TaskEvent("queued", t))
    row = history.get_task("odd")
    assert row is not None and row["options"]["options"] == {"('top', 'k')": 3, "seed": 1}
    assert row["options"]["tools"] == [{"function": {"name": "f", "tag": "{1, 2}"}}]
    t2 = task("cyclic", messages=[{"role": "user", "content": "hi", "extra": cyclic}])
    history.record_event(TaskEvent("queued", t2))
    assert history.get_task("cyclic")["messages"] == repr(t2.messages)
