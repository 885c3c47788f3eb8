"""``SimNode``: one simulated Ollama host listening on a 127.x.y.z address.

Network rule: a node only ever binds an address in 127.0.0.0/8. Linux routes
the whole block to the loopback interface, so 127.0.0.2:11434 and
127.0.0.3:11434 are two distinct "hosts" on one machine.

``kill()`` closes the listening socket (new connects are refused) and shuts
down every open connection (streams end abruptly); ``restart()`` listens again
on the same address with a fresh state: no model loaded, no fault armed.
Counters in ``stats()`` survive restarts, so tests can see what happened.
"""
from __future__ import annotations

import ipaddress
import logging
import socket
import socketserver
import sys
import threading
from http.server import ThreadingHTTPServer
from types import TracebackType
from typing import Self

from hydra.sim.engine import SimEngine, Stats
from hydra.sim.faults import FaultSet, make_fault
from hydra.sim.handler import SimHandler
from hydra.sim.models import NodeProfile

log = logging.getLogger("hydra.sim")

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


def check_loopback(host: str) -> str:
    """Return ``host`` if it is a 127.0.0.0/8 address, else raise ValueError."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"host {host!r} is not an IP address; simulated nodes only bind 127.0.0.0/8") from None
    if addr.version != 4 or addr not in LOOPBACK:
        raise ValueError(f"host {host} is outside 127.0.0.0/8; simulated nodes only bind loopback addresses")
    return host


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` right now (another process may still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((check_loopback(host), 0))
        return int(s.getsockname()[1])


class _Life:
    """What one listening period owns; replaced on every (re)start."""

    def __init__(self, engine: SimEngine, stopped: threading.Event) -> None:
        self.engine = engine
        self.stopped = stopped
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()

    def register(self, conn: socket.socket) -> bool:
        with self._lock:
            if self.stopped.is_set():
                return False
            self._conns.add(conn)
            return True

    def unregister(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.discard(conn)

    def cut_all(self) -> None:
        # shutdown() rather than close(): the handler threads still own the
        # file descriptors; they see EOF / EPIPE and close them themselves.
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True  # restart() rebinds at once despite TIME_WAIT
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], node: SimNode, life: _Life) -> None:
        self.node = node
        self.life = life
        super().__init__(address, SimHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn); skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: object, client_address: object) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            log.debug("%s: connection error from %s: %s", self.node.profile.name, client_address, exc)
        else:
            log.error("%s: error serving %s", self.node.profile.name, client_address, exc_info=exc)


class SimNode:
    """A simulated Ollama server. ``port=0`` picks a free port at first start."""

    def __init__(self, profile: NodeProfile, host: str = "127.0.0.1", port: int = 0, time_scale: float = 1.0) -> None:
        if time_scale <= 0:
            raise ValueError(f"time_scale must be > 0, got {time_scale}")
        self.profile = profile
        self.host = check_loopback(host)
        self.port = port
        self.time_scale = float(time_scale)
        self.faults = FaultSet()
        self.counters = Stats()  # live, shared with request threads; stats() copies
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def name(self) -> str:
        return self.profile.name

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<SimNode {self.profile.name} {self.url} {state}>"

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> Self:
        with self._lock:
            if self._server is not None:
                return self
            stopped = threading.Event()
            life = _Life(SimEngine(self.profile, self.time_scale, stopped, self.counters), stopped)
            server = _Server((self.host, self.port), self, life)
            self.port = int(server.server_address[1])
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},  # shutdown() returns within 50 ms
                name=f"sim-{self.profile.name}",
                daemon=True,
            )
            thread.start()
            self._server, self._thread = server, thread
        log.debug("sim node %s listening on %s", self.profile.name, self.url)
        return self

    def kill(self) -> None:
        """Stop listening and cut every open connection, like a crashed host."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is None:
            return
        life: _Life = server.life
        life.stopped.set()  # every wait of every request ends now
        self.faults.release_waiters()
        life.engine.wake()
        server.shutdown()
        server.server_close()
        life.cut_all()
        if thread is not None:
            thread.join(timeout=1.0)

    def restart(self) -> SimNode:
        """Listen again on the same address, fresh: models unloaded, faults cleared."""
        self.kill()
        self.faults.clear()
        with self.counters.lock:
            self.counters.restarts += 1
        return self.start()

    def stop(self) -> None:
        self.kill()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # -- faults ----------------------------------------------------------------

    def set_fault(
        self,
        kind: str,
        *,
        count: int | None = None,
        after_chunks: int = 3,
        delay_s: float | None = None,
        scope: str | None = None,
    ) -> None:
        """Arm a fault for the next ``count`` requests (None: until cleared).

        ``scope`` "generate" (/api/generate and /api/chat) or "all" (every
        Ollama route); default "generate", except "all" for ``html``.
        """
        self.faults.arm(make_fault(kind, count=count, after_chunks=after_chunks, delay_s=delay_s, scope=scope))

    def clear_faults(self) -> None:
        """Disarm every fault and release requests hanging on one."""
        self.faults.clear()

    # -- observation -----------------------------------------------------------

    def loaded_models(self) -> list[str]:
        server = self._server
        if server is None:
            return []
        return [m.name for m, _ in server.life.engine.loaded()]

    def stats(self) -> dict:
        """Point-in-time counters (copies; safe to keep)."""
        s = self.counters
        with s.lock:
            out = {
                "name": self.profile.name,
                "url": self.url,
                "running": self.running,
                "requests": dict(s.requests),
                "connections": s.connections,
                "generations": s.generations,
                "failed": s.failed,
                "in_flight": s.in_flight,
                "max_in_flight_seen": s.max_in_flight_seen,
                "queued": s.queued,
                "max_queued_seen": s.max_queued_seen,
                "loads": dict(s.loads),
                "evictions": dict(s.evictions),
                "faults_applied": dict(s.faults_applied),
                "restarts": s.restarts,
                "received": list(s.received),
            }
        out["loaded"] = self.loaded_models()
        out["faults"] = self.faults.active()
        return out
