"""The cluster's models in Ollama's shapes: /api/tags, /api/ps, and where the nodes disagree.

Each model is listed once, with the identity its nodes reported (digest, modified_at, size, details),
so clients that tell models apart by digest (``llm-ollama`` groups by it) see each one as itself. When
nodes hold different builds of one name (their digests differ), the listing shows the digest most of
them hold (ties: the most recently modified build), and ``model_conflicts`` (sollol.model_listing)
says which node has which: the gateway's status carries it and the Nodes page shows it. Hydra's own
field ``nodes`` (where the model is) is one Ollama's clients ignore. Pure functions over a ClusterSnapshot.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from hydra.sollol import ClusterSnapshot
from hydra.sollol.model_listing import model_conflicts
from hydra.sollol.types import LoadedModel, ModelDetails, ModelInfo

__all__ = ["details_body", "holders_of", "model_conflicts", "ps_body", "tags_body"]

EPOCH = "1970-01-01T00:00:00Z"  # what a node that sends no modified_at gets (Go's zero time, near enough)


def details_body(details: ModelDetails) -> dict[str, Any]:
    """Ollama's ``details`` object."""
    return {"parent_model": details.parent_model, "format": details.format, "family": details.family,
            "families": list(details.families) if details.families is not None else None,
            "parameter_size": details.parameter_size, "quantization_level": details.quantization_level}


def _holders(snapshot: ClusterSnapshot) -> dict[str, list[tuple[str, ModelInfo]]]:
    """model name -> (node, its listing) for every healthy node that has it."""
    held: dict[str, list[tuple[str, ModelInfo]]] = {}
    for node in snapshot.healthy_nodes:
        for info in node.installed:
            held.setdefault(info.name, []).append((node.name, info))
    return held


def _by_digest(holders: Iterable[tuple[str, ModelInfo]]) -> dict[str, list[tuple[str, ModelInfo]]]:
    groups: dict[str, list[tuple[str, ModelInfo]]] = {}
    for node, info in holders:
        groups.setdefault(info.digest, []).append((node, info))
    return groups


def _listed(holders: list[tuple[str, ModelInfo]]) -> ModelInfo:
    """The build a model is listed as: the one most nodes hold; ties to the most recently modified."""
    groups = _by_digest(holders)
    best = max(groups.values(), key=lambda group: (len(group), _instant(group[0][1].modified_at)))
    return best[0][1]


def tags_body(snapshot: ClusterSnapshot) -> dict[str, Any]:
    """/api/tags: every model of a healthy node, once, as Ollama lists it (sorted by name)."""
    models = []
    for name, holders in sorted(_holders(snapshot).items()):
        info = _listed(holders)
        models.append({"name": name, "model": name, "modified_at": info.modified_at or EPOCH,
                       "size": info.size_bytes, "digest": info.digest, "details": details_body(info.details),
                       "nodes": [node for node, _ in holders]})
    return {"models": models}


def holders_of(snapshot: ClusterSnapshot, model: str) -> list[str]:
    """The healthy nodes that have ``model``, those holding the build /api/tags lists first (/api/show
    asks them in this order, so it describes the model the listing shows)."""
    holders = _holders(snapshot).get(model, [])
    if not holders:
        return []
    digest = _listed(holders).digest
    return [node for node, info in holders if info.digest == digest] + [
        node for node, info in holders if info.digest != digest]


def ps_body(snapshot: ClusterSnapshot) -> dict[str, Any]:
    """/api/ps: every model loaded on a healthy node, once: sizes summed over the nodes, the latest expiry."""
    seen: dict[str, list[tuple[str, LoadedModel]]] = {}
    for node in snapshot.healthy_nodes:
        for loaded in node.loaded:
            seen.setdefault(loaded.name, []).append((node.name, loaded))
    models = []
    for name, where in sorted(seen.items()):
        first = where[0][1]
        expiries = [m.expires_at for _, m in where if m.expires_at]
        models.append({
            "name": name, "model": name, "size": sum(m.size_bytes for _, m in where),
            "digest": next((m.digest for _, m in where if m.digest), ""),
            "details": details_body(first.details),
            "expires_at": max(expiries, key=_instant) if expiries else None,
            "size_vram": sum(m.size_vram_bytes for _, m in where),
            "context_length": max(m.context_length for _, m in where),
            "nodes": [node for node, _ in where]})
    return {"models": models}


def _instant(text: str) -> datetime:
    """An RFC 3339 time for comparing (nodes may report in different offsets); unreadable ones first."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
