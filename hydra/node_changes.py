"""The service's changes to the running router's nodes, and its check of a URL before it is added.

Apart from ``hydra.service`` so that module keeps to building the Router and its settings; the
service calls ``sync_nodes`` with its settings lock held (``Hydra._apply``).
"""
from __future__ import annotations

from hydra.sollol import ConfigError, NodeSpec, Router
from hydra.sollol.client import NodeClient
from hydra.sollol.errors import NodeError
from hydra.sollol.redact import redact_url


def sync_nodes(router: Router, before: tuple[NodeSpec, ...], after: tuple[NodeSpec, ...]) -> None:
    """Apply a change of SOLLOL_NODES to the running router; other nodes are left alone.
    All or nothing: if adding one fails, what was done is undone and the error raised."""
    old = {n.name: n for n in before}
    new = {n.name: n for n in after}
    running = {n.name for n in router.nodes()}
    removed = [spec for name, spec in old.items() if new.get(name) != spec and name in running]
    added = [spec for name, spec in new.items() if old.get(name) != spec or name not in running]
    for spec in removed:
        router.remove_node(spec.name)
    done: list[NodeSpec] = []
    try:
        for spec in added:
            if spec.name in {n.name for n in router.nodes()}:
                continue
            router.add_node(spec)
            done.append(spec)
    except ConfigError:
        for spec in done:
            router.remove_node(spec.name)
        for spec in removed:
            router.add_node(spec)
        raise


def check_node_url(url: str, timeout_s: float = 3.0) -> tuple[bool, str]:
    """Can Hydra use this URL as a node? (ok, a sentence saying what was found)."""
    try:
        spec = NodeSpec(url=url)
    except ConfigError as exc:
        return False, str(exc)
    client = NodeClient(spec, connect_timeout_s=timeout_s, poll_timeout_s=timeout_s)
    try:
        version = client.version()
        models = client.tags()
    except NodeError as exc:
        return False, str(exc)
    finally:
        client.close()
    names = ", ".join(sorted(models)[:6]) + (" ..." if len(models) > 6 else "")
    return True, f"Ollama {version} at {redact_url(spec.url)}, {len(models)} models" + (f": {names}" if models else "")
