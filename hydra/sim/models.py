"""What a simulated node serves and how fast: ``SimModel`` and ``NodeProfile``.

Speeds are derived from a model's size the way real hardware behaves:
decoding is memory-bandwidth bound (tokens/s ~ bandwidth / weight bytes),
prefill is compute bound (tokens/s ~ 1 / parameters), and a cold load reads
the weights from disk. A ``SimModel`` carries reference figures for a
mid-range GPU (a 7.6B Q4 model decodes at ~60 tok/s and loads in ~2 s); a
``NodeProfile`` scales them with multipliers, so the same model is ~9 tok/s
and ~5 s to load on a CPU node. Any figure can be given explicitly instead.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hydra.sim.prefix_cache import HOST_CACHE_TOKENS

# Bytes per parameter of common GGUF quantisations (weights only).
_BYTES_PER_PARAM = {
    "Q4_0": 0.57,
    "Q4_K_M": 0.60,
    "Q5_K_M": 0.71,
    "Q6_K": 0.82,
    "Q8_0": 1.06,
    "F16": 2.0,
}
# KV cache, compute buffers and runtime that come with every loaded model.
_OVERHEAD_MB = 400
# Reference GPU: effective memory bandwidth, prefill throughput for 1B params,
# disk read speed at load. Tuned so that a 7.6B Q4_K_M model decodes at ~60
# tok/s, prefills at ~1500 tok/s and loads in ~2 s.
_REF_BANDWIDTH_GB_S = 274.0
_REF_PREFILL_TPS_PER_B = 11_400.0
_REF_LOAD_GB_S = 2.8
_REF_LOAD_BASE_S = 0.4

THINKING_PREFIXES = ("qwen3", "deepseek-r1")
DEFAULT_CONTEXT_LENGTH = 4096
_PULLED_BEFORE = datetime(2026, 10, 1, 9, 30, tzinfo=UTC)  # models look pulled in the weeks before this


@dataclass
class SimModel:
    """One installed model. Zero speeds mean "derive from size and quantisation"."""

    name: str
    size_b: float
    family: str = "llama"
    quantization: str = "Q4_K_M"
    decode_tps: float = 0.0
    prefill_tps: float = 0.0
    load_s: float = 0.0
    thinking: bool | None = None  # None: names starting qwen3 / deepseek-r1 think
    think_tokens: int | None = None  # None: deterministic 40-200 from the prompt
    context_length: int = DEFAULT_CONTEXT_LENGTH
    # what the model can do beyond text (its /api/show capabilities): images, tool calls
    vision: bool = False
    tools: bool = True
    # An embedding model (capabilities ["embedding"]) when > 0: the length of its vectors. It cannot chat.
    embedding_length: int = 0
    # Tells two builds of one name apart (a node that pulled it again later): its digest changes with it.
    revision: str = ""

    def __post_init__(self) -> None:
        if ":" not in self.name:
            self.name += ":latest"
        if self.size_b <= 0:
            raise ValueError(f"model {self.name}: size_b must be > 0, got {self.size_b}")
        if self.thinking is None:
            self.thinking = self.name.startswith(THINKING_PREFIXES)
        weights_gb = self.weights_bytes / 1e9
        if not self.decode_tps:
            self.decode_tps = round(min(400.0, _REF_BANDWIDTH_GB_S / weights_gb), 1)
        if not self.prefill_tps:
            self.prefill_tps = round(min(20_000.0, _REF_PREFILL_TPS_PER_B / self.size_b), 1)
        if not self.load_s:
            self.load_s = round(_REF_LOAD_BASE_S + weights_gb / _REF_LOAD_GB_S, 2)

    @property
    def bytes_per_param(self) -> float:
        return _BYTES_PER_PARAM.get(self.quantization.upper(), 0.60)

    @property
    def weights_bytes(self) -> int:
        """Size of the model file, what ``/api/tags`` reports as ``size``."""
        return int(self.size_b * 1e9 * self.bytes_per_param)

    @property
    def memory_mb(self) -> int:
        """Memory taken once loaded: weights plus KV cache and buffers."""
        return int(self.weights_bytes / 1e6) + _OVERHEAD_MB

    @property
    def memory_bytes(self) -> int:
        return self.memory_mb * 1_000_000

    @property
    def parameter_size(self) -> str:
        """Ollama's spelling: "7.6B", "13B", "70.6B"; under a billion in millions: "137M"."""
        if self.size_b < 1:
            return f"{round(self.size_b * 1000):g}M"
        return f"{round(self.size_b, 1):g}B"

    @property
    def digest(self) -> str:
        """Stable and distinct per model (and revision), 64 hex digits like a real manifest's."""
        return hashlib.sha256((self.name + self.revision).encode()).hexdigest()

    @property
    def modified_at(self) -> str:
        """When the node pulled it: a fixed instant per digest (RFC 3339, Ollama's local-time spelling)."""
        minutes = int(self.digest[:6], 16) % (60 * 24 * 60)  # within 60 days before the reference instant
        return (_PULLED_BEFORE - timedelta(minutes=minutes)).isoformat()

    @property
    def embedding(self) -> bool:
        return self.embedding_length > 0

    @property
    def capabilities(self) -> list[str]:
        """What /api/show reports, as Ollama derives it: embedding models only embed."""
        if self.embedding:
            return ["embedding"]
        return ["completion"] + (["thinking"] if self.thinking else []) + (["vision"] if self.vision else [])

    def details(self) -> dict:
        return {
            "parent_model": "",
            "format": "gguf",
            "family": self.family,
            "families": [self.family],
            "parameter_size": self.parameter_size,
            "quantization_level": self.quantization,
        }


