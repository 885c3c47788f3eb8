"""One node's live state: health, circuit breaker, models, VRAM, in-flight count.

The monitor and the workers write it; the scheduler reads ``view()`` copies.
Nothing here does I/O, so its lock is never held across a network call.

Circuit breaker: ``breaker_threshold`` consecutive failures that count
against the node (connection errors, 5xx, 503 busy, timeouts, protocol
errors; never a 4xx caused by the request) open the circuit. After a
cooldown that doubles on each re-trip (flapping nodes stay out longer) the
circuit is half-open: the next successful health poll lets one trial task
through, and a good trial closes it. A failed poll keeps it open.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum

from .types import LoadedModel, ModelInfo, NodeSpec

# Parameter counts are nominal: a node declared for 70B models holds llama3.1:70b, which Ollama
# reports as 70.6B. Within 2 % still fits; a 30B node still refuses a 32.8B model.
SIZE_SLACK = 1.02

# model -> (info, why it does not fit or None, size in B for the priors, prior tokens/s, prior cold-load s)
FitTable = dict[str, tuple[ModelInfo, "str | None", float, float, float]]


def prior_tps(gpu: bool, info: ModelInfo) -> float:
    """Decode speed before any is measured: memory-bandwidth bound, so inversely proportional to size."""
    size = info.size_b if info.size_b and info.size_b > 0.1 else 1.0
    tps = (450.0 if gpu else 60.0) / size
    return 1.0 if tps < 1.0 else min(tps, 500.0)


def prior_load_s(gpu: bool, info: ModelInfo) -> float:
    """Cold-load time before any is measured: reading the weights, slower into RAM than into VRAM."""
    size = info.size_b if info.size_b and info.size_b > 0.1 else 1.0
    return size * (0.3 if gpu else 0.7) + 0.5


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
    """Every installed model, under its name and (for ``x:latest``) its bare name ``x``, with whether it
    fits the node and its speed priors. It changes only when the model list does, so routing looks it up instead of
    re-checking sizes for every (tier entry, node) pair of every decision."""
    table: FitTable = {}
    for name, info in installed.items():
        entry = (info, fit_reason(info, max_model_b, gpu, vram_total_mb),
                 info.size_b if info.size_b and info.size_b > 0.1 else 1.0, prior_tps(gpu, info), prior_load_s(gpu, info))
        if name.endswith(":latest"):
            table.setdefault(name[:-7], entry)
        table[name] = entry
    return table


class Circuit(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class NodeView:
    """What routing needs to know of a node, copied at one instant."""

    name: str
    url: str
    gpu: bool
    local: bool
    max_model_b: float | None
    slots: int
    in_flight: int
    healthy: bool
    circuit: Circuit
    trial_in_flight: bool
    installed: dict[str, ModelInfo]
    loaded: frozenset[str]
    vram_total_mb: int | None
    vram_used_mb: int | None
    polled: bool                     # at least one good poll of /api/tags
    last_error: str | None
    fit: FitTable | None = None      # fit_table() of ``installed``; built on demand when not given

    @property
    def fits_by_model(self) -> FitTable:
        if self.fit is None:
            object.__setattr__(self, "fit", fit_table(self.installed, self.max_model_b, self.gpu,
                                                      self.vram_total_mb if self.gpu else None))
        return self.fit  # type: ignore[return-value]

    @property
    def free_slots(self) -> int:
        return max(0, self.slots - self.in_flight)

    @property
    def vram_free_mb(self) -> int | None:
        if self.vram_total_mb is None or self.vram_used_mb is None:
            return None
        return max(0, self.vram_total_mb - self.vram_used_mb)

    @property
    def capability(self) -> float:
        """Largest model (billions of parameters) the node can hold, declared or inferred."""
        if self.max_model_b is not None:
            return self.max_model_b
        sizes = [m.size_b for m in self.installed.values() if m.size_b]
        return max(sizes, default=0.0)


# Fields whose change does not show in a view (and the bookkeeping of the view cache itself).
_UNTRACKED = frozenset({"_changes", "_view_cache", "_fit_source", "_fit", "version", "last_seen"})


@dataclass
class NodeState:
    spec: NodeSpec
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    healthy: bool = False
    circuit: Circuit = Circuit.CLOSED
    consecutive_failures: int = 0
    trips: int = 0
    opened_at: float = 0.0
    trial_in_flight: bool = False
    in_flight: int = 0
    installed: dict[str, ModelInfo] = field(default_factory=dict)  # replaced on each poll, never mutated
    loaded: dict[str, LoadedModel] = field(default_factory=dict)
    version: str | None = None
    last_error: str | None = None
    last_seen: float | None = None
    polled: bool = False
    removed: bool = False
    _fit_source: dict[str, ModelInfo] | None = field(default=None, repr=False)
    _fit: FitTable = field(default_factory=dict, repr=False)
    # Every dispatch round asks each node for a view; most rounds nothing changed since the last.
    # Any assignment to a field (and mark_loaded's in-place change) bumps _changes, which retires
    # the cached view: no mutator can forget to.
    _changes: int = field(default=0, repr=False)
    _view_cache: tuple[int, NodeView] | None = field(default=None, repr=False)

    def __setattr__(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)
        if name not in _UNTRACKED:
            object.__setattr__(self, "_changes", self.__dict__.get("_changes", 0) + 1)

    @property
    def name(self) -> str:
        return self.spec.name

    def view(self, *, breaker_cooldown_s: float = 5.0, now: float | None = None) -> NodeView:
        with self.lock:
            self._maybe_half_open(breaker_cooldown_s, time.monotonic() if now is None else now)
            cached = self._view_cache
            if cached is not None and cached[0] == self._changes:
                return cached[1]
            vram_used = None
            if self.spec.gpu:
                vram_used = sum(m.size_vram_bytes for m in self.loaded.values()) // (1024 * 1024)
            view = NodeView(
                name=self.spec.name, url=self.spec.url, gpu=bool(self.spec.gpu), local=bool(self.spec.local),
                max_model_b=self.spec.max_model_b, slots=self.spec.slots, in_flight=self.in_flight,
                healthy=self.healthy and not self.removed, circuit=self.circuit,
                trial_in_flight=self.trial_in_flight, installed=self.installed,
                loaded=frozenset(self.loaded), vram_total_mb=self.spec.vram_mb if self.spec.gpu else None,
                vram_used_mb=vram_used, polled=self.polled, last_error=self.last_error, fit=self._fits())
            self._view_cache = (self._changes, view)
            return view

    def _fits(self) -> FitTable:
        """Lock held. The fit table of the current model list, rebuilt only when that list is replaced."""
        if self._fit_source is not self.installed:
            self._fit_source = self.installed
            self._fit = fit_table(self.installed, self.spec.max_model_b, bool(self.spec.gpu),
                                  self.spec.vram_mb if self.spec.gpu else None)
        return self._fit

    def half_open(self, breaker_cooldown_s: float) -> bool:
        """Whether the circuit is half-open now (a task bound here is its one trial)."""
        with self.lock:
            self._maybe_half_open(breaker_cooldown_s, time.monotonic())
            return self.circuit is Circuit.HALF_OPEN

    # --- monitor side ---

    def poll_ok(self, version: str | None, installed: dict[str, ModelInfo] | None,
                loaded: dict[str, LoadedModel] | None) -> bool:
        """Record a good poll; returns True when the node became healthy again."""
        with self.lock:
            was = self.healthy
            self.healthy = True
            self.version = version or self.version
            if installed is not None:
                self.installed = installed
                self.polled = True
            if loaded is not None:
                self.loaded = loaded
            self.last_seen = time.time()
            if self.circuit is Circuit.CLOSED:
                self.last_error = None
            return not was

    def poll_failed(self, error: str) -> bool:
        """Record a failed poll; returns True when the node just became unhealthy."""
        with self.lock:
            was = self.healthy
            self.healthy = False
            self.last_error = error
            if self.circuit is Circuit.HALF_OPEN:
                self._open(time.monotonic())
            return was

    # --- worker side ---

    def begin(self, trial: bool) -> None:
        with self.lock:
            self.in_flight += 1
            if trial:
                self.trial_in_flight = True

    def end(self, *, ok: bool | None, error: str | None = None, threshold: int = 3, trial: bool = False) -> None:
        """ok None = the attempt ended for a reason that says nothing of the node (cancel, 4xx).
        Only the half-open circuit's trial request clears the trial flag."""
        with self.lock:
            self.in_flight = max(0, self.in_flight - 1)
            if trial:
                self.trial_in_flight = False
            if ok is None:
                return
            if ok:
                self.consecutive_failures = 0
                if self.circuit is not Circuit.CLOSED:
                    self.circuit = Circuit.CLOSED
                    self.trips = 0
                    self.last_error = None
                return
            self._charge_locked(error, threshold, trial)

    def charge(self, error: str, threshold: int = 3) -> None:
        """A failure observed from outside the worker (the watchdog's timeouts)."""
        with self.lock:
            self._charge_locked(error, threshold, False)

    def _charge_locked(self, error: str | None, threshold: int, trial: bool) -> None:
        self.consecutive_failures += 1
        self.last_error = error
        if trial or self.circuit is Circuit.HALF_OPEN or self.consecutive_failures >= threshold:
            self._open(time.monotonic())

    def mark_loaded(self, model: str) -> None:
        with self.lock:
            if model not in self.loaded:
                info = self.installed.get(model)
                size = info.size_bytes if info else 0
                self.loaded[model] = LoadedModel(model, size, size if self.spec.gpu else 0)
                self._changes += 1  # an in-place change: __setattr__ does not see it

    # --- breaker internals (lock held) ---

    def _open(self, now: float) -> None:
        if self.circuit is not Circuit.OPEN:
            self.trips += 1
        self.circuit = Circuit.OPEN
        self.opened_at = now

    def cooldown(self, base: float) -> float:
        return min(base * (2 ** max(0, self.trips - 1)), 120.0)

    def _maybe_half_open(self, base: float, now: float) -> None:
        if self.circuit is Circuit.OPEN and self.healthy and now - self.opened_at >= self.cooldown(base):
            self.circuit = Circuit.HALF_OPEN
