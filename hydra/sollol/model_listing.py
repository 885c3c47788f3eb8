"""A node's model lists (/api/tags, /api/ps) as the engine keeps them: each model's identity as the node
reported it (digest, modified_at, size, details), so the gateway can pass it on unchanged; and the models whose nodes hold different builds of one name
(``model_conflicts``: their digests differ), for the gateway's status and the Nodes page.

The ``ollama`` client parses timestamps into ``datetime``; they are kept as RFC 3339 text with a ``T``
(``datetime.isoformat``), which is what Ollama sends and what its clients parse back.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .types import ClusterSnapshot, LoadedModel, ModelDetails, ModelInfo

_SIZE = re.compile(r"([\d.]+)\s*([KMBT]?)", re.IGNORECASE)


def parse_parameter_size(text: str | None) -> float | None:
    """'7.6B' -> 7.6, '135M' -> 0.135, '70B' -> 70.0 (billions of parameters)."""
    if not text:
        return None
    match = _SIZE.match(str(text).strip())
    if not match:
        return None
    value = float(match.group(1))
    scale = {"": 1e-9, "K": 1e-6, "M": 1e-3, "B": 1.0, "T": 1e3}[match.group(2).upper()]
    return value * scale


def rfc3339(value: Any) -> str:
    """A timestamp as RFC 3339 text ("" when there is none). Text a node sent is kept as it is."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def details_from(details: Any) -> ModelDetails:
    """The client's ModelDetails (or None) as the engine's."""
    if details is None:
        return ModelDetails()
    families = getattr(details, "families", None)
    return ModelDetails(
        format=details.format or "", family=details.family or "",
        families=tuple(str(f) for f in families) if families is not None else None,
        parameter_size=details.parameter_size or "", quantization_level=details.quantization_level or "",
        parent_model=getattr(details, "parent_model", None) or "")


def installed_from(listed: Any) -> dict[str, ModelInfo]:
    """/api/tags (the client's ListResponse) as name -> ModelInfo."""
    models = {}
    for m in listed.models or []:
        name = m.model or ""
        if not name:
            continue
        details = details_from(m.details)
        models[name] = ModelInfo(
            name=name, size_b=parse_parameter_size(details.parameter_size), size_bytes=int(m.size or 0),
            family=details.family, quantization=details.quantization_level, digest=m.digest or "",
            modified_at=rfc3339(m.modified_at), details=details)
    return models


def loaded_from(running: Any) -> dict[str, LoadedModel]:
    """/api/ps (the client's ProcessResponse) as name -> LoadedModel."""
    return {m.model: LoadedModel(m.model, int(m.size or 0), int(m.size_vram or 0), rfc3339(m.expires_at),
                                 digest=m.digest or "", details=details_from(m.details),
                                 context_length=int(m.context_length or 0))
            for m in running.models or [] if m.model}


@dataclass(frozen=True)
class ModelConflict:
    """One model name whose nodes hold different builds: digest -> the nodes that hold it."""

    model: str
    digests: dict[str, tuple[str, ...]]

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "digests": {d: list(nodes) for d, nodes in self.digests.items()}}

    def describe(self) -> str:
        held = "; ".join(f"{digest[:12] or '(no digest)'} on {', '.join(nodes)}" for digest, nodes in self.digests.items())
        return f"{self.model}: the nodes hold different builds ({held})"


def model_conflicts(snapshot: ClusterSnapshot) -> list[ModelConflict]:
    """Models whose healthy nodes report different digests, by name."""
    conflicts = []
    held: dict[str, dict[str, list[str]]] = {}  # model -> digest -> nodes
    for node in snapshot.healthy_nodes:
        for info in node.installed:
            held.setdefault(info.name, {}).setdefault(info.digest, []).append(node.name)
    for name, digests in sorted(held.items()):
        if len(digests) > 1:
            conflicts.append(ModelConflict(name, {d: tuple(nodes) for d, nodes in digests.items()}))
    return conflicts
