"""One monitor thread per node: health (/api/version), loaded models (/api/ps), installed models (/api/tags).

Waits on ``threading.Event.wait`` so ``stop()`` returns at once; backs the poll
off exponentially while the node fails; ``poke()`` asks for a poll now (a worker
saw an error, or a node was just added). It also takes the circuit breaker's one
timed step: while the circuit is open it polls again when the cooldown ends, and
a good poll then makes the circuit half-open (``NodeState.half_open_if_due``).

Each model's capabilities come from /api/show, asked once per model and digest (a few a poll).

It also checks what attempts.py learnt of the node: ``refresh_models()`` (a
model-404) fetches /api/tags at the next poll; a node marked as refusing Hydra's
credentials is asked again at every good poll (``NodeClient.accepts_credentials``)
until it accepts them; a 429 on a poll backs the node off, and the next poll
waits for the backoff to end.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from .client import NodeClient
from .config import SollolConfig
from .eligibility import vram_low
from .errors import NodeAuthError, NodeBackoffError, NodeError
from .node import NodeState
from .types import ModelInfo

log = logging.getLogger("hydra.sollol.monitor")

TAGS_EVERY_S = 10.0  # installed models change rarely; /api/ps is polled every time
CAPABILITIES_PER_POLL = 8  # /api/show requests one poll may make (each model's capabilities, once)
DEFAULT_BACKOFF_S = 5.0  # a 429 without a Retry-After


class NodeMonitor:
    def __init__(self, state: NodeState, client: NodeClient, config_source: Callable[[], SollolConfig],
                 on_change: Callable[[NodeState], None]) -> None:
        self.state = state
        self.client = client
        self._config = config_source
        self._on_change = on_change
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._first_poll = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sollol-monitor-{state.name}", daemon=True)
        self._last_tags = 0.0
        self._tags_due = False
        self._vram_low = False
        self._capabilities: dict[tuple[str, str], tuple[str, ...] | None] = {}  # (name, digest) -> /api/show's
        self._polls = threading.Condition()
        self._polls_started = 0
        self._polls_done = 0
        self._ended = False                                   # the thread has left its loop
        self._on_ended: Callable[[], None] | None = None     # stop()'s callback, run once it has

    def start(self) -> None:
        self._thread.start()

    def stop(self, on_ended: Callable[[], None] | None = None) -> None:
        """Ask the thread to end; ``on_ended`` runs once it has (a poll under way finishes first), at once
        when it already has or never started."""
        self._stop.set()
        self._wake.set()
        with self._polls:
            self._polls.notify_all()  # nobody waits in poll_now for a poll that will not come
            now = self._ended or self._thread.ident is None
            if not now:
                self._on_ended = on_ended
        if now and on_ended is not None:
            on_ended()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def poke(self) -> None:
        self._wake.set()

    def refresh_models(self) -> None:
        """Fetch the node's model list at a poll now (it said it lacks a model its list showed)."""
        self._tags_due = True
        self._wake.set()

    def request_poll(self) -> int:
        """Ask for a poll now; the ticket for ``wait_poll``: the count of polls ended once one that
        started after this call has ended (one under way may have asked /api/ps before the change)."""
        with self._polls:
            self._wake.set()
            return self._polls_started + 1

    def wait_poll(self, ticket: int, timeout: float) -> bool:
        """Wait (at most ``timeout`` s) for the poll of ``request_poll``'s ticket; False on timeout."""
        with self._polls:
            return self._polls.wait_for(lambda: self._polls_done >= ticket or self._stop.is_set(), timeout)

    def wait_first_poll(self, timeout: float) -> bool:
        return self._first_poll.wait(timeout)

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            with self._polls:
                self._ended = True
                on_ended, self._on_ended = self._on_ended, None
            if on_ended is not None:
                on_ended()

    def _loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            config = self._config()
            with self._polls:
                self._polls_started += 1
            try:
                ok = self.poll_once()
            except Exception:  # a bug here must not silence the node forever
                log.critical("monitor of %s crashed in a poll", self.state.name, exc_info=True)
                ok = False
            self._first_poll.set()
            with self._polls:
                self._polls_done += 1
                self._polls.notify_all()
            failures = 0 if ok else failures + 1
            wait = self._next_poll_in(config, failures)
            if not ok:
                self.state.expect_poll(time.monotonic() + wait)
            self._wake.wait(wait)
            self._wake.clear()

    def _next_poll_in(self, config: SollolConfig, failures: int) -> float:
        """The poll interval, backed off while the node fails; while it answers with its circuit open,
        no later than the end of the cooldown, so the circuit goes half-open on time."""
        if failures:
            return min(config.poll_interval_s * (2 ** failures), config.max_backoff_s)
        backoff = self.state.backoff_left()
        if backoff > config.poll_interval_s:
            return backoff  # it asked for quiet (a 429 on a poll): no poll before it ends
        left = self.state.cooldown_left(config.breaker_cooldown_s)
        return config.poll_interval_s if left is None else min(config.poll_interval_s, max(0.01, left))

    def poll_once(self) -> bool:
        """One poll; never raises for node failures. Returns whether the node answered well."""
        name = self.state.name
        try:
            version = self.client.version()
            loaded = self.client.ps()
            installed = None
            now = time.monotonic()
            if (self._tags_due or not self.state.polled or now - self._last_tags >= TAGS_EVERY_S
                    or not self.state.healthy):
                self._tags_due = False
                installed = self._with_capabilities(self.client.tags())
                self._last_tags = now
            if self.state.credentials_refused:
                self._check_credentials()
        except NodeBackoffError as exc:
            self.state.back_off(exc.retry_after_s or DEFAULT_BACKOFF_S, str(exc).removeprefix(f"node {name}: "))
            log.warning("node %s asked Hydra to back off: %s", name, exc)
            self._on_change(self.state)
            return True  # it answered: only not now
        except NodeError as exc:
            if self._stop.is_set():
                # Stopping: the node is leaving (or the router closing), so a poll cut short says
                # nothing about it. (The client this poll uses is closed only once this thread ends.)
                return False
            message = str(exc).removeprefix(f"node {name}: ")
            if isinstance(exc, NodeAuthError):
                self.state.refuse_credentials(message)
            # Warn on the way down, and on the first poll: a node bad from the start never went down.
            if self.state.poll_failed(message) or not self._first_poll.is_set():
                log.warning("node %s is unhealthy: %s", name, message)
                self._on_change(self.state)
            else:
                log.debug("node=%s poll failed again: %s", name, message)
            return False
        if self.state.poll_ok(version, installed, loaded):
            count = len(self.state.installed)
            log.info("node %s is healthy (Ollama %s, %d %s)", name, version, count, "model" if count == 1 else "models")
        if self.state.half_open_if_due(self._config().breaker_cooldown_s):
            log.info("node %s: circuit half-open after its cooldown; the next task there is its trial", name)
        self._check_vram()
        self._on_change(self.state)
        return True

    def _with_capabilities(self, installed: dict[str, ModelInfo]) -> dict[str, ModelInfo]:
        """The listing with each model's capabilities (/api/show), asked once per model and digest, at
        most CAPABILITIES_PER_POLL a poll so a node with many models is not held up; the rest are asked
        at the next polls (the listing is fetched again until every model's are known)."""
        known: dict[tuple[str, str], tuple[str, ...] | None] = {}
        out: dict[str, ModelInfo] = {}
        budget = CAPABILITIES_PER_POLL
        for name, info in installed.items():
            key = (name, info.digest)
            if key not in self._capabilities and budget > 0:
                budget -= 1
                try:
                    caps = self.client.capabilities(name)
                    self._capabilities[key] = tuple(caps) if caps is not None else None
                except NodeError as exc:  # the poll itself went well: ask again at the next one
                    log.debug("node=%s /api/show %s failed: %s", self.state.name, name, exc)
                    budget = 0
            if key in self._capabilities:
                known[key] = self._capabilities[key]
                out[name] = replace(info, capabilities=known[key])
            else:
                out[name] = info
                self._tags_due = True
        self._capabilities = known  # forget models (and digests) no longer listed
        return out

    def _check_credentials(self) -> None:
        """A node marked as refusing Hydra's credentials: ask again; say so when it accepts them."""
        if self.client.accepts_credentials():
            self.state.accept_credentials()
            log.info("node %s accepts Hydra's credentials again", self.state.name)

    def _check_vram(self) -> None:
        """Say once when a GPU node starts (and stops) refusing large loads for lack of VRAM.
        ``vram_low`` is never true for a CPU-only node, so those are never warned about."""
        config = self._config()
        view = self.state.view()
        low = vram_low(view, config)
        if low and not self._vram_low:
            log.warning("node %s is low on VRAM: %s MB free < %d MB (SOLLOL_MIN_VRAM_MB); it takes no new "
                        "large model loads until VRAM frees up", view.name, view.vram_free_mb, config.min_vram_mb)
        elif self._vram_low and not low:
            log.info("node %s has VRAM to spare again (%s MB free)", view.name, view.vram_free_mb)
        self._vram_low = low
