"""The gateway under load, against the LiteLLM proxy in the same run (bench.gateway's second half).

    python -m bench.gateway --load-only [--requests 1000] [--clients 200] [--rounds 3] [--no-litellm]

Four simulated nodes of 64 slots each (one process of their own), ``python -m hydra serve`` over them,
and the LiteLLM proxy (its own venv, bench/envs.py) over the same four nodes; the same raw aiohttp
client (bench/load.py) sends ``--requests`` streamed chat completions of ``--load-tokens`` tokens,
``--clients`` at a time, to one gateway then the other, ``--rounds`` times (interleaved: machine
noise hits both alike). Printed for each: gateway CPU per 1,000 requests, TTFT p50 and p95, end to
end p50, requests/s, and the ratios Hydra / LiteLLM.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import tempfile
from pathlib import Path

from bench.envs import litellm_proxy
from bench.load import LoadFigures, LoadRun, hold, load
from bench.processes import MODEL, ServeHandle, serve_process, sim_process

NODES = 4
SLOTS = 64


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--requests", type=int, default=1000, help="streamed requests per round and gateway")
    parser.add_argument("--clients", type=int, default=200, help="concurrent clients in the load rounds")
    parser.add_argument("--load-tokens", type=int, default=16, help="tokens per streamed request under load")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved load rounds per gateway")
    parser.add_argument("--no-litellm", action="store_true", help="Hydra alone (no LiteLLM proxy arm)")
    parser.add_argument("--hold", type=int, nargs="*", default=[],
                        help="then hold this many long streams open at once through Hydra (each count in turn)")
    parser.add_argument("--hold-tps", type=float, default=10.0, help="decode speed of the held streams")
    parser.add_argument("--shared", type=int, default=0, metavar="K",
                        help="then 1 and K gateway processes sharing one small cluster (4 nodes x 8 slots)")


def run_load(args: argparse.Namespace) -> None:
    arms: dict[str, tuple[str, int]] = {}
    key = f"sk-bench-{secrets.token_hex(16)}"   # both gateways as deployed: behind an API key
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        sim = stack.enter_context(sim_process(args.tps, SLOTS, NODES))
        env = {"SOLLOL_NODES": sim.sollol_nodes, "HYDRA_DB": str(Path(tmp) / "load.db"),
               "HYDRA_EMBEDDED_NODE": "off", "SOLLOL_DISCOVER_LOCALHOST": "false", "HYDRA_GATEWAY_PORT": "0",
               "SOLLOL_MAX_CONCURRENT_REQUESTS": "1024", "HYDRA_API_KEY": key}
        served = stack.enter_context(serve_process(env))
        arms["hydra"] = (served.url, served.pid)
        if not args.no_litellm:
            arms["litellm"] = stack.enter_context(litellm_proxy(sim.urls, MODEL, key))
        runs: dict[str, list[LoadRun]] = {name: [] for name in arms}

        def one(name: str, requests: int) -> LoadRun:
            url, pid = arms[name]
            return asyncio.run(load(url, requests=requests, clients=args.clients, tokens=args.load_tokens,
                                    model=MODEL, pid=pid, api_key=key))

        for name in arms:  # warm: connections, pools, the proxy's lazy imports
            one(name, min(args.requests, 2 * args.clients))
        for i in range(args.rounds):
            for name in arms:
                run = one(name, args.requests)
                runs[name].append(run)
                print(f"  round {i + 1} {name:8s} {run.completed} done, {len(run.errors)} errors, {run.seconds:.2f} s,"
                      f" CPU {run.cpu_s:.2f} s", flush=True)
                for line in sorted(set(run.errors))[:3]:
                    print("    error:", line)
    _report(args, {name: LoadFigures(r) for name, r in runs.items()})


def _report(args: argparse.Namespace, figures: dict[str, LoadFigures]) -> None:
    print(f"load: {args.rounds} interleaved rounds x {args.requests} streamed chat completions of {args.load_tokens} "
          f"tokens, {args.clients} concurrent clients, {NODES} simulated nodes x {SLOTS} slots ({args.tps:.0f} tok/s)")
    print(f"{'':8s} {'CPU/1k req':>11s} {'TTFT p50':>9s} {'TTFT p95':>9s} {'e2e p50':>9s} {'req/s':>7s} {'errors':>6s}")
    for name, f in figures.items():
        print(f"{name:8s} {f.cpu_per_1k_s:9.2f} s {f.ttft_p50_ms:6.0f} ms {f.ttft_p95_ms:6.0f} ms "
              f"{f.e2e_p50_ms:6.0f} ms {f.requests_per_s:7.0f} {f.errors:6d}")
    hydra, litellm = figures["hydra"], figures.get("litellm")
    print(f"hydra: CPU/1k {hydra.cpu_per_1k_s:.2f} s (target <= 2.0 s) "
          f"{'OK' if hydra.cpu_per_1k_s <= 2.0 else 'MISSED'}")
    if litellm is not None:
        ttft_ratio = hydra.ttft_p50_ms / litellm.ttft_p50_ms
        print(f"ratios hydra/litellm: CPU/1k {hydra.cpu_per_1k_s / litellm.cpu_per_1k_s:.2f}  "
              f"TTFT p50 {ttft_ratio:.2f} (target <= 1) {'OK' if ttft_ratio <= 1.0 else 'MISSED'}  "
              f"e2e p50 {hydra.e2e_p50_ms / litellm.e2e_p50_ms:.2f}  "
              f"req/s {hydra.requests_per_s / litellm.requests_per_s:.2f}")


def run_hold(args: argparse.Namespace) -> None:
    """How many open streams one gateway process holds, and at what CPU and memory."""
    key = f"sk-bench-{secrets.token_hex(16)}"
    for streams in args.hold:
        with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
            sim = stack.enter_context(sim_process(args.hold_tps, -(-streams // NODES), NODES))
            env = {"SOLLOL_NODES": sim.sollol_nodes, "HYDRA_DB": str(Path(tmp) / "hold.db"),
                   "HYDRA_EMBEDDED_NODE": "off", "SOLLOL_DISCOVER_LOCALHOST": "false", "HYDRA_GATEWAY_PORT": "0",
                   "SOLLOL_MAX_CONCURRENT_REQUESTS": str(streams), "HYDRA_API_KEY": key}
            served = stack.enter_context(serve_process(env))
            f = asyncio.run(hold(served.url, streams=streams, model=MODEL, pid=served.pid, api_key=key))
        print(f"hold {streams} streams at {args.hold_tps:g} tok/s each: {f.open_at_once} open at once, "
              f"{len(f.errors)} errors; gateway {f.cpu_percent:.0f} % of a core for {f.tokens_per_s:.0f} tokens/s, "
              f"{f.rss_mib:.0f} MiB, {f.threads} threads")
        for line in sorted(set(f.errors))[:3]:
            print("  error:", line)


SHARED_SLOTS = 8


async def _spread(served: list[ServeHandle], requests: int, clients: int, tokens: int) -> list[LoadRun]:
    """``requests`` and ``clients`` split evenly over the gateway processes, all at once."""
    return list(await asyncio.gather(*(
        load(s.url, requests=requests // len(served), clients=clients // len(served), tokens=tokens, model=MODEL,
             pid=s.pid) for s in served)))


def run_shared(args: argparse.Namespace) -> None:
    """One gateway process, then ``--shared`` of them, over the same small cluster (fewer slots than
    clients, so the cluster is the bottleneck): what each process not seeing the others' load costs."""
    import httpx

    for processes in sorted({1, args.shared}):
        with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
            sim = stack.enter_context(sim_process(args.tps, SHARED_SLOTS, NODES))
            # No global cap below the nodes' slots: each process fills every slot it believes free.
            env = {"SOLLOL_NODES": sim.sollol_nodes, "HYDRA_DB": str(Path(tmp) / "shared.db"),
                   "HYDRA_EMBEDDED_NODE": "off", "SOLLOL_DISCOVER_LOCALHOST": "false", "HYDRA_GATEWAY_PORT": "0",
                   "SOLLOL_MAX_CONCURRENT_REQUESTS": "1024"}
            served = [stack.enter_context(serve_process(env)) for _ in range(processes)]
            tokens = args.load_tokens * 8
            asyncio.run(_spread(served, args.clients, args.clients, tokens))  # warm
            runs = asyncio.run(_spread(served, args.requests, args.clients, tokens))
            states = [httpx.get(f"{url}/_sim/state", timeout=10).json() for url in sim.urls]
        merged = LoadRun(requests=sum(r.requests for r in runs), seconds=max(r.seconds for r in runs),
                         cpu_s=sum(r.cpu_s for r in runs), ttft_s=[t for r in runs for t in r.ttft_s],
                         e2e_s=[t for r in runs for t in r.e2e_s], errors=[e for r in runs for e in r.errors])
        f = LoadFigures([merged])
        counts = [state.get("generations", 0) for state in states]
        print(f"{processes} gateway process(es) over {NODES} nodes x {SHARED_SLOTS} slots, {args.clients} clients, "
              f"{args.load_tokens * 8} tokens: {f.requests_per_s:.0f} req/s, TTFT p50 {f.ttft_p50_ms:.0f} ms, "
              f"e2e p50 {f.e2e_p50_ms:.0f} ms, CPU/1k {f.cpu_per_1k_s:.2f} s, {f.errors} errors; at the nodes: most "
              f"queued {max(s.get('max_queued_seen', 0) for s in states)}, most in flight "
              f"{max(s.get('max_in_flight_seen', 0) for s in states)}, answers per node {counts}")
