"""A process killed with SIGKILL mid-run loses none of the tasks it recorded.

The child records tasks through ``hydra.history`` alone (the lead's end-to-end
version goes through the router), keeps a thread saving partial output while
it dies, and never closes the database: what the parent reads comes from the
WAL the child left behind.
"""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hydra.history import History

REPO = Path(__file__).resolve().parents[2]
N = 60   # i % 3: 0 stays queued, 1 is running with partial text, 2 finishes

CHILD = textwrap.dedent("""
    import os, signal, sys, threading
    from hydra.history import History
    from hydra.sollol.types import Task, TaskEvent, TaskResult, TaskStatus

    history = History(sys.argv[1])
    n = int(sys.argv[2])
    running = []
    for i in range(n):
        task = Task(prompt=f"prompt {i}", id=f"t{i}", priority=1 + i % 10)
        history.record_event(TaskEvent("queued", task))
        if i % 3 == 1:
            history.record_event(TaskEvent("running", task, node="light", model="qwen3:1.7b", attempt=1))
            history.save_partial(task.id, f"partial {i}", "thinking")
            running.append(task.id)
        elif i % 3 == 2:
            history.record_event(TaskEvent("running", task, node="light", model="qwen3:1.7b", attempt=1))
            history.record_event(TaskEvent("finished", task, result=TaskResult(
                task.id, TaskStatus.DONE, text=f"answer {i}", node="light", model="qwen3:1.7b")))

    streamed = threading.Event()
    def stream():
        # Keeps writing, as the service's throttled partial saves do, until the kill.
        k = 0
        while True:
            history.save_partial(running[k % len(running)], f"partial {running[k % len(running)][1:]} more", "")
            k += 1
            if k == 50:
                streamed.set()
    threading.Thread(target=stream).start()
    streamed.wait(10)
    os.kill(os.getpid(), signal.SIGKILL)
""")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("HYDRA_", "SOLLOL_")) or name == "OLLAMA_HOST":
            monkeypatch.delenv(name)


def test_sigkill_mid_run_loses_no_task(tmp_path: Path) -> None:
    db = tmp_path / "state" / "hydra.db"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    child = subprocess.run([sys.executable, "-c", CHILD, str(db), str(N)], check=False, env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=60)
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert Path(f"{db}-wal").exists()       # it died without a checkpoint: recovery comes from the WAL

    history = History(db)
    try:
        with sqlite3.connect(db) as check:
            assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = {row["id"]: row for row in history.recent_tasks(limit=1000)}
        assert set(rows) == {f"t{i}" for i in range(N)}
        for i in range(N):
            row = rows[f"t{i}"]
            assert row["prompt"] == f"prompt {i}" and row["priority"] == 1 + i % 10
            expected = ("queued", "running", "done")[i % 3]
            assert row["status"] == expected, row
            if expected == "running":
                assert row["text"].startswith(f"partial {i}") and row["node"] == "light"
            if expected == "done":
                assert row["text"] == f"answer {i}"

        live = sum(i % 3 != 2 for i in range(N))
        assert history.mark_interrupted() == live
        after = {row["id"]: row for row in history.recent_tasks(limit=1000)}
        for i in range(N):
            row = after[f"t{i}"]
            if i % 3 == 2:
                assert row["status"] == "done"
            else:
                was = "queued" if i % 3 == 0 else "running"
                assert row["status"] == "interrupted"
                assert row["error"] == f"Hydra stopped while this task was {was}; resubmit it"
        assert after["t1"]["text"].startswith("partial 1")      # partial output kept for the user
    finally:
        history.close()
