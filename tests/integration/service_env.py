"""The settings of a Hydra over a simulated cluster alone, shared by the service and gateway tests."""
from __future__ import annotations

from typing import Any

from hydra.sim import SimCluster


def hydra_env(cluster: SimCluster, tmp_path: Any, **extra: str) -> dict[str, str]:
    """Its own database, no embedded node, no localhost discovery, the gateway left to the test."""
    return {"SOLLOL_NODES": cluster.sollol_nodes(), "HYDRA_DB": str(tmp_path / "h.db"), "HYDRA_EMBEDDED_NODE": "off",
            "SOLLOL_DISCOVER_LOCALHOST": "false", "HYDRA_GATEWAY_PORT": "0", **extra}