@dataclass
class NodeProfile:
    """One simulated host: its memory, parallelism, speed and models."""

    name: str
    gpu: bool = False
    vram_mb: int = 0  # GPU memory models are loaded into (gpu nodes)
    ram_mb: int = 16_384  # memory models are loaded into on CPU nodes
    max_model_b: float = 30.0
    slots: int = 2  # requests generating at once; more wait in FIFO order
    models: list[SimModel] = field(default_factory=list)
    # Multipliers applied to every model's reference (mid-range GPU) figures.
    decode_mult: float | None = None
    prefill_mult: float | None = None
    load_mult: float | None = None
    max_queue: int = 512  # Ollama's OLLAMA_MAX_QUEUE; beyond it: 503
    blobs: set[str] = field(default_factory=set)  # digests uploaded with POST /api/blobs (management.py)
    host_cache_tokens: int = HOST_CACHE_TOKENS  # llama-server's host-memory prompt cache (prefix_cache.py); 0: none

    def __post_init__(self) -> None:
        if self.slots < 1:
            raise ValueError(f"node {self.name}: slots must be >= 1")
        if self.gpu and self.vram_mb <= 0:
            raise ValueError(f"node {self.name}: a gpu node needs vram_mb > 0")
        # CPU inference: ~1/7 of the decode speed (DDR vs GDDR bandwidth),
        # ~1/25 of the prefill speed (no tensor cores), loads ~2.5x slower
        # (weights are mmapped and paged in, no fast upload path).
        if self.decode_mult is None:
            self.decode_mult = 1.0 if self.gpu else 0.15
        if self.prefill_mult is None:
            self.prefill_mult = 1.0 if self.gpu else 0.04
        if self.load_mult is None:
            self.load_mult = 1.0 if self.gpu else 2.5
        names = [m.name for m in self.models]
        if len(names) != len(set(names)):
            raise ValueError(f"node {self.name}: duplicate model names in {names}")

    @property
    def memory_mb(self) -> int:
        """Memory available for loaded models: VRAM on GPU nodes, RAM otherwise."""
        return self.vram_mb if self.gpu else self.ram_mb

    def model(self, name: str) -> SimModel | None:
        name = normalize_name(name)
        return next((m for m in self.models if m.name == name), None)

    def decode_tps(self, model: SimModel) -> float:
        return model.decode_tps * float(self.decode_mult or 1.0)

    def prefill_tps(self, model: SimModel) -> float:
        return model.prefill_tps * float(self.prefill_mult or 1.0)

    def load_s(self, model: SimModel) -> float:
        return model.load_s * float(self.load_mult or 1.0)

    def describe(self) -> str:
        kind = f"gpu {self.vram_mb} MB" if self.gpu else f"cpu {self.ram_mb} MB"
        names = ", ".join(m.name for m in self.models)
        return f"{kind}, max {self.max_model_b:g}B, slots {self.slots}, models: {names}"


def normalize_name(name: str) -> str:
    """Ollama resolves a bare name to its ``:latest`` tag."""
    name = name.strip()
    if name and ":" not in name:
        return name + ":latest"
    return name
