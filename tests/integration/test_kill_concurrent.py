"""SIGKILL while 500 submits run at once (their rows group-committed): every task whose submit returned
(acknowledged) is in history afterwards, and the group commit really grouped them."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from hydra.history import History

REPO = Path(__file__).resolve().parents[2]
N = 500
KILL_AFTER = 350   # acknowledged submits before the kill: the rest are still in flight when it comes

CHILD = textwrap.dedent("""
    import json, os, signal, sys, threading
    from concurrent.futures import ThreadPoolExecutor
    from hydra.sim import start_cluster
    from hydra.service import Hydra

    db, n, kill_after = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    cluster = start_cluster("seed", time_scale=0.2)
    hydra = Hydra.from_env({"SOLLOL_NODES": cluster.sollol_nodes(), "HYDRA_DB": db, "HYDRA_EMBEDDED_NODE": "off",
                            "SOLLOL_DISCOVER_LOCALHOST": "false", "HYDRA_GATEWAY_PORT": "0"}).start()
    lock = threading.Lock()
    acknowledged = 0
    start = threading.Barrier(50)

    def submit(i):
        global acknowledged
        if i < 50:
            start.wait()  # the first 50 submit at the same instant
        handle = hydra.submit(f"Write a long essay number {i}", max_tokens=400)
        with lock:  # one line per acknowledged task, written before the next can be
            print(json.dumps(handle.id), flush=True)
            acknowledged += 1
            if acknowledged == kill_after:
                print(json.dumps({"transactions": hydra.history.transactions}), flush=True)
                os.kill(os.getpid(), signal.SIGKILL)

    with ThreadPoolExecutor(50) as pool:
        list(pool.map(submit, range(n)))
""")


def test_sigkill_during_500_concurrent_submits_keeps_every_acknowledged_task(tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith(("HYDRA_", "SOLLOL_")) or name == "OLLAMA_HOST":
            monkeypatch.delenv(name)
    db = tmp_path / "hydra.db"
    child = subprocess.run([sys.executable, "-c", CHILD, str(db), str(N), str(KILL_AFTER)], check=False, cwd=REPO,
                           capture_output=True, text=True, timeout=180, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    lines = [json.loads(line) for line in child.stdout.splitlines()]
    acknowledged = [line for line in lines if isinstance(line, str)]
    transactions = next(line["transactions"] for line in lines if isinstance(line, dict))
    assert len(acknowledged) == KILL_AFTER

    history = History(db)
    try:
        rows = {row["id"]: row for row in history.recent_tasks(limit=2 * N)}
    finally:
        history.close()
    missing = set(acknowledged) - set(rows)
    assert not missing, f"{len(missing)} acknowledged tasks are missing from history"
    assert len(rows) < N, "every submit had its row before the kill: the kill did not land mid-submit"
    # Each task writes four events (queued, routed, running and finished or not yet): one transaction each
    # without group commit. Grouped, far fewer.
    assert transactions < KILL_AFTER, f"{transactions} transactions for {KILL_AFTER} tasks: not grouped"
