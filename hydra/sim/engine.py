"""The inside of one simulated Ollama: slots, model loading, keep-alive.

Like Ollama's scheduler, a request first waits for a slot (FIFO, bounded
queue), then needs its model loaded. A cold model costs its load time and
its memory (VRAM on GPU nodes, RAM on CPU nodes); when memory is short the
least-recently-used idle model is evicted, and when every loaded model is
busy the load waits until one is released. Concurrent requests for a model
that is loading wait for that one load instead of loading it again.

All simulated waits are real waits multiplied by ``time_scale``, and every
wait ends early when the node is killed (``Stopped``).
"""
from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hydra.sim.models import NodeProfile, SimModel
from hydra.sim.prefix_cache import SlotCache

FOREVER = timedelta(days=365 * 293)  # what Ollama shows for keep_alive < 0


class Stopped(Exception):
    """The node was killed while this request waited or ran."""


class Busy(Exception):
    """The pending-request queue is full (Ollama answers 503)."""


class OutOfMemory(Exception):
    """The model can never fit in this node's memory."""


RECEIVED_KEPT = 64


@dataclass
class Stats:
    """Counters of one node; they survive kill/restart (state does not)."""

    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    requests: collections.Counter = field(default_factory=collections.Counter)
    connections: int = 0  # TCP connections accepted (a client that reuses its connections opens few)
    generations: int = 0  # generate/chat requests that sent their final chunk
    failed: int = 0  # generate/chat requests that ended with an error or a fault
    in_flight: int = 0  # requests holding a slot (loading or generating)
    max_in_flight_seen: int = 0
    queued: int = 0  # requests waiting for a slot
    max_queued_seen: int = 0
    loads: collections.Counter = field(default_factory=collections.Counter)
    evictions: collections.Counter = field(default_factory=collections.Counter)
    faults_applied: collections.Counter = field(default_factory=collections.Counter)
    restarts: int = 0
    # What the latest generate/chat requests asked for (tests check what a node was sent)
    received: collections.deque = field(default_factory=lambda: collections.deque(maxlen=RECEIVED_KEPT))

    def bump(self, counter: str, key: str, n: int = 1) -> None:
        with self.lock:
            getattr(self, counter)[key] += n

    def add(self, attr: str, n: int = 1) -> None:
        with self.lock:
            setattr(self, attr, getattr(self, attr) + n)
            if attr == "in_flight":
                self.max_in_flight_seen = max(self.max_in_flight_seen, self.in_flight)
            elif attr == "queued":
                self.max_queued_seen = max(self.max_queued_seen, self.queued)


@dataclass
class _Loaded:
    model: SimModel
    ready: threading.Event
    refs: int
    last_used: float
    expires: float | None  # monotonic deadline; None = never
    expires_wall: datetime
    kv: SlotCache | None = None  # this load's KV cache (made at first use): a reload starts empty


