"""What the Router adds on top of the official client, against the same simulated node.

    python -m bench.overhead [--runs 40] [--tokens 400] [--one-process] [--no-sollol]

TTFT: time from the call (client.chat / router.submit) to the first chunk in
the caller's hands. Throughput: streamed tokens per second of wall time over a
long answer. Direct and routed runs are interleaved in one process so machine
noise hits both alike. Targets: <= 1 ms added TTFT at the median, >= 95 % of
direct throughput.

SOLLOL 0.9.66 (``sollol.OllamaPool``, pip-installed into .bench-envs/sollol by the bench,
run in a process of its own: bench/sollol_arm.py) streams from the same node in the same
interleaved rounds, so what each adds over the direct client is measured side by side;
target: the Router adds no more than SOLLOL, and <= +0.15 ms at the median.

The Router is a library and runs here; the simulated node runs in a process of
its own, as a node does (bench/processes.py). ``--one-process`` puts the node in
this process too: its threads then take turns with the router's on one
interpreter lock.
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import ollama

from bench.envs import SollolArm
from bench.processes import MODEL, fast_profile, sim_process
from hydra.sim import start_cluster
from hydra.sollol import Router, SollolConfig, Task
from hydra.sollol.config import parse_nodes
from hydra.tiers import SEED_TIERS, classify

PROMPT = "Stream a long answer about routing."


def direct_run(client: ollama.Client, tokens: int) -> tuple[float, float, int]:
    start = time.perf_counter()
    first, count = None, 0
    for part in client.chat(model=MODEL, messages=[{"role": "user", "content": PROMPT}], stream=True,
                            options={"num_predict": tokens}):
        if part.message.content:
            first = first or time.perf_counter()
            count += 1
    return _timing(start, first, time.perf_counter(), count)


def _timing(start: float, first: float | None, end: float, count: int) -> tuple[float, float, int]:
    """(time to first token, tokens/s after it, tokens)."""
    if first is None:
        raise RuntimeError("the stream ended without a token")
    return first - start, count / (end - first) if end > first else 0.0, count


SUBMIT_S: list[float] = []  # how long each routed run's submit() took: the Router's own work before the node is asked


def routed_run(router: Router, tokens: int) -> tuple[float, float, int]:
    start = time.perf_counter()
    handle = router.submit(Task(prompt=PROMPT, model=MODEL, max_tokens=tokens))
    SUBMIT_S.append(time.perf_counter() - start)
    first, count = None, 0
    for chunk in handle.stream(timeout=30):
        if chunk.text:
            first = first or time.perf_counter()
            count += 1
    end = time.perf_counter()
    result = handle.result(timeout=30)
    assert result.status.value == "done", result.error
    return _timing(start, first, end, count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="interleaved runs of each kind for TTFT")
    parser.add_argument("--tokens", type=int, default=400, help="tokens per throughput run")
    parser.add_argument("--tps", type=float, default=2000.0, help="simulated decode speed, tokens/s")
    parser.add_argument("--one-process", action="store_true", help="the simulated node in this process too")
    parser.add_argument("--no-sollol", action="store_true", help="without the SOLLOL 0.9.66 arm")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        if args.one_process:
            cluster = stack.enter_context(start_cluster([fast_profile(args.tps, 4)], time_scale=1.0))
            url, sollol_nodes = cluster.urls[0], cluster.sollol_nodes()
        else:
            sim = stack.enter_context(sim_process(args.tps, 4))
            url, sollol_nodes = sim.urls[0], sim.sollol_nodes
        client = ollama.Client(host=url)
        sollol = None if args.no_sollol else SollolArm(url, MODEL)
        if sollol is not None:
            stack.callback(sollol.close)
        config = SollolConfig(nodes=tuple(parse_nodes(sollol_nodes)), discover_localhost=False)
        with Router(config=config, tiers=SEED_TIERS, classify=classify) as router:
            for _ in range(3):  # warm every path (connections, model load)
                direct_run(client, 5)
                routed_run(router, 5)
                if sollol is not None:
                    sollol.ttft(5)
            ttft_direct, ttft_routed, ttft_sollol = [], [], []
            SUBMIT_S.clear()
            for _ in range(args.runs):
                ttft_direct.append(direct_run(client, 3)[0])
                ttft_routed.append(routed_run(router, 3)[0])
                if sollol is not None:
                    ttft_sollol.append(sollol.ttft(3))
            tps_direct, tps_routed = [], []
            for _ in range(5):
                tps_direct.append(direct_run(client, args.tokens)[1])
                tps_routed.append(routed_run(router, args.tokens)[1])

    d50, r50 = statistics.median(ttft_direct), statistics.median(ttft_routed)
    d_tps, r_tps = statistics.median(tps_direct), statistics.median(tps_routed)
    added_ms = (r50 - d50) * 1000
    ratio = r_tps / d_tps if d_tps else 0.0
    where = "in this process" if args.one_process else "in its own process"
    print(f"node: simulated ({where}), {args.tps:.0f} tok/s, {args.runs} interleaved TTFT runs, 5 x {args.tokens} tokens")
    print(f"TTFT median   direct {d50 * 1000:7.2f} ms   router {r50 * 1000:7.2f} ms   "
          f"added {added_ms:+.2f} ms   (target <= 1 ms)   {'OK' if added_ms <= 1.0 else 'MISSED'}")
    if ttft_sollol:
        s_added_ms = (statistics.median(ttft_sollol) - d50) * 1000
        ok = added_ms <= s_added_ms and added_ms <= 0.15
        print(f"SOLLOL 0.9.66 {statistics.median(ttft_sollol) * 1000:7.2f} ms   added {s_added_ms:+.2f} ms;  "
              f"the Router adds {added_ms - s_added_ms:+.2f} ms more than SOLLOL   "
              f"(target: no more than SOLLOL, <= +0.15 ms)   {'OK' if ok else 'MISSED'}")
    submit_ms = statistics.median(SUBMIT_S[:args.runs]) * 1000
    print(f"of the router's TTFT: submit() {submit_ms:.2f} ms median (validate, classify, route, bind: its own work "
          "before the node is asked); the rest is its worker's request, which costs less than the ollama client's")
    print(f"TTFT p95      direct {_p95(ttft_direct) * 1000:7.2f} ms   router {_p95(ttft_routed) * 1000:7.2f} ms")
    print(f"throughput    direct {d_tps:7.0f} tok/s  router {r_tps:7.0f} tok/s  "
          f"ratio {ratio:.3f}   (target >= 0.95)   {'OK' if ratio >= 0.95 else 'MISSED'}")


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


if __name__ == "__main__":
    main()
