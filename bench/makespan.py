"""Makespan of 200 mixed tasks per routing mode, against round-robin and a lower bound.

    python -m bench.makespan [--tasks 200] [--time-scale S] [--presets seed,cluster8] [--one-process]

Every run sends the same tasks (explicit models, fixed num_predict) to a fresh
simulated cluster whose models were loaded beforehand, with the global cap set
to the cluster's total slots, so the runs differ only in where tasks go.

Round-robin is the naive peer: task i goes to the i-th node (mod N) among
those that hold its model, each node working through its list with its slots.

Lower bound: max(fluid bound, longest task on the fastest node that holds it).
The fluid bound is the least T for which the work can be split fractionally
over the slots, each node running at its own speed for each model: a max-flow
feasibility test (tasks -> nodes that hold their model -> sink with capacity
slots x T), bisected on T. Targets: async <= 1.15 x the bound and <= 0.8 x
round-robin.

The simulated nodes run in a process of their own (python -m hydra.sim), as
nodes do; ``--one-process`` serves them from this process, where their threads
take turns with the router's on one interpreter lock.
"""
from __future__ import annotations

import argparse
import itertools
import threading
import time
from collections import defaultdict, deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import ollama

from bench.processes import preset_process
from hydra.sim import PRESETS, NodeProfile, start_cluster
from hydra.sollol import Router, RoutingMode, SollolConfig, Task
from hydra.sollol.config import parse_nodes
from hydra.tiers import SEED_TIERS, classify

TOKENS = (32, 64, 96, 128)
DEFAULT_SCALES = {"seed": 0.2, "cluster8": 1.5}
PROMPTS = {"code": "Write a Python function that parses a log line.", "reasoning": "Explain why the sky is blue.",
           "math": "Solve 3x + 5 = 20.", "general": "Describe a quiet harbour town."}


class _Node(Protocol):
    @property
    def url(self) -> str: ...
    @property
    def profile(self) -> NodeProfile: ...


class Cluster(Protocol):
    """What this benchmark uses of a SimCluster or of bench.processes.RemoteCluster."""

    @property
    def nodes(self) -> Sequence[_Node]: ...
    def sollol_nodes(self) -> str: ...


@dataclass(frozen=True)
class Job:
    index: int
    model: str
    tokens: int
    prompt: str


def pick_models(profiles: list[NodeProfile], count: int = 4) -> list[str]:
    """Chat models installed on at least two nodes (so placement matters), most widely installed first
    (embedding models cannot chat)."""
    holders: dict[str, int] = defaultdict(int)
    for p in profiles:
        for m in p.models:
            if m.size_b <= p.max_model_b and not m.embedding:
                holders[m.name] += 1
    shared = sorted((n for n, c in holders.items() if c >= 2), key=lambda n: (-holders[n], n))
    return shared[:count]


