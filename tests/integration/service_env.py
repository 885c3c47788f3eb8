"""The settings of a Hydra over a simulated cluster alone, shared by the service and gateway tests."""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from hydra.service import Hydra
from hydra.sim import SimCluster


def hydra_env(cluster: SimCluster, tmp_path: Any, **extra: str) -> dict[str, str]:
    """Its own database, no embedded node, no localhost discovery, the gateway left to the test."""
    return {"SOLLOL_NODES": cluster.sollol_nodes(), "HYDRA_DB": str(tmp_path / "h.db"), "HYDRA_EMBEDDED_NODE": "off",
            "SOLLOL_DISCOVER_LOCALHOST": "false", "HYDRA_GATEWAY_PORT": "0", **extra}


@contextmanager
def running_hydra(cluster: SimCluster, tmp_path: Any, eventually: Callable[..., Any],
                  env: Mapping[str, str] | None = None, **engine: Any) -> Iterator[Hydra]:
    """A started Hydra over ``cluster`` (``hydra_env`` plus ``env``; polls every 0.1 s unless ``engine``
    says otherwise), once every node is healthy; closed at the end, also when they never are."""
    service = Hydra.from_env(hydra_env(cluster, tmp_path, **(env or {})), **{"poll_interval_s": 0.1, **engine}).start()
    try:
        eventually(lambda: len(service.snapshot().healthy_nodes) == len(cluster.nodes), what="every node healthy")
        yield service
    finally:
        service.close()
