"""One node's live state: health, circuit breaker, models, VRAM, in-flight count.

The monitor and the workers write it; the scheduler reads ``view()`` copies.
Nothing here does I/O, so its lock is never held across a network call.

Circuit breaker: ``breaker_threshold`` consecutive failures that count
against the node (connection errors, 5xx, 503 busy, timeouts, protocol
errors; never a 4xx caused by the request) open the circuit. After a
cooldown that doubles on each re-trip (flapping nodes stay out longer) the
circuit is half-open: the first successful health poll after the cooldown
(``half_open_if_due``, the monitor's step) lets one trial task through, and a
good trial closes it. A failed poll keeps it open. Reading a view never
changes the circuit.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

from .model_names import model_key
from .types import LoadedModel, ModelInfo, NodeSpec

# Parameter counts are nominal: a node declared for 70B models holds llama3.1:70b, which Ollama
# reports as 70.6B. Within 2 % still fits; a 30B node still refuses a 32.8B model.
SIZE_SLACK = 1.02
MAX_COOLDOWN_S = 120.0


class ModelFit(NamedTuple):
    """One installed model as routing sees it on one node."""

    info: ModelInfo
    why_unfit: str | None      # None: the model fits the node
    prior_tps: float           # decode speed before any is measured
    prior_load_s: float        # cold-load time before any is measured


# model_key(name) -> the model's fit on one node
FitTable = dict[str, ModelFit]


def _prior_size_b(info: ModelInfo) -> float:
    """The size the priors use: an unknown (or tiny) size counts as 1B."""
    return info.size_b if info.size_b and info.size_b > 0.1 else 1.0


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
        """The fit table (``model_key`` -> ModelFit), built once per view when the view was made without it."""
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


@dataclass
class NodeState:
    """Written only through its methods, each under the lock. A method that changes what a view shows
    calls ``_changed()``: every dispatch round asks each node for a view, and most rounds nothing changed
    since the last, so ``view()`` hands out the same copy until then."""

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
    _removed: bool = field(default=False, repr=False)
    _fit_source: dict[str, ModelInfo] | None = field(default=None, repr=False)
    _fit: FitTable = field(default_factory=dict, repr=False)
    _changes: int = field(default=0, repr=False)       # bumped by _changed(); the view cache's key
    _view_cache: tuple[int, NodeView] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.spec.name

    def _changed(self) -> None:
        """Lock held: what a view shows has changed, so the cached view is stale."""
        self._changes += 1

    def view(self, *, breaker_cooldown_s: float | None = None, now: float | None = None) -> NodeView:
        """A frozen copy of what routing needs. Reading it changes nothing (the circuit included).
        ``breaker_cooldown_s`` and ``now`` are ignored: callers that still pass them need not change."""
        with self.lock:
            cached = self._view_cache
            if cached is not None and cached[0] == self._changes:
                return cached[1]
            vram_used = None
            if self.spec.gpu:
                vram_used = sum(m.size_vram_bytes for m in self.loaded.values()) // (1024 * 1024)
            view = NodeView(
                name=self.spec.name, url=self.spec.url, gpu=bool(self.spec.gpu), local=bool(self.spec.local),
                max_model_b=self.spec.max_model_b, slots=self.spec.slots, in_flight=self.in_flight,
                healthy=self.healthy and not self._removed, circuit=self.circuit,
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

    # --- membership ---

    @property
    def removed(self) -> bool:
        return self._removed

    @removed.setter
    def removed(self, value: bool) -> None:
        # router.py still assigns ``state.removed = True``; mark_removed() is the method to call.
        if value:
            self.mark_removed()

    def mark_removed(self) -> None:
        """The node left the cluster: its views say unhealthy from now on."""
        with self.lock:
            self._removed = True
            self._changed()

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
            self._changed()
            return not was

    def poll_failed(self, error: str) -> bool:
        """Record a failed poll; returns True when the node just became unhealthy."""
        with self.lock:
            was = self.healthy
            self.healthy = False
            self.last_error = error
            if self.circuit is Circuit.HALF_OPEN:
                self._open(time.monotonic())
            self._changed()
            return was

    def half_open_if_due(self, breaker_cooldown_s: float, now: float | None = None) -> bool:
        """The step from OPEN to HALF_OPEN: once the cooldown has passed and the node answers polls.
        Returns True when the circuit went half-open now."""
        with self.lock:
            return self._half_open_if_due(breaker_cooldown_s, time.monotonic() if now is None else now)

    def cooldown_left(self, breaker_cooldown_s: float, now: float | None = None) -> float | None:
        """Seconds until an open circuit may go half-open (0 when it may now); None when it is not open."""
        with self.lock:
            if self.circuit is not Circuit.OPEN:
                return None
            now = time.monotonic() if now is None else now
            return max(0.0, self.opened_at + self.cooldown(breaker_cooldown_s) - now)

    # --- worker side ---

    def half_open(self, breaker_cooldown_s: float) -> bool:
        """Whether the circuit is half-open (a task bound here now is its one trial); takes the
        OPEN -> HALF_OPEN step first when it is due."""
        with self.lock:
            self._half_open_if_due(breaker_cooldown_s, time.monotonic())
            return self.circuit is Circuit.HALF_OPEN

    def begin(self, trial: bool) -> None:
        with self.lock:
            self.in_flight += 1
            if trial:
                self.trial_in_flight = True
            self._changed()

    def end(self, *, ok: bool | None, error: str | None = None, threshold: int = 3, trial: bool = False) -> None:
        """ok None = the attempt ended for a reason that says nothing of the node (cancel, 4xx).
        Only the half-open circuit's trial request clears the trial flag."""
        with self.lock:
            self.in_flight = max(0, self.in_flight - 1)
            if trial:
                self.trial_in_flight = False
            self._changed()
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

    def mark_loaded(self, model: str) -> None:
        with self.lock:
            if model not in self.loaded:
                info = self.installed.get(model)
                size = info.size_bytes if info else 0
                self.loaded = {**self.loaded, model: LoadedModel(model, size, size if self.spec.gpu else 0)}
                self._changed()

    # --- breaker internals (lock held) ---

    def _charge_locked(self, error: str | None, threshold: int, trial: bool) -> None:
        self.consecutive_failures += 1
        self.last_error = error
        if trial or self.circuit is Circuit.HALF_OPEN or self.consecutive_failures >= threshold:
            self._open(time.monotonic())
        self._changed()

    def _open(self, now: float) -> None:
        if self.circuit is not Circuit.OPEN:
            self.trips += 1
        self.circuit = Circuit.OPEN
        self.opened_at = now
        self._changed()

    def cooldown(self, base: float) -> float:
        """How long the circuit stays open: ``base``, doubled on each re-trip, at most MAX_COOLDOWN_S."""
        return min(base * (2 ** max(0, self.trips - 1)), MAX_COOLDOWN_S)

    def _half_open_if_due(self, base: float, now: float) -> bool:
        if self.circuit is Circuit.OPEN and self.healthy and now - self.opened_at >= self.cooldown(base):
            self.circuit = Circuit.HALF_OPEN
            self._changed()
            return True
        return False
