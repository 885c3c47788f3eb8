"""Simulated Ollama nodes for tests, benchmarks and demos.

A ``SimNode`` speaks Ollama's HTTP API well enough that the official
``ollama`` client cannot tell it apart, on any 127.0.0.0/8 address, with
per-node hardware (CPU/GPU, memory, slots, speeds), model loading and LRU
eviction, keep-alive, FIFO queueing, deterministic text, thinking tokens and
runtime fault injection (Python API and ``/_sim/*`` HTTP routes).

    from hydra.sim import start_cluster
    with start_cluster("seed", time_scale=0.05) as cluster:
        cluster.sollol_nodes()   # "light=http://127.0.0.2:PORT;max_model_b=30;..."
        cluster.node("powerful").set_fault("http_500", count=1)

Time: ``time_scale`` multiplies every simulated delay (load, prefill, each
token, keep-alive); reported durations stay simulated (unscaled), so
``eval_count / eval_duration`` is the configured speed at any scale.
"""
from __future__ import annotations

from hydra.sim.cluster import SimCluster, default_hosts, start_cluster
from hydra.sim.faults import BUSY_MESSAGE
from hydra.sim.faults import KINDS as FAULT_KINDS
from hydra.sim.models import NodeProfile, SimModel
from hydra.sim.presets import CATALOG, PRESETS, preset
from hydra.sim.server import SimNode, check_loopback, free_port

__all__ = [
    "BUSY_MESSAGE",
    "CATALOG",
    "FAULT_KINDS",
    "PRESETS",
    "NodeProfile",
    "SimCluster",
    "SimModel",
    "SimNode",
    "check_loopback",
    "default_hosts",
    "free_port",
    "preset",
    "start_cluster",
]
