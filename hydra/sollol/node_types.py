"""What a node holds and how it is doing, as plain frozen data: its models as it lists them
(/api/tags, /api/ps), their statistics, and a node's snapshot. Built from copies, so any thread (a
Streamlit page included) reads them without an engine lock. types.py re-exports every name here.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ModelDetails:
    """Ollama's ``details`` of a model, as the node reported them (/api/tags, /api/ps)."""

    format: str = ""
    family: str = ""
    families: tuple[str, ...] | None = None
    parameter_size: str = ""         # Ollama's spelling: "7.6B", "137M"
    quantization_level: str = ""
    parent_model: str = ""


@dataclass(frozen=True)
class ModelInfo:
    name: str
    size_b: float | None      # parameters in billions (from details.parameter_size)
    size_bytes: int = 0
    family: str = ""
    quantization: str = ""
    # identity, as the node reports it: a model of one name may differ between nodes (its digest says so)
    digest: str = ""
    modified_at: str = ""     # RFC 3339, as the node sent it
    details: ModelDetails = ModelDetails()
    # from /api/show ("completion", "embedding", ...); None: not known (yet). Not part of the identity: the
    # monitor fills it in after the listing, and a listing that only gained it has not changed.
    capabilities: tuple[str, ...] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class LoadedModel:
    name: str
    size_bytes: int
    size_vram_bytes: int
    expires_at: str = ""      # RFC 3339 ("2026-12-01T12:00:00.5+00:00"); "" when the node gave none
    digest: str = ""
    details: ModelDetails = ModelDetails()
    context_length: int = 0


@dataclass(frozen=True)
class ModelStatsSnapshot:
    node: str
    model: str
    requests: int
    successes: int
    failures: int
    ttft_p50_s: float | None
    ttft_p95_s: float | None
    tokens_per_s: float | None
    load_s: float | None


@dataclass(frozen=True)
class NodeSnapshot:
    name: str
    url: str
    healthy: bool
    circuit: str                # closed / open / half_open
    last_error: str | None
    gpu: bool
    local: bool
    max_model_b: float | None
    slots: int
    in_flight: int
    vram_total_mb: int | None
    vram_used_mb: int | None
    vram_free_mb: int | None
    installed: tuple[ModelInfo, ...]
    loaded: tuple[LoadedModel, ...]
    version: str | None
    last_seen: float | None     # wall clock of the last good poll
    requests: int
    successes: int
    failures: int
    success_rate: float | None
    ttft_p50_s: float | None
    ttft_p95_s: float | None
    tokens_per_s: float | None
    vram_low: bool = False      # GPU node under SOLLOL_MIN_VRAM_MB free (monitoring on)
    refuses_credentials: str | None = None   # it answers 401/403 to Hydra (why); excluded until it accepts
    backed_off_until: float | None = None    # wall clock: a 429 keeps work away until then
    missing_models: tuple[str, ...] = ()     # models it said it lacks (404) though its list showed them
