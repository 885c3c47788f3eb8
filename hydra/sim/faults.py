"""Fault injection: what a misbehaving Ollama looks like on the wire.

A fault is armed on a node and applies to the next ``count`` requests in its
scope (``None`` = until cleared). Several kinds can be armed at once (e.g.
``slow_first_token`` together with ``error_midstream``); arming a kind again
replaces it. Fault delays (``delay_s``) are real seconds: they are test
controls and are NOT multiplied by the node's ``time_scale`` (for ``http_429``
``delay_s`` is the Retry-After it sends, in whole seconds).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

KINDS = (
    "http_500",  # status 500 {"error": ...}
    "busy_503",  # status 503, Ollama's queue-full message
    "error_midstream",  # after N chunks an {"error": ...} NDJSON line, then end
    "drop_midstream",  # after N chunks the connection is closed (FIN), no final chunk
    "reset_midstream",  # after N chunks the connection is reset (RST), no final chunk
    "hang",  # request read, nothing ever sent (until delay_s / cleared / killed)
    "malformed_json",  # after N chunks a line that is not JSON
    "slow_first_token",  # extra delay_s before the first chunk
    "html",  # every route answers 200 text/html (captive portal, wrong service)
    "http_429",  # status 429 {"error": ...}, with Retry-After: delay_s when given (a rate-limiting proxy)
    "http_401",  # status 401 {"error": ...} (a gate in front of the node that wants other credentials)
    "model_404",  # status 404, Ollama's "model not found" for the requested model (it was removed)
)
SCOPES = ("generate", "all")
# Ollama's own message when its pending-request queue is full (two spaces).
BUSY_MESSAGE = "server busy, please try again.  maximum pending requests exceeded"
MIDSTREAM_ERROR = "an error was encountered while running the model: simulated fault (error_midstream)"
RATE_LIMIT_MESSAGE = "simulated fault (http_429): too many requests"
UNAUTHORIZED_MESSAGE = "simulated fault (http_401): unauthorized"
HTML_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>Network login</title></head>"
    "<body><h1>Please sign in to continue</h1></body></html>\n"
)


@dataclass
class Fault:
    kind: str
    count: int | None = None
    after_chunks: int = 3
    delay_s: float | None = None
    scope: str = "generate"
    # Set when the fault is cleared or replaced, so a hung request can end.
    released: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    def public(self) -> dict:
        return {
            "kind": self.kind,
            "count": self.count,
            "after_chunks": self.after_chunks,
            "delay_s": self.delay_s,
            "scope": self.scope,
        }


def make_fault(
    kind: str,
    *,
    count: int | None = None,
    after_chunks: int = 3,
    delay_s: float | None = None,
    scope: str | None = None,
) -> Fault:
    """Validate arguments; ``scope=None`` means "all" for html, else "generate"."""
    if kind not in KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(KINDS)}")
    if scope is None:
        scope = "all" if kind == "html" else "generate"
    if scope not in SCOPES:
        raise ValueError(f"unknown fault scope {scope!r}; expected 'generate' or 'all'")
    if count is not None and count < 1:
        raise ValueError(f"fault count must be >= 1 or None, got {count}")
    if after_chunks < 0:
        raise ValueError(f"after_chunks must be >= 0, got {after_chunks}")
    if delay_s is not None and delay_s < 0:
        raise ValueError(f"delay_s must be >= 0, got {delay_s}")
    if kind == "slow_first_token" and delay_s is None:
        delay_s = 1.0
    return Fault(kind, count, after_chunks, delay_s, scope)


class FaultSet:
    """The faults armed on one node; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: dict[str, Fault] = {}
        # Exhausted hang faults may still hold requests; clear() must free them.
        self._spent_hangs: list[Fault] = []

    def arm(self, fault: Fault) -> None:
        with self._lock:
            old = self._faults.pop(fault.kind, None)
            self._faults[fault.kind] = fault
        if old is not None:
            old.released.set()

    def clear(self) -> None:
        with self._lock:
            old = list(self._faults.values()) + self._spent_hangs
            self._faults.clear()
            self._spent_hangs.clear()
        for fault in old:
            fault.released.set()

    def release_waiters(self) -> None:
        """Wake hung requests (node killed) but keep the faults armed.

        Armed faults get a fresh event: the woken requests hold the old one,
        and requests after a later ``start()`` must hang again.
        """
        with self._lock:
            woken = [f.released for f in list(self._faults.values()) + self._spent_hangs]
            self._spent_hangs.clear()
            for fault in self._faults.values():
                fault.released = threading.Event()
        for event in woken:
            event.set()

    def take(self, generate_route: bool) -> dict[str, Fault]:
        """Faults that apply to one request; counts are consumed here."""
        taken: dict[str, Fault] = {}
        with self._lock:
            for kind, fault in list(self._faults.items()):
                if fault.scope == "generate" and not generate_route:
                    continue
                taken[kind] = fault
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count <= 0:
                        # Exhausted: disarm, but leave ``released`` unset so a
                        # request hanging on this very fault keeps hanging.
                        del self._faults[kind]
                        if kind == "hang":
                            self._spent_hangs.append(fault)
        return taken

    def active(self) -> list[dict]:
        with self._lock:
            return [f.public() for f in self._faults.values()]
