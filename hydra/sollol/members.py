"""The nodes a router runs: for each, its live state, HTTP client, monitor thread and worker threads.

A member is stopped in two ways. ``remove_node``: its monitor is stopped and joined, its idle workers
end at once, a worker busy with an attempt finishes that attempt first (the task is not disturbed),
and the node's HTTP client is closed once the monitor and the last worker have both ended (a poll
under way uses it until then). ``close``: the router has already ended every task (which cuts their
connections, so no worker stays blocked on a socket), so all threads end promptly; they are joined
against one deadline, and a thread still busy after it is logged and left (a daemon: it finds its
task ended, touches nothing and ends when its call returns).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from .client import NodeClient
from .config import SollolConfig
from .errors import ConfigError
from .monitor import NodeMonitor
from .node import NodeState, NodeView
from .redact import redact_url
from .types import NodeSpec
from .worker import FailedAttempt, NodeWorkers, SucceededAttempt

log = logging.getLogger("hydra.sollol")

CLOSE_JOIN_S = 5.0    # close(): how long every engine thread together may take to end


class Member:
    """Everything the router holds for one node."""

    def __init__(self, spec: NodeSpec, config_source: Callable[[], SollolConfig], *,
                 on_change: Callable[[NodeState], None], on_success: SucceededAttempt,
                 on_failure: FailedAttempt) -> None:
        config = config_source()
        self.state = NodeState(spec)
        self.poll_timeout_s = max(1.0, config.connect_timeout_s)
        self.client = NodeClient(spec, connect_timeout_s=config.connect_timeout_s,
                                 read_timeout_s=config.first_token_timeout_s + config.idle_timeout_s,
                                 poll_timeout_s=self.poll_timeout_s)
        self._stopping = threading.Lock()
        self.monitor = NodeMonitor(self.state, self.client, config_source, on_change)
        self.workers = NodeWorkers(self.state, self.client, config_source, on_success=on_success,
                                   on_failure=on_failure)

    @property
    def name(self) -> str:
        return self.state.name

    def start(self) -> None:
        self.monitor.start()
        self.workers.start()

    def stop(self) -> None:
        """Ask every thread to end; the client closes once the monitor and the last worker both have
        (the poll under way and the attempts still running use it until then). Once only: a second
        call would wait for ends that were already counted."""
        with self._stopping:
            if self.state.removed:
                return
            self.state.mark_removed()
        close = _after_both(self.client.close, self.state.name)
        self.monitor.stop(on_ended=close)
        self.workers.stop(on_stopped=close)

    def join(self, deadline: float) -> list[threading.Thread]:
        """Wait for the threads until ``deadline`` (monotonic); returns the workers still running."""
        self.monitor.join(max(0.0, deadline - time.monotonic()))
        return self.workers.join(max(0.0, deadline - time.monotonic()))


def _after_both(action: Callable[[], None], node: str) -> Callable[[], None]:
    """A callback that runs ``action`` on its second call (from whichever thread ends last)."""
    lock = threading.Lock()
    calls = [0]

    def arrive() -> None:
        with lock:
            calls[0] += 1
            last = calls[0] == 2
        if last:
            try:
                action()
            except Exception:
                log.warning("closing the client of %s failed", node, exc_info=True)
    return arrive


class Members:
    """The registry of members, by node name. Its lock is never held across I/O or a join."""

    def __init__(self, config_source: Callable[[], SollolConfig]) -> None:
        self._config = config_source
        self._lock = threading.Lock()
        self._by_name: dict[str, Member] = {}

    def add(self, member: Member) -> None:
        """Register and start a member; ConfigError (and the member's client closed) on a taken name or URL."""
        spec = member.state.spec
        with self._lock:
            taken: ConfigError | None = None
            if spec.name in self._by_name:
                taken = ConfigError("node name", spec.name, "a name no other node has")
            elif any(m.state.spec.url == spec.url for m in self._by_name.values()):
                taken = ConfigError("node url", redact_url(spec.url), "a URL not already in the cluster")
            else:
                self._by_name[spec.name] = member
        if taken is not None:
            member.client.close()
            raise taken
        member.start()

    def remove(self, name: str) -> Member:
        """Take the member out (no task is routed to it from now on), stop it and join its monitor."""
        with self._lock:
            member = self._by_name.pop(name, None)
            names = ", ".join(self._by_name) or "none"
        if member is None:
            raise ConfigError("node name", name, "one of the cluster's nodes: " + names)
        member.stop()
        member.monitor.join(member.poll_timeout_s + 1.0)  # a poll in flight ends within its timeout
        return member

    def get(self, name: str) -> Member | None:
        with self._lock:
            return self._by_name.get(name)

    def states(self) -> list[NodeState]:
        with self._lock:
            return [m.state for m in self._by_name.values()]

    def views(self) -> list[NodeView]:
        return [state.view() for state in self.states()]

    def close(self) -> None:
        """Stop every member and join its threads against one deadline (see the module's docstring)."""
        with self._lock:
            members = list(self._by_name.values())
        for member in members:
            member.stop()
        deadline = time.monotonic() + CLOSE_JOIN_S
        stuck = [t.name for member in members for t in member.join(deadline)]
        if stuck:
            log.warning("%d engine thread(s) still busy %g s after close: %s. They are daemons; each ends "
                        "when its call returns (its task has already ended)", len(stuck), CLOSE_JOIN_S,
                        ", ".join(stuck))
