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

Some answers say something true of the node without being its fault, and are
never charged to the breaker (attempts.py learns them): a 429 backs the node
off until its Retry-After (``back_off``); a 401/403 marks it as refusing
Hydra's credentials until the monitor sees it accept them again
(``refuse_credentials``); a model-404 hides that model on the node
(``mark_missing``) until its model list changes.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum

# The fit of a model on a node lives in fit.py; routing and scoring import it from here too.
from .fit import FitTable, ModelFit, fit_reason, fit_table, prior_load_s, prior_tps
from .model_names import model_key
from .types import LoadedModel, ModelDetails, ModelInfo, NodeSpec

__all__ = ["Circuit", "FitTable", "ModelFit", "NodeState", "NodeView", "breaker_cooldown", "fit_reason", "fit_table",
           "prior_load_s", "prior_tps"]

MAX_COOLDOWN_S = 120.0
FIRST_POLL_GRACE_S = 5.0     # a new node's first poll ends within its timeout (3 s by default)
MISSING_MODEL_TTL_S = 300.0  # a model a node said it lacks, while its list still shows it unchanged


def breaker_cooldown(base: float, trips: int) -> float:
    """How long a circuit that opened ``trips`` times in a row stays open: ``base``, doubled on each
    re-trip (flapping nodes stay out longer), at most MAX_COOLDOWN_S."""
    return min(base * (2 ** max(0, trips - 1)), MAX_COOLDOWN_S)


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
    # When the node may take work again, for the dispatcher's "is one due back soon?" (monotonic clock):
    backoff_until: float | None = None        # a 429 asked for quiet until then
    credentials_refused: str | None = None    # it answers 401/403 to Hydra (why), until it accepts again
    opened_at: float | None = None            # an open circuit opened then (its cooldown: breaker_cooldown)
    trips: int = 0                            # times the circuit opened in a row
    repoll_at: float | None = None            # unhealthy, and heard of again then: its first poll, or the
                                              # re-poll of a node that was healthy until its last poll

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
    failed_polls: int = 0                     # consecutive
    repoll_at: float | None = field(default_factory=lambda: time.monotonic() + FIRST_POLL_GRACE_S)
    backoff_until: float = 0.0                # monotonic
    credentials_refused: str | None = None
    # model_key -> (the model's listing when the node said it lacks it, when): hidden from routing
    missing: dict[str, tuple[ModelInfo | None, float]] = field(default_factory=dict)
    _routable: dict[str, ModelInfo] = field(default_factory=dict, repr=False)  # installed minus missing
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

    def view(self) -> NodeView:
        """A frozen copy of what routing needs. Reading it changes nothing (the circuit included)."""
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
                trial_in_flight=self.trial_in_flight, installed=self._models(),
                loaded=frozenset(self.loaded), vram_total_mb=self.spec.vram_mb if self.spec.gpu else None,
                vram_used_mb=vram_used, polled=self.polled, last_error=self.last_error, fit=self._fits(),
                backoff_until=self.backoff_until or None, credentials_refused=self.credentials_refused,
                opened_at=self.opened_at if self.circuit is Circuit.OPEN else None, trips=self.trips,
                repoll_at=self._comeback_poll())
            self._view_cache = (self._changes, view)
            return view

    def _models(self) -> dict[str, ModelInfo]:
        """Lock held. The installed models routing may use: those the node did not say it lacks."""
        return self._routable if self.missing else self.installed

    def _fits(self) -> FitTable:
        """Lock held. The fit table of the current model list, rebuilt only when that list is replaced."""
        models = self._models()
        if self._fit_source is not models:
            self._fit_source = models
            self._fit = fit_table(models, self.spec.max_model_b, bool(self.spec.gpu),
                                  self.spec.vram_mb if self.spec.gpu else None)
        return self._fit

    def _comeback_poll(self) -> float | None:
        """Lock held. When an unhealthy node is heard of again, if soon: its first poll, or the re-poll of
        a node healthy until its last poll. A node down for longer is not expected back soon."""
        if self.healthy or self._removed:
            return None
        first = self.last_seen is None and self.failed_polls == 0
        just_down = self.last_seen is not None and self.failed_polls == 1
        return self.repoll_at if first or just_down else None

    # --- membership ---

    @property
    def removed(self) -> bool:
        return self._removed

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
            self.failed_polls = 0
            self.repoll_at = None
            self.version = version or self.version
            if installed is not None:
                self.installed = installed
                self.polled = True
                self._forget_missing_listed_anew()
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
            self.failed_polls += 1
            self.last_error = error
            if self.circuit is Circuit.HALF_OPEN:
                self._open(time.monotonic())
            self._changed()
            return was

    def expect_poll(self, at: float) -> None:
        """The monitor polls this (unhealthy) node next at ``at`` (monotonic)."""
        with self.lock:
            self.repoll_at = at
            self._changed()

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
                # Its identity from the listing; its expiry is the node's to say, at the next poll of /api/ps.
                self.loaded = {**self.loaded, model: LoadedModel(
                    model, size, size if self.spec.gpu else 0, digest=info.digest if info else "",
                    details=info.details if info else ModelDetails())}
                self._changed()

    # --- what a node's answers teach, never charged to the breaker (attempts.py, the monitor) ---

    def back_off(self, seconds: float, reason: str) -> None:
        """A 429: no new work here for ``seconds`` (a later, longer backoff wins)."""
        with self.lock:
            self.backoff_until = max(self.backoff_until, time.monotonic() + seconds)
            self.last_error = reason
            self._changed()

    def backoff_left(self, now: float | None = None) -> float:
        with self.lock:
            return max(0.0, self.backoff_until - (time.monotonic() if now is None else now))

    def refuse_credentials(self, reason: str) -> None:
        """A 401/403: excluded until ``accept_credentials`` (the monitor's check sees it accept them)."""
        with self.lock:
            self.credentials_refused = reason
            self.last_error = reason
            self._changed()

    def accept_credentials(self) -> None:
        with self.lock:
            if self.credentials_refused is not None:
                self.credentials_refused = None
                self._changed()

    def mark_missing(self, model: str) -> None:
        """A model-404: routing stops seeing ``model`` here until the model list changes for it (or
        MISSING_MODEL_TTL_S passes, then one more attempt finds out)."""
        key = model_key(model)
        with self.lock:
            listed = next((info for name, info in self.installed.items() if model_key(name) == key), None)
            self.missing = {**self.missing, key: (listed, time.monotonic())}
            self._hide_missing()

    def _forget_missing_listed_anew(self) -> None:
        """Lock held, a new model list in: a mark ends when the list drops the model (the list is the
        truth again) or lists it changed (pulled again), or when it is old."""
        if not self.missing:
            return
        listed = {model_key(name): info for name, info in self.installed.items()}
        now = time.monotonic()
        self.missing = {key: (info, when) for key, (info, when) in self.missing.items()
                        if key in listed and listed[key] == info and now - when < MISSING_MODEL_TTL_S}
        self._hide_missing()

    def _hide_missing(self) -> None:
        """Lock held: rebuild the models routing may use."""
        self._routable = {name: info for name, info in self.installed.items() if model_key(name) not in self.missing}
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
        return breaker_cooldown(base, self.trips)

    def _half_open_if_due(self, base: float, now: float) -> bool:
        if self.circuit is Circuit.OPEN and self.healthy and now - self.opened_at >= self.cooldown(base):
            self.circuit = Circuit.HALF_OPEN
            self._changed()
            return True
        return False
