"""Ready-made clusters: ``seed`` (the two nodes of SEED.md) and ``cluster8``.

Both serve the embedding models ``nomic-embed-text`` and ``mxbai-embed-large`` (``EMBEDDING``) on
more than one node, so an embedding can fail over.

Model sizes, families and quantisations are those Ollama's library reports,
so ``details.parameter_size`` reads as it would from a real node. Every
preset node holds only models within its ``max_model_b`` that fit its memory
(a test checks this), so routing decisions made from the declared limits
are also physically possible on the simulated hardware.
"""
from __future__ import annotations

import copy

from hydra.sim.models import NodeProfile, SimModel

# name -> (parameters in billions, family, quantisation)
CATALOG: dict[str, tuple[float, str, str]] = {
    "qwen2.5-coder:7b": (7.6, "qwen2", "Q4_K_M"),
    "qwen2.5-coder:3b": (3.1, "qwen2", "Q4_K_M"),
    "qwen2.5-coder:1.5b": (1.5, "qwen2", "Q4_K_M"),
    "qwen2.5-coder:32b": (32.8, "qwen2", "Q4_K_M"),
    "deepseek-coder-v2:latest": (15.7, "deepseek2", "Q4_0"),
    "codellama:13b": (13.0, "llama", "Q4_0"),
    "deepseek-coder:6.7b": (6.7, "llama", "Q4_0"),
    "qwen3:14b": (14.8, "qwen3", "Q4_K_M"),
    "qwen3:8b": (8.2, "qwen3", "Q4_K_M"),
    "qwen3:1.7b": (2.0, "qwen3", "Q4_K_M"),
    "deepseek-r1:14b": (14.8, "qwen2", "Q4_K_M"),
    "llama3.1:70b": (70.6, "llama", "Q4_K_M"),
    "mistral:latest": (7.2, "llama", "Q4_K_M"),
    "llama3.2:3b": (3.2, "llama", "Q4_K_M"),
    # embedding models (EMBEDDING below): F16 as Ollama's library ships them
    "nomic-embed-text:latest": (0.137, "nomic-bert", "F16"),
    "mxbai-embed-large:latest": (0.334, "bert", "F16"),
}
# Vision models (capability "vision"; llava calls no tools, as in Ollama's library).
VISION_CATALOG: dict[str, tuple[float, str, str]] = {
    "llava:7b": (7.2, "llama", "Q4_0"),
}
# Embedding models: (vector length, context length) as Ollama's library reports them.
EMBEDDING: dict[str, tuple[int, int]] = {
    "nomic-embed-text:latest": (768, 2048),
    "mxbai-embed-large:latest": (1024, 512),
}
EMBEDDING_MODELS = tuple(EMBEDDING)

# The models of SEED.md's tiers (code, reasoning, general).
SEED_MODELS = (
    "qwen2.5-coder:7b",
    "deepseek-coder-v2:latest",
    "codellama:13b",
    "qwen2.5-coder:3b",
    "deepseek-coder:6.7b",
    "qwen2.5-coder:1.5b",
    "qwen3:14b",
    "qwen3:1.7b",
    "llama3.1:70b",
    "mistral:latest",
    "llama3.2:3b",
    "qwen3:8b",
)
_SMALL = ("qwen2.5-coder:1.5b", "qwen2.5-coder:3b", "qwen3:1.7b", "llama3.2:3b")
_UP_TO_8B = _SMALL + ("qwen2.5-coder:7b", "deepseek-coder:6.7b", "mistral:latest", "qwen3:8b")
_UP_TO_16B = _UP_TO_8B + ("codellama:13b", "qwen3:14b", "deepseek-coder-v2:latest")


def model(name: str, **overrides: object) -> SimModel:
    """A fresh ``SimModel`` for a catalogue name (each node gets its own copy)."""
    if name in VISION_CATALOG:
        size_b, family, quant = VISION_CATALOG[name]
        return SimModel(name=name, size_b=size_b, family=family, quantization=quant, vision=True, tools=False,
                        **overrides)  # type: ignore[arg-type]
    size_b, family, quant = CATALOG[name]
    if name in EMBEDDING:
        dims, context = EMBEDDING[name]
        overrides = {"embedding_length": dims, "context_length": context, **overrides}
    return SimModel(name=name, size_b=size_b, family=family, quantization=quant, **overrides)  # type: ignore[arg-type]


