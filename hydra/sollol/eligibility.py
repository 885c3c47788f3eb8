"""Whether a node may take a task at all, and whether a model fits it: small named predicates,
each testable alone, shared by routing, rebalancing, the monitor and the snapshots. No I/O."""
from __future__ import annotations

import time

from .config import SollolConfig
from .fit import fit_reason
from .model_names import model_key
from .node import Circuit, NodeView, breaker_cooldown
from .types import ModelInfo


def why_unroutable(node: NodeView, now: float | None = None) -> str | None:
    """None when the node may take new work, else the reason it may not. ``now``: the monotonic clock."""
    if not node.healthy:
        return "unhealthy" + (f": {node.last_error}" if node.last_error else "")
    if node.credentials_refused:
        return f"refuses Hydra's credentials: {node.credentials_refused}"
    if node.circuit is Circuit.OPEN:
        return "circuit open" + (f" after: {node.last_error}" if node.last_error else "")
    if node.circuit is Circuit.HALF_OPEN and node.trial_in_flight:
        return "circuit half-open, trial request in flight"
    if node.backoff_until is not None:
        left = node.backoff_until - (time.monotonic() if now is None else now)
        if left > 0:
            return f"backed off for {left:.1f} s more" + (f" after: {node.last_error}" if node.last_error else "")
    return None


def due_back_in(node: NodeView, now: float, breaker_cooldown_s: float) -> float | None:
    """Seconds until a node that may not take work now is expected to again (negative: it was due that
    long ago), when something known brings it back: its backoff ends, its open circuit's cooldown ends
    while it answers polls, or the poll that will tell comes (its first one, or the re-poll of a node
    healthy until its last poll). None when nothing does (down for a while, refusing credentials, a
    half-open trial still running) or when it may take work now."""
    if node.credentials_refused or (node.circuit is Circuit.HALF_OPEN and node.trial_in_flight):
        return None
    waits: list[float] = []
    if not node.healthy:
        if node.repoll_at is None:
            return None
        waits.append(node.repoll_at)
    if node.circuit is Circuit.OPEN:
        if node.opened_at is None:
            return None
        waits.append(node.opened_at + breaker_cooldown(breaker_cooldown_s, node.trips))
    if node.backoff_until is not None and node.backoff_until > now:
        waits.append(node.backoff_until)
    return max(waits) - now if waits else None


def model_info(node: NodeView, model: str) -> ModelInfo | None:
    """The node's installed model that ``model`` names (Ollama's resolution: ``model_key``), if any."""
    fit = node.fits_by_model.get(model_key(model))
    return fit.info if fit is not None else None


def why_unfit(node: NodeView, info: ModelInfo) -> str | None:
    """None when the model fits the node, else why not."""
    return fit_reason(info, node.max_model_b, node.gpu, node.vram_total_mb if node.gpu else None)


def needs_load(node: NodeView, model: str) -> bool:
    """Whether ``model`` is not loaded on the node (a task would pay its cold load)."""
    return model not in node.loaded and model_key(model) not in node.loaded


def vram_low(node: NodeView, config: SollolConfig) -> bool:
    """GPU node under SOLLOL_MIN_VRAM_MB free (monitoring on). CPU-only nodes never are."""
    if not (config.vram_monitoring and node.gpu):
        return False
    free = node.vram_free_mb
    return free is not None and free < config.min_vram_mb


def why_no_large_load(node: NodeView, model: str, info: ModelInfo, config: SollolConfig) -> str | None:
    """None unless the node is low on VRAM and ``model`` would be a new large load there (then why)."""
    if vram_low(node, config) and needs_load(node, model) and (info.size_b or 0) >= config.large_model_b:
        return f"VRAM low: {node.vram_free_mb} MB free < {config.min_vram_mb} MB, no new large loads"
    return None
