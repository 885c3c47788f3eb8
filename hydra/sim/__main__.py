"""``python -m hydra.sim``: serve a preset cluster of simulated Ollama nodes.

    python -m hydra.sim --preset seed                      # 127.0.0.2:11434, 127.0.0.3:11434
    python -m hydra.sim --preset cluster8 --port 0 --time-scale 0.2
    python -m hydra.sim --preset seed --hosts 127.0.0.10,127.0.0.11
    python -m hydra.sim --preset seed --host-cache-tokens 0   # KV cache per slot only

Prints one line per node and the SOLLOL_NODES value to point Hydra at them,
then serves until Ctrl+C. Faults can be armed meanwhile over HTTP:
    curl -X POST http://127.0.0.2:11434/_sim/fault -d '{"kind": "http_500", "count": 3}'
    curl -X DELETE http://127.0.0.2:11434/_sim/fault
    curl http://127.0.0.2:11434/_sim/state
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
import threading

from hydra.sim.cluster import start_cluster
from hydra.sim.presets import PRESETS
from hydra.sim.server import check_loopback


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m hydra.sim",
        description="Serve simulated Ollama nodes on 127.0.0.0/8 addresses (tests, benchmarks, demos).",
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), default="seed", help="which cluster to start (default: seed)")
    parser.add_argument("--port", type=int, default=11434, help="port on every host; 0 = a free port per host (default: 11434)")
    parser.add_argument("--hosts", default="", help="comma-separated 127.x.y.z addresses, one per node (default: 127.0.0.2, 127.0.0.3, ...)")
    parser.add_argument("--time-scale", type=float, default=1.0, help="multiplier for every simulated delay (default: 1.0 = real time)")
    parser.add_argument("--host-cache-tokens", type=int, default=None,
                        help="every node's host-memory prompt cache behind its slots, in tokens; 0 = per-slot "
                             "cache only (default: the preset's)")
    parser.add_argument("--log-level", default="WARNING", help="logging level (default: WARNING)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    hosts = [h.strip() for h in args.hosts.split(",") if h.strip()] or None
    try:
        for host in hosts or []:
            check_loopback(host)
        if args.time_scale <= 0:
            raise ValueError(f"--time-scale must be > 0, got {args.time_scale}")
        if not 0 <= args.port <= 65535:
            raise ValueError(f"--port must be 0..65535, got {args.port}")
        if args.host_cache_tokens is not None and args.host_cache_tokens < 0:
            raise ValueError(f"--host-cache-tokens must be >= 0, got {args.host_cache_tokens}")
        profiles = PRESETS[args.preset]
        if args.host_cache_tokens is not None:
            profiles = [dataclasses.replace(p, host_cache_tokens=args.host_cache_tokens) for p in profiles]
        cluster = start_cluster(profiles, hosts=hosts, port=args.port, time_scale=args.time_scale)
    except ValueError as exc:
        print(f"hydra.sim: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"hydra.sim: error: cannot listen: {exc} (is the port in use? try --port 0)", file=sys.stderr)
        return 1

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with cluster:
        for node in cluster.nodes:
            p = node.profile
            kind = f"gpu {p.vram_mb} MB" if p.gpu else f"cpu {p.ram_mb} MB"
            models = ", ".join(m.name for m in p.models)
            print(f"{p.name} {node.url} ({kind}, max {p.max_model_b:g}B, slots {p.slots}, models: {models})")
        print(f"SOLLOL_NODES={cluster.sollol_nodes()}", flush=True)
        try:
            while not done.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