def models(*names: str) -> list[SimModel]:
    return [model(n) for n in names]


def seed() -> list[NodeProfile]:
    """SEED.md's two nodes: a CPU-only 30B node and a 48 GB GPU 70B node."""
    return [
        NodeProfile(
            name="light",
            gpu=False,
            ram_mb=32_768,
            max_model_b=30,
            slots=2,
            models=models(*(n for n in SEED_MODELS if n != "llama3.1:70b"), *EMBEDDING_MODELS),
        ),
        NodeProfile(
            name="powerful",
            gpu=True,
            vram_mb=48_000,  # llama3.1:70b Q4_K_M needs ~43 GB
            ram_mb=65_536,
            max_model_b=70,
            slots=2,
            models=models(*SEED_MODELS, *EMBEDDING_MODELS),
        ),
    ]


def cluster8() -> list[NodeProfile]:
    """Eight mixed nodes: four CPUs of different speed and RAM, GPUs of 8/12/24/48 GB."""
    return [
        NodeProfile(name="cpu-tiny", ram_mb=8_192, max_model_b=3.5, slots=1,
                    decode_mult=0.10, prefill_mult=0.03, load_mult=3.0, models=models(*_SMALL)),
        NodeProfile(name="cpu-16g", ram_mb=16_384, max_model_b=14, slots=2,
                    decode_mult=0.12, models=models(*_UP_TO_8B, "codellama:13b")),
        NodeProfile(name="cpu-32g", ram_mb=32_768, max_model_b=30, slots=2,
                    models=models(*_UP_TO_16B, *EMBEDDING_MODELS)),
        NodeProfile(name="cpu-64g", ram_mb=65_536, max_model_b=70, slots=4,
                    decode_mult=0.2, prefill_mult=0.06, load_mult=2.0,
                    models=models(*_UP_TO_16B, "llama3.1:70b")),
        NodeProfile(name="gpu-8g", gpu=True, vram_mb=8_192, ram_mb=16_384, max_model_b=9, slots=2,
                    decode_mult=0.8, prefill_mult=0.7, models=models(*_UP_TO_8B, "nomic-embed-text:latest")),
        NodeProfile(name="gpu-12g", gpu=True, vram_mb=12_288, ram_mb=32_768, max_model_b=16, slots=2,
                    models=models(*_UP_TO_16B, "deepseek-r1:14b") + models(*VISION_CATALOG)),
        NodeProfile(name="gpu-24g", gpu=True, vram_mb=24_576, ram_mb=65_536, max_model_b=34, slots=3,
                    decode_mult=1.6, prefill_mult=2.5, load_mult=0.8,
                    models=models("qwen2.5-coder:32b", "qwen2.5-coder:7b", "qwen3:14b", "qwen3:8b",
                                  "deepseek-coder-v2:latest", "deepseek-r1:14b", "mistral:latest", "llama3.2:3b")),
        NodeProfile(name="gpu-48g", gpu=True, vram_mb=49_152, ram_mb=131_072, max_model_b=70, slots=4,
                    decode_mult=1.3, prefill_mult=2.0,
                    models=models(*_UP_TO_16B, "llama3.1:70b", "qwen2.5-coder:32b", *EMBEDDING_MODELS)),
    ]


# Shared definitions: ``start_cluster`` and ``preset()`` hand out deep copies,
# so nothing a test changes on one cluster leaks into the next.
PRESETS: dict[str, list[NodeProfile]] = {"seed": seed(), "cluster8": cluster8()}


def preset(name: str) -> list[NodeProfile]:
    """A fresh copy of a preset's profiles."""
    try:
        return copy.deepcopy(PRESETS[name])
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; expected one of {', '.join(PRESETS)}") from None
