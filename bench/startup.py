"""Import time of hydra.sollol and the cost of one routing decision at scale.

    python -m bench.startup

1. `import hydra.sollol` in a fresh interpreter (minus the bare interpreter's own start), median of 7.
   Target <= 0.3 s.
2. One routing decision (`routing.route`) over 64 nodes with the seed's tier lists, for each mode,
   while 5,000 tasks sit in the dispatcher's queue (the queue is popped and refilled around every
   decision, as a dispatch round does), the record of every candidate included (a decision that
   binds a task is recorded; route() builds that record on demand). Target <= 1 ms at p99.
"""
from __future__ import annotations

import random
import statistics
import subprocess
import sys
import time

from hydra.sollol.config import SollolConfig
from hydra.sollol.handle import TaskState
from hydra.sollol.node import Circuit, NodeView
from hydra.sollol.routing import RouteRequest, route
from hydra.sollol.scheduler import TaskQueue
from hydra.sollol.types import ModelInfo, RoutingMode, Task
from hydra.tiers import SEED_TIERS


def import_seconds(runs: int = 7) -> float:
    def timed(code: str) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        return time.perf_counter() - start
    bare = statistics.median(timed("pass") for _ in range(runs))
    full = statistics.median(timed("import hydra.sollol") for _ in range(runs))
    return full - bare


def make_nodes(count: int, rng: random.Random) -> list[NodeView]:
    models = sorted({e.model for entries in SEED_TIERS.values() for e in entries})
    sizes = {m: rng.choice([1.5, 3, 7, 8, 13, 14, 15.7, 70]) for m in models}
    nodes = []
    for i in range(count):
        gpu = i % 3 == 0
        capability = rng.choice([8, 16, 30, 70])
        installed = {m: ModelInfo(m, sizes[m], int(sizes[m] * 0.6e9)) for m in models if rng.random() < 0.7}
        loaded = frozenset(m for m in installed if rng.random() < 0.3)
        nodes.append(NodeView(
            name=f"node-{i:02d}", url=f"http://127.0.{i // 250}.{i % 250 + 1}:11434", gpu=gpu, local=False,
            max_model_b=capability, slots=rng.choice([1, 2, 4]), in_flight=rng.choice([0, 0, 1, 2]),
            healthy=rng.random() > 0.05, circuit=Circuit.CLOSED if rng.random() > 0.05 else Circuit.OPEN,
            trial_in_flight=False, installed=installed, loaded=loaded,
            vram_total_mb=24_000 if gpu else None, vram_used_mb=rng.choice([0, 8000, 23_950]) if gpu else None,
            polled=True, last_error=None))
    return nodes


def decision_latencies(nodes: list[NodeView], queued: int, decisions: int, rng: random.Random) -> dict[str, tuple[float, float]]:
    config = SollolConfig()
    queue = TaskQueue(config.aging_s)
    for i in range(queued):
        queue.push(TaskState(Task(prompt=f"task {i}", priority=rng.randint(1, 10)), RoutingMode.ASYNC, "code"))
    estimates = {(n.name, m): (0.2, 40.0, 3.0) for n in nodes for m in n.installed if rng.random() < 0.5}
    rates = {n.name: (rng.choice([1.0, 0.99, 0.9]), 20) for n in nodes}
    out = {}
    for mode in RoutingMode:
        samples = []
        for i in range(decisions):
            task_type = ("code", "reasoning", "math", "general")[i % 4]
            request = RouteRequest(mode=mode, task_type=task_type, entries=SEED_TIERS[task_type],
                                   min_success_rate=0.98, prompt_tokens=40, max_tokens=256)
            start = time.perf_counter()
            batch = queue.pop_batch(1)
            _ = route(request, nodes, config, estimates, rates).candidates  # the decision's record included
            for state in batch:
                queue.push(state)
            samples.append(time.perf_counter() - start)
        samples.sort()
        out[mode.value] = (samples[len(samples) // 2], samples[int(len(samples) * 0.99) - 1])
    return out


def main() -> None:
    rng = random.Random(7)
    seconds = import_seconds()
    print(f"import hydra.sollol: {seconds:.3f} s   (target <= 0.3 s)   {'OK' if seconds <= 0.3 else 'MISSED'}")
    nodes = make_nodes(64, rng)
    for mode, (p50, p99) in decision_latencies(nodes, 5000, 2000, rng).items():
        ok = "OK" if p99 <= 1e-3 else "MISSED"
        print(f"routing decision, 64 nodes, 5,000 queued, {mode:<8}: p50 {p50 * 1e3:.3f} ms   "
              f"p99 {p99 * 1e3:.3f} ms   (target p99 <= 1 ms)   {ok}")


if __name__ == "__main__":
    main()
