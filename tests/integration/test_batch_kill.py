"""SIGKILL mid-batch, through the whole service in a child process: the next start resumes the batch,
no row is lost and none is completed twice, even a row whose task had finished (and was recorded in
history) when the process died before the row's own end was committed."""
from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from hydra.service import Hydra
from hydra.sim import SimCluster

REPO = Path(__file__).resolve().parents[2]
N = 40
TIMEOUT = 120.0

CHILD = textwrap.dedent("""
    import json, os, signal, sys, time
    from hydra.batch import BatchOptions, parse
    from hydra.batch import store as batch_store
    from hydra.service import Hydra

    db, nodes, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    hydra = Hydra.from_env({"SOLLOL_NODES": nodes, "HYDRA_DB": db, "HYDRA_EMBEDDED_NODE": "off",
                            "SOLLOL_DISCOVER_LOCALHOST": "false", "HYDRA_GATEWAY_PORT": "0"}).start()
    finish_row = batch_store.BatchStore.finish_row
    ended = []

    def dying_finish_row(self, batch_id, index, task_id, outcome):
        # The kill lands in the window: the 10th row's task finished and history committed it,
        # but the row's own end is never committed.
        if len(ended) == 9:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and (hydra.history.get_task(task_id) or {}).get("status") != "done":
                time.sleep(0.01)
            print(json.dumps({"window_row": index, "window_task": task_id}), flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        ended.append(index)
        return finish_row(self, batch_id, index, task_id, outcome)

    batch_store.BatchStore.finish_row = dying_finish_row
    text = "q\\n" + "\\n".join(f"Question number {i}" for i in range(n))
    batch_id = hydra.batches.create(parse(text, "q.csv"), "Answer: {q}",
                                    BatchOptions(model="llama3.2:3b", max_tokens=30))
    print(json.dumps({"batch": batch_id}), flush=True)
    hydra.batches.wait(batch_id, 120)
    print("not killed", flush=True)
""")


def test_sigkill_mid_batch_resumes_with_every_row_exactly_once(seed: SimCluster, tmp_path: Path):
    db = tmp_path / "hydra.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HYDRA_", "SOLLOL_"))}
    child = subprocess.run([sys.executable, "-c", CHILD, str(db), seed.sollol_nodes(), str(N)], check=False,
                           cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT,
                           env={**env, "PYTHONPATH": str(REPO)})
    assert child.returncode == -signal.SIGKILL, child.stdout[-1000:] + child.stderr[-3000:]
    said = [json.loads(line) for line in child.stdout.splitlines() if line.startswith("{")]
    batch_id = said[0]["batch"]
    window = said[1]

    hydra = Hydra.from_env({"SOLLOL_NODES": seed.sollol_nodes(), "HYDRA_DB": str(db), "HYDRA_EMBEDDED_NODE": "off",
                            "SOLLOL_DISCOVER_LOCALHOST": "false", "HYDRA_GATEWAY_PORT": "0"})
    before = hydra.batches.store.progress(batch_id)
    assert before is not None and before.counts["running"] > 0, "the kill left no row running: it proves nothing"
    assert before.done == 9 and before.counts["pending"] > 0
    hydra.start()  # settles the orphans, resumes the batch
    try:
        assert hydra.batches.wait(batch_id, TIMEOUT)
        progress = hydra.batches.progress(batch_id)
        assert progress is not None and progress.batch.status == "done"
        assert progress.done == N and progress.failed == 0
        rows = hydra.batches.rows(batch_id, 0, N + 1)
        assert [r["idx"] for r in rows] == list(range(N))
        # The row killed in the window was settled from history: not run again, its answer kept.
        killed = rows[window["window_row"]]
        assert killed["runs"] == 1 and killed["task_id"] == window["window_task"]
        assert killed["answer"] == hydra.history.get_task(window["window_task"])["text"]
        # Exactly once: each row's prompt has exactly one task that ended done in history (whose writer
        # commits a task's end on its own thread, a moment after the handle has it: waited for, bounded).
        def done_tasks() -> collections.Counter[str]:
            return collections.Counter(t["prompt"] for t in hydra.history.recent_tasks(limit=10_000)
                                       if t["status"] == "done")

        deadline = time.monotonic() + TIMEOUT
        while len(done_tasks()) < N and time.monotonic() < deadline:
            time.sleep(0.05)
        counts = done_tasks()
        assert all(counts[f"Answer: Question number {i}"] == 1 for i in range(N)), counts
        assert all(r["answer"] == hydra.history.get_task(r["task_id"])["text"] for r in rows)
    finally:
        hydra.close()