class SimEngine:
    """Slots and loaded models of one node for one lifetime (start..kill)."""

    def __init__(self, profile: NodeProfile, time_scale: float, stopped: threading.Event, stats: Stats) -> None:
        self.profile = profile
        self.time_scale = time_scale
        self.stopped = stopped
        self.stats = stats
        self._cond = threading.Condition()
        self._active = 0
        self._waiting: collections.deque[object] = collections.deque()
        self._loaded: dict[str, _Loaded] = {}

    # -- waiting -------------------------------------------------------------

    def sleep(self, simulated_s: float) -> None:
        """Wait ``simulated_s`` scaled by time_scale; raise Stopped if killed."""
        self.sleep_until(time.monotonic() + simulated_s * self.time_scale)

    def sleep_until(self, deadline: float) -> None:
        delay = deadline - time.monotonic()
        if self.stopped.is_set() or (delay > 0 and self.stopped.wait(delay)):
            raise Stopped()

    def wake(self) -> None:
        """Called on kill so that queued requests notice at once."""
        with self._cond:
            self._cond.notify_all()

    # -- slots ---------------------------------------------------------------

    def acquire_slot(self) -> float:
        """Block until a slot is free, FIFO. Returns the real seconds waited."""
        start = time.monotonic()
        with self._cond:
            if self._active < self.profile.slots and not self._waiting:
                self._active += 1
                self.stats.add("in_flight")
                return 0.0
            if len(self._waiting) >= self.profile.max_queue:
                raise Busy()
            ticket = object()
            self._waiting.append(ticket)
            self.stats.add("queued")
            try:
                while not (self._waiting[0] is ticket and self._active < self.profile.slots):
                    if self.stopped.is_set():
                        raise Stopped()
                    self._cond.wait(0.5)
                self._active += 1
                self.stats.add("in_flight")
            finally:
                self._waiting.remove(ticket)
                self.stats.add("queued", -1)
                self._cond.notify_all()  # the next ticket may now be first
        return time.monotonic() - start

    def release_slot(self) -> None:
        with self._cond:
            self._active -= 1
            self.stats.add("in_flight", -1)
            self._cond.notify_all()

    # -- models --------------------------------------------------------------

    def _expiry(self, keep_alive_s: float | None) -> tuple[float | None, datetime]:
        now_wall = datetime.now(UTC)
        if keep_alive_s is None:
            return None, now_wall + FOREVER
        real = keep_alive_s * self.time_scale
        return time.monotonic() + real, now_wall + timedelta(seconds=real)

    def _used_mb(self) -> int:
        return sum(e.model.memory_mb for e in self._loaded.values())

    def _reap(self) -> None:
        now = time.monotonic()
        for name, e in list(self._loaded.items()):
            if e.refs == 0 and e.ready.is_set() and e.expires is not None and e.expires <= now:
                del self._loaded[name]

    def _evict_lru_idle(self) -> bool:
        idle = [e for e in self._loaded.values() if e.refs == 0 and e.ready.is_set()]
        if not idle:
            return False
        victim = min(idle, key=lambda e: e.last_used)
        del self._loaded[victim.model.name]
        self.stats.bump("evictions", victim.model.name)
        return True

    def acquire_model(self, model: SimModel, keep_alive_s: float | None) -> float:
        """Make ``model`` resident and pin it; returns simulated seconds spent loading.

        Every successful call must be paired with ``release_model``.
        """
        need = model.memory_mb
        capacity = self.profile.memory_mb
        if need > capacity:
            where = "GPU memory" if self.profile.gpu else "system memory"
            raise OutOfMemory(
                f"model requires more {where} ({need / 1024:.1f} GiB) "
                f"than is available ({capacity / 1024:.1f} GiB)"
            )
        with self._cond:
            while True:
                if self.stopped.is_set():
                    raise Stopped()
                self._reap()
                entry = self._loaded.get(model.name)
                if entry is not None:
                    entry.refs += 1
                    if entry.ready.is_set():
                        return 0.0  # warm: no load at all
                    loader = False
                    break
                if self._used_mb() + need <= capacity:
                    expires, wall = self._expiry(keep_alive_s)
                    entry = _Loaded(model, threading.Event(), 1, time.monotonic(), expires, wall)
                    self._loaded[model.name] = entry
                    loader = True
                    break
                if not self._evict_lru_idle():
                    self._cond.wait(0.5)  # every loaded model is busy: wait for a release
        if loader:
            load_s = self.profile.load_s(model)
            try:
                self.sleep(load_s)
            except Stopped:
                with self._cond:
                    self._loaded.pop(model.name, None)
                entry.ready.set()
                raise
            self.stats.bump("loads", model.name)
            entry.ready.set()
            return load_s
        start = time.monotonic()
        while not entry.ready.wait(0.2):
            if self.stopped.is_set():
                raise Stopped()
        with self._cond:
            if self._loaded.get(model.name) is not entry:
                raise Stopped()  # the load we waited for was aborted
        return (time.monotonic() - start) / self.time_scale

    def kv_cache(self, model: SimModel) -> SlotCache:
        """The KV cache of ``model``'s resident load (a caller holding it pinned; else a fresh, empty one)."""
        with self._cond:
            entry = self._loaded.get(model.name)
            if entry is None:
                return SlotCache(self.profile.host_cache_tokens)
            if entry.kv is None:
                entry.kv = SlotCache(self.profile.host_cache_tokens)
            return entry.kv

    def release_model(self, model: SimModel, keep_alive_s: float | None) -> None:
        """Unpin; the model stays resident for keep_alive (0 = unload now)."""
        with self._cond:
            entry = self._loaded.get(model.name)
            if entry is None:
                return
            entry.refs = max(0, entry.refs - 1)
            entry.last_used = time.monotonic()
            entry.expires, entry.expires_wall = self._expiry(keep_alive_s)
            self._reap()
            self._cond.notify_all()

    def unload(self, model: SimModel) -> None:
        """``keep_alive: 0`` with an empty prompt: unload now, or once idle."""
        with self._cond:
            entry = self._loaded.get(model.name)
            if entry is not None:
                entry.expires, entry.expires_wall = self._expiry(0.0)
                self._reap()
                self._cond.notify_all()

    def loaded(self) -> list[tuple[SimModel, datetime]]:
        """Resident models, most recently used first (what /api/ps lists)."""
        with self._cond:
            self._reap()
            entries = sorted(
                (e for e in self._loaded.values() if e.ready.is_set()),
                key=lambda e: e.last_used,
                reverse=True,
            )
            return [(e.model, e.expires_wall) for e in entries]

    def slots_busy(self) -> tuple[int, int]:
        with self._cond:
            return self._active, len(self._waiting)
