"""A 2,000-row batch on the cluster8 simulator: its makespan against bench.makespan's lower bound, and
the time to first token of interactive tasks sent during the batch against an idle cluster's, in one run.

    python -m bench.batch [--rows 2000] [--time-scale 0.5] [--interactive 20] [--one-process]

The rows are bench.makespan's jobs (explicit models, fixed num_predict), run as one batch through the
whole service (``Hydra.batches``: history, priority 2, async mode) with the global cap at the
cluster's slots, so the bound is the same as bench.makespan's. Interactive tasks (priority 5, fast mode, a small
model, 8 tokens) are sent one at a time: first on the idle cluster, then one every ``--every`` seconds
while the batch runs. An interactive task during the batch waits for the next slot that frees; the
printed "slot wait" is the mean row's duration / the slots of the nodes that hold the interactive
task's model, what "the next free slot" costs on average, so its TTFT should be the idle TTFT plus
about that, never a queue of rows.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.makespan import Cluster, Job, lower_bound, make_jobs, seconds_on, warm
from bench.processes import preset_process
from hydra.batch import BatchOptions, BatchStore, RowOutcome
from hydra.service import Hydra
from hydra.sim import PRESETS, NodeProfile, start_cluster

PRESET = "cluster8"
INTERACTIVE_TOKENS = 8


def first_token_s(hydra: Hydra, model: str, prompt: str) -> float:
    """Submit to first chunk, as a caller sees it (the history commit of the task's row included)."""
    started = time.perf_counter()
    handle = hydra.submit(prompt, model=model, max_tokens=INTERACTIVE_TOKENS, priority=5, mode="fast")
    for chunk in handle.stream(timeout=120):
        if chunk.text:
            elapsed = time.perf_counter() - started
            break
    else:
        raise RuntimeError(f"interactive task ended without text: {handle.result(5).error}")
    handle.result(timeout=120)
    return elapsed


@dataclass(frozen=True)
class Outcome:
    idle: list[float]          # interactive TTFTs on the idle cluster
    during: list[float]        # ... sent while the batch ran
    makespan: float
    row_s: float               # a row's mean duration on its node
    slots: int
    by_node: dict[str, int]


def run(cluster: Cluster, profiles: list[NodeProfile], jobs: list[Job], interactive: int, every: float,
        db: Path) -> Outcome:
    slots = sum(p.slots for p in profiles)
    hydra = Hydra.from_env({"SOLLOL_NODES": cluster.sollol_nodes(), "HYDRA_DB": str(db), "HYDRA_EMBEDDED_NODE": "off",
                            "SOLLOL_DISCOVER_LOCALHOST": "false", "HYDRA_GATEWAY_PORT": "0",
                            "SOLLOL_MAX_CONCURRENT_REQUESTS": str(slots), "SOLLOL_DEFAULT_ROUTING_MODE": "async"},
                           poll_interval_s=0.5).start()
    try:
        deadline = time.monotonic() + 30
        while len(hydra.snapshot().healthy_nodes) < len(profiles) and time.monotonic() < deadline:
            time.sleep(0.1)
        model = jobs[0].model
        idle = [first_token_s(hydra, model, f"Say hello ({i})") for i in range(interactive)]
        keys = [{"job": str(j.index)} for j in jobs]
        requests = [{"messages": [{"role": "user", "content": j.prompt}], "model": j.model, "max_tokens": j.tokens}
                    for j in jobs]
        started = time.perf_counter()
        batch_id = hydra.batches.create_requests(keys, requests, [j.prompt for j in jobs], BatchOptions(),
                                                 name="bench", source="bench")
        during: list[float] = []
        next_at = started + every
        while hydra.batches.running_here(batch_id):
            progress = hydra.batches.progress(batch_id)
            if progress is not None and progress.remaining > slots and time.perf_counter() >= next_at \
                    and len(during) < interactive:
                during.append(first_token_s(hydra, model, f"Say hello during the batch ({len(during)})"))
                next_at = time.perf_counter() + every
            hydra.batches.wait(batch_id, 0.05)
        makespan = time.perf_counter() - started
        final = hydra.batches.progress(batch_id)
        assert final is not None and final.done == len(jobs), f"rows not all done: {final and final.counts}"
        durations = [r["duration_s"] for r in hydra.batches.store.iter_rows(batch_id) if r["duration_s"]]
        return Outcome(idle, during, makespan, statistics.fmean(durations), slots, final.by_node)
    finally:
        hydra.close()


def page_reads_ms(store_path: Path, rows: int, repeats: int = 20) -> float:
    """What the Batch page reads each second (the aggregates and one page of rows), median ms."""
    store = BatchStore(store_path)
    try:
        data = [{"text": f"row {i}"} for i in range(rows)]
        batch_id = store.create(name="reads", template="{text}", options=BatchOptions(), columns=["text"], rows=data,
                                prompts=[d["text"] for d in data])
        for claimed in store.claim(batch_id, rows // 2):  # half of them done, as in the middle of a batch
            store.finish_row(batch_id, claimed.row, claimed.task_id, RowOutcome("done", answer="x" * 200, node="n",
                                                                                tokens=50))
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            store.progress(batch_id)
            store.rows(batch_id, rows // 2, 50)
            times.append(time.perf_counter() - started)
        return statistics.median(times) * 1000
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--time-scale", type=float, default=0.5)
    parser.add_argument("--interactive", type=int, default=20, help="interactive tasks in each arm")
    parser.add_argument("--every", type=float, default=1.0, help="seconds between interactive tasks in the batch")
    parser.add_argument("--one-process", action="store_true", help="serve the simulated nodes from this process")
    args = parser.parse_args()
    profiles = PRESETS[PRESET]
    jobs = make_jobs(profiles, args.rows)
    bound = lower_bound(profiles, jobs, args.time_scale)
    with tempfile.TemporaryDirectory() as tmp:
        small, big = page_reads_ms(Path(tmp) / "small.db", 10), page_reads_ms(Path(tmp) / "big.db", 10_000)
    print(f"page reads per refresh: 10,000 rows {big:.2f} ms, 10 rows {small:.2f} ms ({big / small:.1f} x)", flush=True)
    with tempfile.TemporaryDirectory() as tmp, \
            (start_cluster(PRESET, time_scale=args.time_scale) if args.one_process
             else preset_process(PRESET, args.time_scale)) as cluster:
        warm(cluster, profiles, {j.model for j in jobs})
        out = run(cluster, profiles, jobs, args.interactive, args.every, Path(tmp) / "bench.db")
    idle, during, makespan, row_s, slots = out.idle, out.during, out.makespan, out.row_s, out.slots
    # The interactive task can start only on a node that holds its model: the next of those slots to free.
    holders = sum(p.slots for p in profiles if seconds_on(p, jobs[0].model, 1, 1.0) is not None)
    slot_wait = row_s / holders
    print(f"{PRESET}: {args.rows} rows as one batch, time scale {args.time_scale}, {slots} slots")
    print(f"  makespan     {makespan:7.2f} s   lower bound {bound:7.2f} s   {makespan / bound:5.2f} x bound")
    print(f"  rows per node: {', '.join(f'{k} {v}' for k, v in sorted(out.by_node.items()))}")
    p50_idle, p50_during = statistics.median(idle), statistics.median(during)
    print(f"  interactive TTFT, idle cluster:  p50 {p50_idle * 1000:7.1f} ms   max {max(idle) * 1000:7.1f} ms "
          f"({len(idle)} tasks)")
    print(f"  interactive TTFT, during batch:  p50 {p50_during * 1000:7.1f} ms   max {max(during) * 1000:7.1f} ms "
          f"({len(during)} tasks)   {p50_during / p50_idle:5.2f} x idle")
    print(f"  next free slot costs on average {slot_wait * 1000:.1f} ms (mean row {row_s * 1000:.0f} ms / {holders} "
          f"slots that hold {jobs[0].model}): p50 extra wait {(p50_during - p50_idle) / slot_wait:5.2f} x that")


if __name__ == "__main__":
    main()
