"""SIGKILL in the middle of a run, through the whole service: every submitted task is in history,
and the next start marks the unfinished ones interrupted (resubmittable)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from hydra.history import History
from hydra.service import Hydra

REPO = Path(__file__).resolve().parents[2]
N = 30

CHILD = textwrap.dedent("""
    import json, os, signal, sys, time
    from hydra.sim import start_cluster
    from hydra.service import Hydra

    db, n = sys.argv[1], int(sys.argv[2])
    cluster = start_cluster("seed", time_scale=0.2)
    hydra = Hydra.from_env({"SOLLOL_NODES": cluster.sollol_nodes(), "HYDRA_DB": db, "HYDRA_EMBEDDED_NODE": "off",
                            "SOLLOL_DISCOVER_LOCALHOST": "false", "HYDRA_GATEWAY_PORT": "0"}).start()
    handles = [hydra.submit(f"Write a long essay number {i}", max_tokens=400) for i in range(n)]
    print(json.dumps([h.id for h in handles]), flush=True)
    ids = {h.id for h in handles}

    def partial_saved():
        # What the parent checks: an unfinished task whose partial text the saver has written.
        return any(row["id"] in ids and row["status"] == "running" and row["text"]
                   for row in hydra.history.recent_tasks(limit=1000))

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not partial_saved():
        time.sleep(0.05)
    os.kill(os.getpid(), signal.SIGKILL)
""")


def test_sigkill_mid_run_keeps_every_submitted_task(tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith(("HYDRA_", "SOLLOL_")) or name == "OLLAMA_HOST":
            monkeypatch.delenv(name)
    db = tmp_path / "hydra.db"
    child = subprocess.run([sys.executable, "-c", CHILD, str(db), str(N)], check=False, cwd=REPO, capture_output=True,
                           text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    submitted = json.loads(child.stdout.splitlines()[0])
    assert len(submitted) == N

    history = History(db)
    rows = {row["id"]: row for row in history.recent_tasks(limit=1000)}
    history.close()
    assert set(submitted) <= set(rows), "a submitted task is missing from history"
    unfinished = [i for i in submitted if rows[i]["status"] in ("queued", "running")]
    assert unfinished, "the kill came after everything finished: the test proves nothing"
    assert any(rows[i]["text"] for i in unfinished), "no partial output survived"

    hydra = Hydra.from_env({"HYDRA_DB": str(db), "HYDRA_EMBEDDED_NODE": "off", "SOLLOL_DISCOVER_LOCALHOST": "false",
                            "HYDRA_GATEWAY_PORT": "0"}).start()
    try:
        after = {row["id"]: row for row in hydra.history.recent_tasks(limit=1000)}
    finally:
        hydra.close()
    for task_id in unfinished:
        assert after[task_id]["status"] == "interrupted"
        assert "resubmit" in (after[task_id]["error"] or "")
