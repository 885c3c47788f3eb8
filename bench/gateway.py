"""What the gateway adds: TTFT through it against the official client straight to the node, and 200 streams at once.

    python -m bench.gateway [--runs 60] [--streams 200] [--one-process] [--no-load | --load-only]

Then, unless ``--no-load``, the gateway under load against the LiteLLM proxy, interleaved in the same
run (bench/gateway_load.py): CPU per 1,000 streamed requests, TTFT and end-to-end p50 at 200
concurrent clients, requests/s, and the ratios.

TTFT: from the call (ollama.Client.chat with stream=True) to the first chunk
in the caller's hands, the same client pointed at the simulated node (direct)
and at the gateway in front of a Hydra over that node. Runs are interleaved so
machine noise hits both alike; ``hydra.submit`` in-process is measured too, to
split the gateway's own share from the router's. Target: <= 3 ms added at the
median. Then ``--streams`` async streaming clients at once through the gateway:
every one must end with done, errors are counted, and the gateway's threads are
counted while they are open.

The parties run as they are deployed: the simulated node in a process of its
own, the gateway as ``python -m hydra serve``, the client here (bench/processes.py).
``--one-process`` puts all of them in this process instead, the worst case:
client, gateway, router and node then take turns on one interpreter lock.

For scale, the same client also goes through a bare streaming proxy on the
gateway's stack (uvicorn + Starlette + httpx, no routing, no history:
bench/bare_proxy.py), interleaved with the rest: the floor for one extra HTTP
hop in Python on this machine.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import ollama
import psutil

from bench import gateway_load
from bench.processes import MODEL, bare_proxy_process, fast_profile, serve_process, sim_process
from hydra.gateway import Gateway
from hydra.service import Hydra
from hydra.sim import start_cluster

PROMPT = "Stream an answer about routing."


def client_ttft(client: ollama.Client, tokens: int) -> float:
    start = time.perf_counter()
    first = None
    for part in client.chat(model=MODEL, messages=[{"role": "user", "content": PROMPT}], stream=True,
                            options={"num_predict": tokens}):
        if first is None and part.message.content:
            first = time.perf_counter()
    assert first is not None
    return first - start


def hydra_ttft(hydra: Hydra, tokens: int) -> float:
    start = time.perf_counter()
    handle = hydra.submit(PROMPT, model=MODEL, max_tokens=tokens, think=False)
    first = None
    for chunk in handle.stream(timeout=30):
        if first is None and chunk.text:
            first = time.perf_counter()
    assert first is not None and handle.result(timeout=30).status.value == "done"
    return first - start


async def many_streams(url: str, n: int, tokens: int, threads_of: Callable[[], int],
                       ) -> tuple[int, int, int, float, int]:
    """(completed, errors, most streams open at once, seconds, most gateway threads meanwhile)."""
    client = ollama.AsyncClient(host=url, timeout=120, limits=httpx.Limits(max_connections=None,
                                                                           max_keepalive_connections=None))
    open_now = peak = threads = 0
    errors: list[str] = []

    async def one(i: int) -> bool:
        nonlocal open_now, peak, threads
        open_now += 1
        peak = max(peak, open_now)
        try:
            done = False
            stream = await client.chat(model=MODEL, messages=[{"role": "user", "content": f"{PROMPT} {i}"}],
                                       stream=True, options={"num_predict": tokens})
            async for part in stream:
                done = bool(part.done)
                threads = max(threads, threads_of())
            return done
        except Exception as exc:  # noqa: BLE001 - any failure is counted and printed: the figure is how many fail
            errors.append(f"{type(exc).__name__}: {exc}")
            return False
        finally:
            open_now -= 1

    start = time.perf_counter()
    outcomes = await asyncio.gather(*(one(i) for i in range(n)))
    elapsed = time.perf_counter() - start
    for line in sorted(set(errors))[:5]:
        print("  error:", line)
    return sum(outcomes), n - sum(outcomes), peak, elapsed, threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60, help="interleaved TTFT runs of each kind")
    parser.add_argument("--streams", type=int, default=200, help="concurrent streaming clients")
    parser.add_argument("--tps", type=float, default=2000.0, help="simulated decode speed, tokens/s")
    parser.add_argument("--stream-tokens", type=int, default=400, help="tokens per concurrent stream")
    parser.add_argument("--one-process", action="store_true",
                        help="node, gateway, router and client all in this process (the worst case)")
    parser.add_argument("--no-load", action="store_true", help="skip the load rounds against LiteLLM")
    parser.add_argument("--load-only", action="store_true", help="only the load rounds against LiteLLM")
    gateway_load.add_arguments(parser)
    args = parser.parse_args()

    for key in [k for k in os.environ if k.startswith(("HYDRA_", "SOLLOL_")) or k == "OLLAMA_HOST"]:
        del os.environ[key]
    if not args.load_only:
        latency(args)
    if not args.no_load:
        gateway_load.run_load(args)
    if args.hold:
        gateway_load.run_hold(args)
    if args.shared:
        gateway_load.run_shared(args)


def latency(args: argparse.Namespace) -> None:
    """TTFT through the gateway against direct, and ``--streams`` streams at once."""
    for key in [k for k in os.environ if k.startswith(("HYDRA_", "SOLLOL_")) or k == "OLLAMA_HOST"]:
        del os.environ[key]
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        def env(name: str, sollol_nodes: str) -> dict[str, str]:
            return {"SOLLOL_NODES": sollol_nodes, "HYDRA_DB": str(Path(tmp) / f"{name}.db"),
                    "HYDRA_EMBEDDED_NODE": "off", "SOLLOL_DISCOVER_LOCALHOST": "false", "HYDRA_GATEWAY_PORT": "0",
                    "SOLLOL_MAX_CONCURRENT_REQUESTS": str(min(1024, args.streams))}
        if args.one_process:
            cluster = stack.enter_context(start_cluster([fast_profile(args.tps, args.streams)], time_scale=1.0))
            node_url, sollol_nodes = cluster.urls[0], cluster.sollol_nodes()
            hydra = stack.enter_context(contextlib.closing(Hydra.from_env(env("bench", sollol_nodes)).start()))
            gateway = Gateway(hydra, port=0).start()
            stack.callback(gateway.stop)
            gateway_url, threads_of = gateway.url, _threads_here
        else:
            sim = stack.enter_context(sim_process(args.tps, args.streams))
            node_url, sollol_nodes = sim.urls[0], sim.sollol_nodes
            served = stack.enter_context(serve_process(env("gateway", sollol_nodes)))
            gateway_url, threads_of = served.url, psutil.Process(served.pid).num_threads
            hydra = stack.enter_context(contextlib.closing(Hydra.from_env(env("bench", sollol_nodes)).start()))
        proxy_url = stack.enter_context(bare_proxy_process(node_url))
        direct = ollama.Client(host=node_url)
        proxied = ollama.Client(host=proxy_url)
        through = ollama.Client(host=gateway_url)
        _wait_ready(through)
        for _ in range(5):  # warm every path (connections, model load, thread pools)
            client_ttft(direct, 3), client_ttft(through, 3), hydra_ttft(hydra, 3), client_ttft(proxied, 3)
        d, h, g, p = [], [], [], []
        for _ in range(args.runs):
            d.append(client_ttft(direct, 3))
            g.append(client_ttft(through, 3))
            h.append(hydra_ttft(hydra, 3))
            p.append(client_ttft(proxied, 3))
        threads_before = threads_of()
        completed, failed, peak, seconds, threads = asyncio.run(
            many_streams(gateway_url, args.streams, args.stream_tokens, threads_of))

    d50, h50, g50, p50 = (statistics.median(x) * 1000 for x in (d, h, g, p))
    added = g50 - d50
    where = "all in one process" if args.one_process else "node, gateway (python -m hydra serve) and client in separate processes"
    print(f"node: simulated, {args.tps:.0f} tok/s, no load/prefill; {where}; {args.runs} interleaved TTFT runs of each kind")
    print(f"TTFT median   direct {d50:6.2f} ms   hydra.submit {h50:6.2f} ms   gateway {g50:6.2f} ms")
    print(f"added by gateway+router {added:+.2f} ms (target <= 3 ms) {'OK' if added <= 3.0 else 'MISSED'};"
          f"  of which the gateway alone {g50 - h50:+.2f} ms;  ratio gateway/direct {g50 / d50:.2f}")
    print(f"TTFT p95      direct {_p95(d):6.2f} ms   hydra.submit {_p95(h):6.2f} ms   gateway {_p95(g):6.2f} ms")
    print(f"for scale: a bare streaming proxy on the same stack adds {p50 - d50:+.2f} ms (median {p50:.2f} ms); "
          f"the gateway adds {g50 - p50:+.2f} ms over it")
    print(f"{args.streams} concurrent streams x {args.stream_tokens} tokens: {completed} completed, {failed} errors, "
          f"{peak} open at once, {seconds:.2f} s ({completed * args.stream_tokens / seconds:.0f} tokens/s in all)  "
          f"{'OK' if failed == 0 else 'MISSED'}")
    print(f"gateway threads: {threads_before} before the streams, at most {threads} while they ran")


def _wait_ready(client: ollama.Client, timeout: float = 30.0) -> None:
    """Until the gateway lists the model (its router has polled the node)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if any(m.model == MODEL for m in client.list().models):
                return
        except (ollama.ResponseError, httpx.HTTPError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the gateway did not list {MODEL} within {timeout:g} s")


def _threads_here() -> int:
    # The in-process simulated node serves each connection on a thread of its own: its cost, not the gateway's.
    return sum(1 for t in threading.enumerate() if not t.name.endswith("(process_request_thread)"))


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] * 1000


if __name__ == "__main__":
    main()
