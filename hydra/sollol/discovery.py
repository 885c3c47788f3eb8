"""Where nodes come from: configuration (SOLLOL_NODES, OLLAMA_HOST), localhost:11434
when it answers, and an opt-in subnet scan (SOLLOL_DISCOVERY_CIDR).

The scan is bounded: at most ``config.MAX_SCAN_HOSTS`` addresses (``parse_discovery_cidr``
refuses wider networks), ``concurrency`` probes at a time, each with a short
timeout. Nothing is scanned unless a CIDR is configured.
"""
from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from .addresses import without_credentials
from .config import DISCOVERY_CIDR_FORMAT, SollolConfig, parse_discovery_cidr
from .errors import ConfigError
from .types import NodeSpec

log = logging.getLogger("hydra.sollol.discovery")

OLLAMA_PORT = 11434
LOCALHOST_URL = f"http://127.0.0.1:{OLLAMA_PORT}"
_LOCALHOST_URLS = (LOCALHOST_URL, f"http://localhost:{OLLAMA_PORT}")


def probe(url: str, timeout_s: float = 0.5) -> str | None:
    """The Ollama version at ``url``, or None when nothing Ollama-like answers."""
    import httpx  # lazily: keeps `import hydra.sollol` fast

    try:
        response = httpx.get(url.rstrip("/") + "/api/version", timeout=timeout_s)
        if response.status_code == 200:
            return str(response.json().get("version", "")) or "unknown"
    except (httpx.HTTPError, ValueError, AttributeError):
        return None
    return None


def scan_hosts(cidr: str) -> list[str]:
    """The addresses a scan of ``cidr`` probes (SOLLOL_DISCOVERY_CIDR's rule refuses a bad or wide network)."""
    normalised = parse_discovery_cidr("SOLLOL_DISCOVERY_CIDR", cidr)
    if normalised is None:
        raise ConfigError("SOLLOL_DISCOVERY_CIDR", cidr, DISCOVERY_CIDR_FORMAT)
    network = ipaddress.IPv4Network(normalised)
    hosts = list(network.hosts()) or [network.network_address]
    return [str(h) for h in hosts]


def scan(cidr: str, *, port: int = OLLAMA_PORT, timeout_s: float = 0.3, concurrency: int = 32) -> list[NodeSpec]:
    """Probe every host of ``cidr`` on ``port``; returns the ones that speak Ollama."""
    urls = [f"http://{host}:{port}" for host in scan_hosts(cidr)]
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(urls))), thread_name_prefix="sollol-scan") as pool:
        versions = list(pool.map(lambda u: probe(u, timeout_s), urls))
    found = [NodeSpec(url=u) for u, v in zip(urls, versions) if v]
    log.info("discovery scan of %s: %d of %d hosts answer as Ollama", cidr, len(found), len(urls))
    return found


def discover(config: SollolConfig, extra: Iterable[NodeSpec] = ()) -> list[NodeSpec]:
    """Configured nodes first, then localhost (if it answers), then the opt-in scan; no duplicates."""
    nodes: list[NodeSpec] = []
    seen: set[str] = set()

    def add(spec: NodeSpec) -> None:
        address = without_credentials(spec.url)   # the same node, whatever credentials it is given
        if address not in seen and spec.name not in {n.name for n in nodes}:
            seen.add(address)
            nodes.append(spec)

    for spec in (*extra, *config.nodes):
        add(spec)
    if config.discover_localhost and seen.isdisjoint(_LOCALHOST_URLS) and probe(LOCALHOST_URL):
        add(NodeSpec(url=LOCALHOST_URL, name="localhost"))
    if config.discovery_cidr:
        for spec in scan(config.discovery_cidr):
            add(spec)
    return nodes