def make_jobs(profiles: list[NodeProfile], n: int) -> list[Job]:
    models = pick_models(profiles)
    kinds = itertools.cycle(PROMPTS)
    return [Job(i, models[i % len(models)], TOKENS[(i // len(models)) % len(TOKENS)],
                f"{PROMPTS[next(kinds)]} (task {i})") for i in range(n)]


def seconds_on(profile: NodeProfile, model: str, tokens: float, scale: float) -> float | None:
    sim = next((m for m in profile.models if m.name == model and m.size_b <= profile.max_model_b), None)
    return None if sim is None else tokens / profile.decode_tps(sim) * scale


def lower_bound(profiles: list[NodeProfile], jobs: list[Job], scale: float) -> float:
    groups: dict[str, float] = defaultdict(float)  # model -> total tokens
    for job in jobs:
        groups[job.model] += job.tokens
    longest = max(min(s for p in profiles if (s := seconds_on(p, j.model, j.tokens, scale)) is not None)
                  for j in jobs)

    # Sim speeds are separable: tps(node, model) = base(model) x decode_mult(node). In "reference
    # seconds" (tokens / base) every node then works at its own constant rate, and the fractional
    # split is a plain max-flow: source -> model group (its work) -> nodes holding it -> sink
    # (slots x decode_mult x T).
    base: dict[str, float] = {}
    for p in profiles:
        for m in p.models:
            base.setdefault(m.name, m.decode_tps)
    work = {m: tokens / base[m] * scale for m, tokens in groups.items()}
    holders = {m: [p for p in profiles if seconds_on(p, m, 1, scale) is not None] for m in groups}

    def feasible(t: float) -> bool:
        capacity = {p.name: p.slots * float(p.decode_mult or 1.0) * t for p in profiles}
        return max_flow(work, holders, capacity) >= sum(work.values()) * (1 - 1e-9)

    low = 0.0
    high = sum(max(seconds_on(p, m, k, scale) or 0.0 for p in profiles) for m, k in groups.items())
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (low, mid) if feasible(mid) else (mid, high)
    return max(high, longest)


def max_flow(work: dict[str, float], holders: dict[str, list[NodeProfile]], capacity: dict[str, float]) -> float:
    """Edmonds-Karp on source -> groups -> nodes -> sink (a few dozen vertices at most)."""
    # Vertices: "SRC", "SNK", "g:<model>" for a group, "n:<node>" for a node.
    graph: dict[str, dict[str, float]] = defaultdict(dict)
    for m, w in work.items():
        graph["SRC"][f"g:{m}"] = w
        for p in holders[m]:
            graph[f"g:{m}"][f"n:{p.name}"] = float("inf")
    for name, cap in capacity.items():
        graph[f"n:{name}"]["SNK"] = cap
    for u in list(graph):
        for v in list(graph[u]):
            graph[v].setdefault(u, 0.0)
    total = 0.0
    while True:
        parent: dict[str, str | None] = {"SRC": None}
        frontier = deque(["SRC"])
        while frontier and "SNK" not in parent:
            u = frontier.popleft()
            for v, cap in graph[u].items():
                if cap > 1e-12 and v not in parent:
                    parent[v] = u
                    frontier.append(v)
        if "SNK" not in parent:
            return total
        path, v = [], "SNK"
        while (before := parent[v]) is not None:
            path.append((before, v))
            v = before
        push = min(graph[u][v] for u, v in path)
        for u, v in path:
            graph[u][v] -= push
            graph[v][u] += push
        total += push


def warm(cluster: Cluster, profiles: list[NodeProfile], models: set[str]) -> None:
    for node, profile in zip(cluster.nodes, profiles):
        client = ollama.Client(host=node.url)
        for m in profile.models:
            if m.name in models and m.size_b <= profile.max_model_b:
                client.chat(model=m.name, messages=[{"role": "user", "content": "warm"}],
                            options={"num_predict": 1}, keep_alive=-1)


def run_router(cluster: Cluster, profiles: list[NodeProfile], jobs: list[Job], mode: RoutingMode) -> float:
    slots = sum(p.slots for p in profiles)
    config = SollolConfig(nodes=tuple(parse_nodes(cluster.sollol_nodes())), discover_localhost=False,
                          max_concurrent_requests=slots, default_mode=mode, poll_interval_s=0.5)
    with Router(config=config, tiers=SEED_TIERS, classify=classify) as router:
        start = time.perf_counter()
        handles = [router.submit(Task(prompt=j.prompt, model=j.model, max_tokens=j.tokens)) for j in jobs]
        results = [h.result(timeout=600) for h in handles]
        elapsed = time.perf_counter() - start
    failed = [r for r in results if r.status.value != "done"]
    assert not failed, f"{len(failed)} tasks failed, e.g. {failed[0].error}"
    return elapsed


def run_round_robin(cluster: Cluster, profiles: list[NodeProfile], jobs: list[Job]) -> float:
    queues: dict[str, deque[Job]] = {p.name: deque() for p in profiles}
    turn = itertools.count()
    for job in jobs:
        holders = [p.name for p in profiles if seconds_on(p, job.model, 1, 1.0) is not None]
        queues[holders[next(turn) % len(holders)]].append(job)
    clients = {node.profile.name: ollama.Client(host=node.url) for node in cluster.nodes}
    lock = threading.Lock()

    def slot(name: str) -> None:
        while True:
            with lock:
                if not queues[name]:
                    return
                job = queues[name].popleft()
            for _ in clients[name].chat(model=job.model, messages=[{"role": "user", "content": job.prompt}],
                                        stream=True, options={"num_predict": job.tokens}):
                pass

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=sum(p.slots for p in profiles)) as pool:
        for p in profiles:
            for _ in range(p.slots):
                pool.submit(slot, p.name)
    return time.perf_counter() - start


def bench_preset(name: str, n: int, scale: float, one_process: bool = False) -> None:
    profiles = PRESETS[name]
    jobs = make_jobs(profiles, n)
    bound = lower_bound(profiles, jobs, scale)
    models = {j.model for j in jobs}
    timings: dict[str, float] = {}
    for label in ("round-robin", "async", "fast", "reliable"):
        with (start_cluster(name, time_scale=scale) if one_process else preset_process(name, scale)) as cluster:
            warm(cluster, profiles, models)
            if label == "round-robin":
                timings[label] = run_round_robin(cluster, profiles, jobs)
            else:
                timings[label] = run_router(cluster, profiles, jobs, RoutingMode(label))
        print(f"  {label:<11} {timings[label]:7.2f} s", flush=True)
    rr = timings["round-robin"]
    print(f"{name}: {n} tasks, models {', '.join(sorted(models))}, time scale {scale}")
    print(f"  lower bound {bound:7.2f} s")
    for label in ("async", "fast", "reliable"):
        print(f"  {label:<8} {timings[label]:7.2f} s   {timings[label] / bound:5.2f} x bound   "
              f"{timings[label] / rr:5.2f} x round-robin")
    a = timings["async"]
    verdict = "OK" if a <= 1.15 * bound and a <= 0.8 * rr else "MISSED"
    print(f"  async target: <= 1.15 x bound and <= 0.80 x round-robin: {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--time-scale", type=float, default=None,
                        help="simulated time multiplier (default: seed 0.2, cluster8 1.5 — slow enough that "
                             "the makespan measures scheduling, not this 2-core machine's Python overhead)")
    parser.add_argument("--presets", default="seed,cluster8")
    parser.add_argument("--one-process", action="store_true", help="serve the simulated nodes from this process")
    args = parser.parse_args()
    for name in args.presets.split(","):
        name = name.strip()
        bench_preset(name, args.tasks, args.time_scale or DEFAULT_SCALES.get(name, 0.5), args.one_process)


if __name__ == "__main__":
    main()
