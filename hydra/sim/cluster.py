"""Several simulated nodes at once, one 127.0.0.x "host" each.

By default node i listens on 127.0.0.(2+i). With ``port=0`` each node gets a
free port of its own, so parallel test runs never collide with each other or
with a real Ollama on 11434; with ``port=11434`` they all share the port on
different addresses, which is how real hosts look.
"""
from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Self

from hydra.sim.models import NodeProfile
from hydra.sim.presets import preset as _preset
from hydra.sim.server import SimNode, check_loopback


def default_hosts(n: int) -> list[str]:
    if n > 250:
        raise ValueError(f"at most 250 simulated hosts, got {n}")
    return [f"127.0.0.{2 + i}" for i in range(n)]


class SimCluster:
    """Started nodes; ``stop()`` (or leaving the ``with`` block) stops them all."""

    def __init__(self, nodes: list[SimNode]) -> None:
        self.nodes = nodes

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    def node(self, name: str) -> SimNode:
        for n in self.nodes:
            if n.profile.name == name:
                return n
        raise KeyError(f"no simulated node named {name!r}; have {[n.profile.name for n in self.nodes]}")

    def __getitem__(self, name: str) -> SimNode:
        return self.node(name)

    def __iter__(self) -> Iterator[SimNode]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def node_specs(self) -> list[dict]:
        """Declared attributes per node, keyed like ``hydra.sollol.NodeSpec``."""
        return [
            {
                "name": n.profile.name,
                "url": n.url,
                "max_model_b": n.profile.max_model_b,
                "gpu": n.profile.gpu,
                "vram_mb": n.profile.vram_mb if n.profile.gpu else None,
                "slots": n.profile.slots,
            }
            for n in self.nodes
        ]

    def sollol_nodes(self) -> str:
        """The SOLLOL_NODES value describing this cluster."""
        entries = []
        for n in self.nodes:
            p = n.profile
            attrs = [f"max_model_b={p.max_model_b:g}", f"gpu={'true' if p.gpu else 'false'}"]
            if p.gpu:
                attrs.append(f"vram_mb={p.vram_mb}")
            attrs.append(f"slots={p.slots}")
            entries.append(";".join([f"{p.name}={n.url}", *attrs]))
        return ",".join(entries)

    def clear_faults(self) -> None:
        for n in self.nodes:
            n.clear_faults()

    def stop(self) -> None:
        for n in self.nodes:
            n.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def start_cluster(
    preset: str | Sequence[NodeProfile],
    *,
    hosts: Sequence[str] | None = None,
    port: int = 0,
    time_scale: float = 1.0,
) -> SimCluster:
    """Start every node of a preset (by name) or of the given profiles."""
    profiles = _preset(preset) if isinstance(preset, str) else [copy.deepcopy(p) for p in preset]
    names = [p.name for p in profiles]
    if len(set(names)) != len(names):
        raise ValueError(f"node names must be unique, got {names}")
    hosts = list(hosts) if hosts is not None else default_hosts(len(profiles))
    if len(hosts) < len(profiles):
        raise ValueError(f"{len(profiles)} nodes need {len(profiles)} hosts, got {len(hosts)}: {hosts}")
    for h in hosts:
        check_loopback(h)
    nodes: list[SimNode] = []
    try:
        for profile, host in zip(profiles, hosts):
            nodes.append(SimNode(profile, host=host, port=port, time_scale=time_scale).start())
    except BaseException:
        for n in nodes:
            n.stop()
        raise
    return SimCluster(nodes)
