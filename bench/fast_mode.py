"""Fast mode against async for interactive prompts, on the ``seed`` preset plus the embedded node.

    python -m bench.fast_mode [--rounds 4] [--tokens 48] [--time-scale 0.25]

One user at a time (an interactive session): each prompt is submitted, streamed to its end, then the
next. The two arms are interleaved in one run on the same Router (the mode is per task), their
order alternating every round, so both see the same warm models, the same measured speeds and the
same load on the machine. The Router's tiers are the service's: the seed's lists with the embedded
node's smollm2:135m as every list's last resort.

Printed: per arm the median time to first token (first text or thinking chunk) and to completion,
the models each arm ran, and the ratios fast / async (medians of the per-round ratios). Fast mode's
promise is both ratios at or below 1.00 and no task on the last-resort model while a tier model
is routable; exit status 1 when either fails. The simulated nodes run ``--time-scale`` times their
real speed (the embedded node is real and not scaled).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from hydra.node import EmbeddedNode
from hydra.sim import start_cluster
from hydra.sollol import NodeSpec, Router, RoutingMode, SollolConfig, Task, TaskStatus
from hydra.sollol.config import parse_nodes
from hydra.tiers import EMBEDDED_MODEL, build_tiers, classify

PROMPTS = ("Write a Python function that checks whether a string is a palindrome.",
           "Explain why the sky is blue.",
           "Solve 3x + 5 = 20.",
           "Suggest a name for a quiet harbour town.")
ARMS = (RoutingMode.FAST, RoutingMode.ASYNC)


@dataclass(frozen=True)
class Run:
    arm: RoutingMode
    prompt: str
    ttft_s: float
    total_s: float
    model: str
    node: str


def run_one(router: Router, arm: RoutingMode, prompt: str, tokens: int) -> Run:
    t0 = time.perf_counter()
    handle = router.submit(Task(prompt=prompt, mode=arm, max_tokens=tokens, think=False))
    first: float | None = None
    for chunk in handle.stream(timeout=300):
        if first is None and (chunk.text or chunk.thinking):
            first = time.perf_counter()
    result = handle.result(timeout=300)
    end = time.perf_counter()
    if result.status is not TaskStatus.DONE or first is None:
        raise RuntimeError(f"{arm.value} run of {prompt!r} failed: {result.status.value} {result.error}")
    return Run(arm, prompt, first - t0, end - t0, result.model or "", result.node or "")


def wait_ready(router: Router, nodes: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while len(router.snapshot().healthy_nodes) < nodes:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(router.snapshot().healthy_nodes)} of {nodes} nodes healthy")
        time.sleep(0.2)


def measure(rounds: int, tokens: int, time_scale: float, log: Path) -> list[list[Run]]:
    """Warm-up (every prompt once per arm), then ``rounds`` rounds of every prompt in both arms."""
    with start_cluster("seed", time_scale=time_scale) as cluster, EmbeddedNode(port=0, log_path=str(log)) as node:
        nodes = (*parse_nodes(cluster.sollol_nodes()), NodeSpec(url=node.url, name="embedded", slots=1, local=True))
        router = Router(config=SollolConfig(nodes=nodes, discover_localhost=False, poll_interval_s=0.5),
                        tiers=build_tiers(fallback=EMBEDDED_MODEL), classify=classify).start()
        try:
            wait_ready(router, len(nodes))
            for prompt in PROMPTS:
                for arm in ARMS:
                    run_one(router, arm, prompt, tokens)
            out = []
            for index in range(rounds):
                order = ARMS if index % 2 == 0 else ARMS[::-1]
                out.append([run_one(router, arm, prompt, tokens) for prompt in PROMPTS for arm in order])
                print(f"  round {index + 1}/{rounds} done", file=sys.stderr, flush=True)
            return out
        finally:
            router.close()


def _median(runs: list[Run], attr: str) -> float:
    return statistics.median(getattr(r, attr) for r in runs)


def report(rounds: list[list[Run]]) -> int:
    runs = [r for batch in rounds for r in batch]
    for arm in ARMS:
        mine = [r for r in runs if r.arm is arm]
        models = Counter(f"{r.model}@{r.node}" for r in mine)
        print(f"{arm.value:>5}: TTFT median {_median(mine, 'ttft_s'):.3f} s, completion median "
              f"{_median(mine, 'total_s'):.3f} s over {len(mine)} tasks; ran "
              + ", ".join(f"{k} x{v}" for k, v in sorted(models.items())))
    ok = True
    for attr, label in (("ttft_s", "time to first token"), ("total_s", "completion")):
        per_round = [_median([r for r in b if r.arm is RoutingMode.FAST], attr)
                     / _median([r for r in b if r.arm is RoutingMode.ASYNC], attr) for b in rounds]
        ratio = statistics.median(per_round)
        ok = ok and ratio <= 1.0
        print(f"ratio fast / async, {label}: {ratio:.3f} (per round {', '.join(f'{x:.3f}' for x in per_round)}; "
              f"target <= 1.00: {'ok' if ratio <= 1.0 else 'ABOVE TARGET'})")
    last_resort = sum(1 for r in runs if r.arm is RoutingMode.FAST and r.model == EMBEDDED_MODEL)
    print(f"fast tasks on the last-resort {EMBEDDED_MODEL}: {last_resort} (target 0)")
    return 0 if ok and last_resort == 0 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fast_mode", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=48, help="max_tokens of each prompt")
    parser.add_argument("--time-scale", type=float, default=0.25, help="the simulated nodes' speed-up")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.tokens < 1 or args.time_scale <= 0:
        parser.error("--rounds and --tokens must be at least 1, --time-scale positive")
    with tempfile.TemporaryDirectory() as tmp:
        print(f"seed preset + embedded node; {args.rounds} rounds x {len(PROMPTS)} prompts x {len(ARMS)} arms, "
              f"{args.tokens} tokens each, sim time scale {args.time_scale}", flush=True)
        return report(measure(args.rounds, args.tokens, args.time_scale, Path(tmp) / "embedded.log"))


if __name__ == "__main__":
    sys.exit(main())
