"""Starting the embedded node: whether to, and doing it in the foreground or while the app is up.

The embedded node (SmolLM2-135M on llama.cpp) takes ten seconds or more to load. The app starts
it on a thread of its own (``start_in_background``), so the first page renders at once and says
the node is warming; the command line waits for it (``start_now``). Either way the node joins the
router only once it answers, so it is never seen "down" while it loads.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from hydra.config import Settings
from hydra.sollol.discovery import LOCALHOST_URL, probe
from hydra.sollol.errors import HydraError

if TYPE_CHECKING:
    from hydra.node.embedded import EmbeddedNode

log = logging.getLogger("hydra")

EMBEDDED_NAME = "embedded"
EMBEDDED_HOST, EMBEDDED_PORT = "127.0.0.1", 11435
EMBEDDED_URL = f"http://{EMBEDDED_HOST}:{EMBEDDED_PORT}"

EmbeddedPhase = Literal["off", "starting", "ready", "failed"]


@dataclass(frozen=True)
class EmbeddedStatus:
    """What the pages show of the embedded node: off, starting (since when), ready, or failed (why)."""

    phase: EmbeddedPhase
    url: str | None = None
    since: float | None = None     # wall clock of the last change
    error: str | None = None


def why_embedded(settings: Settings) -> str | None:
    """Why the embedded node should start (a phrase for the log), or None when it should not."""
    choice = settings.embedded_node
    if choice == "off":
        return None
    if choice == "on":
        return "HYDRA_EMBEDDED_NODE=on"
    host = settings.ollama_host
    if (settings.nodes or settings.discovery_cidr or (host is not None and probe(host.url))
            or (settings.discover_localhost and probe(LOCALHOST_URL))):
        return None
    return "no Ollama node configured or answering"


class EmbeddedStarter:
    """Starts the node once, tells ``on_ready(url)`` when it answers, and stops it at close."""

    def __init__(self, log_dir: Path, on_ready: Callable[[str], None]) -> None:
        self._log_path = log_dir / "embedded-node.log"
        self._on_ready = on_ready
        self._lock = threading.Lock()
        self._status = EmbeddedStatus("off")
        self._node: EmbeddedNode | None = None
        self._closed = False
        self._thread: threading.Thread | None = None
        self._done = threading.Event()

    @property
    def status(self) -> EmbeddedStatus:
        with self._lock:
            return self._status

    def start_now(self, reason: str) -> EmbeddedStatus:
        self._set(EmbeddedStatus("starting", EMBEDDED_URL, time.time()))
        self._run(reason)
        return self.status

    def start_in_background(self, reason: str) -> None:
        self._set(EmbeddedStatus("starting", EMBEDDED_URL, time.time()))
        self._thread = threading.Thread(target=self._run, args=(reason,), name="hydra-embedded-start", daemon=True)
        self._thread.start()

    def wait(self, timeout: float) -> EmbeddedStatus:
        """The status once the start has ended (ready or failed), or as it is after ``timeout``."""
        if self._thread is not None:
            self._done.wait(timeout)
        return self.status

    def _run(self, reason: str) -> None:
        from hydra.node.embedded import EmbeddedNode, EmbeddedNodeError, node_answers
        node: EmbeddedNode | None = None
        try:
            if node_answers(EMBEDDED_URL):
                log.info("embedded node already answering at %s: using it", EMBEDDED_URL)
            else:
                log.info("%s: starting the embedded node (SmolLM2-135M on llama.cpp) at %s, log in %s",
                         reason, EMBEDDED_URL, self._log_path)
                node = EmbeddedNode(host=EMBEDDED_HOST, port=EMBEDDED_PORT, log_path=self._log_path)
                with self._lock:
                    if self._closed:
                        return
                    self._node = node
                node.start()
            with self._lock:
                closed = self._closed
            if closed:  # closed while it loaded (close may have run before the process existed)
                if node is not None:
                    node.stop()
                return
            self._on_ready(EMBEDDED_URL)
            self._set(EmbeddedStatus("ready", EMBEDDED_URL, time.time()))
            log.info("embedded node ready at %s (node %r, 1 slot)", EMBEDDED_URL, EMBEDDED_NAME)
        except (EmbeddedNodeError, OSError, HydraError) as exc:  # HydraError: the router closed meanwhile
            log.error("the embedded node could not start: %s", exc)
            self._set(EmbeddedStatus("failed", EMBEDDED_URL, time.time(), str(exc)))
        finally:
            self._done.set()

    def _set(self, status: EmbeddedStatus) -> None:
        with self._lock:
            self._status = status

    def close(self) -> None:
        with self._lock:
            self._closed = True
            node, self._node = self._node, None
        if node is not None:
            node.stop()  # also ends a start that is still waiting for the node to answer
        if self._thread is not None:
            self._thread.join(timeout=15)
