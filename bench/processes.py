"""Benchmark parties in processes of their own, as they are deployed: nodes are other machines and
clients are other programs, so neither shares Python's interpreter lock with Hydra.

    with sim_process(tps=2000, slots=4) as sim:          # one simulated node, its own process
        sim.urls, sim.sollol_nodes
    with serve_process(env) as served:                     # `python -m hydra serve`, its own process
        served.url, served.pid
        ...

In one process, the benchmark's client, the gateway, the router and the simulated node take turns on
one lock over 2 cores, and every added step is paid several times over; the ``--one-process`` option
of the benchmarks measures that case too.

``python -m bench.processes --tps 2000 --slots 4`` is the simulated node's side: it prints one JSON
line (urls, SOLLOL_NODES) and serves until its standard input closes.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # hydra.sim is imported late: the child process's start-up stays short
    from hydra.sim import NodeProfile

MODEL = "bench-fast:1b"
REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 60.0


def fast_profile(tps: float, slots: int) -> NodeProfile:
    """One node with a fast model and no load or prefill cost: any time not spent decoding is overhead."""
    from hydra.sim import NodeProfile, SimModel

    model = SimModel(MODEL, size_b=1.0, decode_tps=tps, prefill_tps=1e9, load_s=0.0)
    return NodeProfile(name="bench", gpu=True, vram_mb=8192, max_model_b=8, slots=slots, models=[model])


@dataclass(frozen=True)
class SimHandle:
    urls: list[str]
    sollol_nodes: str


def _read_line(process: subprocess.Popen, what: str) -> str:
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.wait(timeout=10)
        raise RuntimeError(f"{what} exited with status {process.returncode} before it was ready; "
                           "run it by hand to see its error")
    return line


@contextlib.contextmanager
def sim_process(tps: float, slots: int, nodes: int = 1) -> Iterator[SimHandle]:
    """``nodes`` simulated nodes (one process, 127.0.0.2 upwards) of ``slots`` slots each."""
    process = subprocess.Popen([sys.executable, "-m", "bench.processes", "--tps", str(tps), "--slots", str(slots),
                                "--nodes", str(nodes)],
                               cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        info = json.loads(_read_line(process, "the simulated node"))
        yield SimHandle(info["urls"], info["sollol_nodes"])
    finally:
        _stop(process)


@dataclass(frozen=True)
class ServeHandle:
    url: str
    pid: int


@contextlib.contextmanager
def serve_process(env: Mapping[str, str]) -> Iterator[ServeHandle]:
    """``python -m hydra serve --port 0`` with ``env``; yields its gateway's URL once it listens."""
    process = subprocess.Popen([sys.executable, "-m", "hydra", "serve", "--port", "0"], cwd=REPO,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, env={**os.environ, **env, "PYTHONPATH": str(REPO)})
    try:
        while True:
            line = _read_line(process, "python -m hydra serve")
            if line.startswith("Hydra gateway at "):
                yield ServeHandle(line.split()[3], process.pid)
                return
    finally:
        _end(process, terminate=True)


@contextlib.contextmanager
def bare_proxy_process(node_url: str) -> Iterator[str]:
    """bench/bare_proxy.py in front of ``node_url``; yields its URL once it answers."""
    import socket
    import time

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "bench.bare_proxy", node_url, str(port)], cwd=REPO,
                               stdin=subprocess.DEVNULL, env=dict(os.environ, PYTHONPATH=str(REPO)))
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                httpx.get(url + "/", timeout=1.0)
                break  # any answer (404) means it listens
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the bare proxy did not start; run python -m bench.bare_proxy by hand") from None
                time.sleep(0.1)
        yield url
    finally:
        _end(process, terminate=True)


@dataclass(frozen=True)
class RemoteNode:
    url: str
    profile: NodeProfile


@dataclass(frozen=True)
class RemoteCluster:
    """What the benchmarks use of a SimCluster, for a preset served by another process."""

    nodes: list[RemoteNode]
    nodes_value: str

    def sollol_nodes(self) -> str:
        return self.nodes_value


@contextlib.contextmanager
def preset_process(preset: str, time_scale: float, host_cache_tokens: int | None = None) -> Iterator[RemoteCluster]:
    """``python -m hydra.sim --preset P --port 0`` in a process of its own; its nodes in preset order.
    ``host_cache_tokens`` overrides every node's host-memory prompt cache (0: per-slot cache only)."""
    import dataclasses

    from hydra.sim import PRESETS

    profiles = {p.name: p if host_cache_tokens is None else dataclasses.replace(p, host_cache_tokens=host_cache_tokens)
                for p in PRESETS[preset]}
    extra = [] if host_cache_tokens is None else ["--host-cache-tokens", str(host_cache_tokens)]
    process = subprocess.Popen([sys.executable, "-m", "hydra.sim", "--preset", preset, "--port", "0",
                                "--time-scale", str(time_scale), *extra], cwd=REPO, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        nodes: list[RemoteNode] = []
        while True:
            line = _read_line(process, "python -m hydra.sim")
            if line.startswith("SOLLOL_NODES="):
                yield RemoteCluster(nodes, line.strip().split("=", 1)[1])
                return
            name, url = line.split()[:2]
            nodes.append(RemoteNode(url, profiles[name]))
    finally:
        _end(process, terminate=True)


def _stop(process: subprocess.Popen) -> None:
    _end(process, terminate=False)


def _end(process: subprocess.Popen, *, terminate: bool) -> None:
    """Ask the process to stop (SIGTERM, or closing its stdin: the sim node's way), kill it after 15 s."""
    if process.poll() is not None:
        return
    if terminate:
        process.terminate()  # serve, the sim CLI and the proxy all stop cleanly on SIGTERM
    else:
        with contextlib.suppress(OSError):
            assert process.stdin is not None
            process.stdin.close()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main() -> None:
    from hydra.sim import start_cluster

    parser = argparse.ArgumentParser(description="one simulated node for the benchmarks, until stdin closes")
    parser.add_argument("--tps", type=float, default=2000.0)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--nodes", type=int, default=1)
    args = parser.parse_args()
    profiles = [fast_profile(args.tps, args.slots) for _ in range(args.nodes)]
    if args.nodes > 1:
        for i, profile in enumerate(profiles, 1):
            profile.name = f"bench-{i}"
    with start_cluster(profiles, time_scale=1.0) as cluster:
        print(json.dumps({"urls": cluster.urls, "sollol_nodes": cluster.sollol_nodes()}), flush=True)
        sys.stdin.read()  # returns when the benchmark closes our stdin (or exits)


if __name__ == "__main__":
    main()
