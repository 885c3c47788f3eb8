"""What a model costs and whether it fits, on one node: the priors routing and the watchdog use
before anything is measured, and the fit table of a node's model list. Pure functions, no state."""
from __future__ import annotations

from typing import NamedTuple

from .model_names import model_key
from .types import ModelInfo

# Parameter counts are nominal: a node declared for 70B models holds llama3.1:70b, which Ollama
# reports as 70.6B. Within 2 % still fits; a 30B node still refuses a 32.8B model.
SIZE_SLACK = 1.02


class ModelFit(NamedTuple):
    """One installed model as routing sees it on one node."""

    info: ModelInfo
    why_unfit: str | None      # None: the model fits the node
    prior_tps: float           # decode speed before any is measured
    prior_load_s: float        # cold-load time before any is measured


# model_key(name) -> the model's fit on one node
FitTable = dict[str, ModelFit]


def _prior_size_b(info: ModelInfo) -> float:
    """The size the priors use: an unknown (or tiny) size counts as 1B. Below 1B decoding is bound by
    compute and per-token overhead, not by reading the weights: the bandwidth rule would promise the
    135M embedded model 440 tokens/s on a CPU, so a tiny model is assumed no faster than a 1B one."""
    return info.size_b if info.size_b and info.size_b >= 1.0 else 1.0


def prior_tps(gpu: bool, info: ModelInfo) -> float:
    """Decode speed before any is measured: memory-bandwidth bound, so inversely proportional to size."""
    tps = (450.0 if gpu else 60.0) / _prior_size_b(info)
    return 1.0 if tps < 1.0 else min(tps, 500.0)


def prior_load_s(gpu: bool, info: ModelInfo) -> float:
    """Cold-load time before any is measured: reading the weights, slower into RAM than into VRAM."""
    return _prior_size_b(info) * (0.3 if gpu else 0.7) + 0.5


def fit_reason(info: ModelInfo, max_model_b: float | None, gpu: bool, vram_total_mb: int | None) -> str | None:
    """None when the model fits a node of this size, else why not."""
    if info.size_b and max_model_b is not None and info.size_b > max_model_b * SIZE_SLACK + 1e-9:
        return f"too large: {info.size_b:g}B > max {max_model_b:g}B"
    if gpu and vram_total_mb and info.size_bytes:
        need_mb = info.size_bytes / (1024 * 1024)
        if need_mb > vram_total_mb:
            return f"too large: needs {need_mb:,.0f} MB > {vram_total_mb:,} MB VRAM"
    return None


def fit_table(installed: dict[str, ModelInfo], max_model_b: float | None, gpu: bool,
              vram_total_mb: int | None) -> FitTable:
    """Every installed model under its ``model_key``, with whether it fits the node and its speed priors.
    It changes only when the model list does, so routing looks it up instead of re-checking sizes for
    every (tier entry, node) pair of every decision."""
    table: FitTable = {}
    for name, info in installed.items():
        table.setdefault(model_key(name), ModelFit(info, fit_reason(info, max_model_b, gpu, vram_total_mb),
                                                   prior_tps(gpu, info), prior_load_s(gpu, info)))
    return table
