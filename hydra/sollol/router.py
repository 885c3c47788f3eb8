"""Router: the engine's facade. It wires the parts together and answers the public calls; the work
is theirs.

    members.py    the nodes: state, HTTP client, monitor thread, worker threads of each
    scheduler.py  the queue and the dispatch rounds (the dispatcher thread)
    attempts.py   an attempt's life: bind, succeed, fail over, give up, expire, time out, move
    watchdog.py   the thread that has attempts.py look for overdue tasks
    active.py     the unfinished tasks, and whether new ones are taken

Threads: callers (submit, cancel, reads), the dispatcher, the watchdog, one monitor per node, one
worker per node slot. Lock order (never reversed): a task's condition -> the dispatcher's condition.
No lock is held across a network call: monitors and workers do I/O with only their own thread's
state in hand. Engine threads are daemons on purpose: ``close()`` stops and joins them (see
members.py for one that does not end), but a program that forgets to close must not be kept from
exiting, and atexit hooks run only after non-daemon threads end.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Self

from .active import ActiveTasks
from .attempts import Attempts, Tiers, prompt_text
from .config import SollolConfig
from .discovery import discover
from .errors import ShutdownError
from .events import Listeners
from .handle import TaskHandle, TaskState
from .members import Member, Members
from .metrics import Distribution, RollingStats
from .node import NodeState
from .redact import redact_url
from .scheduler import Dispatcher
from .snapshot import build_snapshot
from .types import ClusterSnapshot, NodeSpec, RoutingDecision, RoutingMode, Task, TaskEvent, TierEntry
from .watchdog import Watchdog

log = logging.getLogger("hydra.sollol")

GENERAL = "general"


class Router:
    """Routes tasks over Ollama nodes. ``tiers``: the models each task type may run on, in order (a
    task that names its model needs none; without tiers, one that does not fails with no route).
    ``classify``: a task type from the prompt, for tasks that give none (without it: "general")."""

    def __init__(self, nodes: Iterable[NodeSpec] = (), config: SollolConfig | None = None, *,
                 tiers: Tiers | None = None, classify: Callable[[str], str] | None = None) -> None:
        self._config = config or SollolConfig()
        self._config_lock = threading.Lock()   # update_config's read-modify-write
        self._tiers: dict[str, tuple[TierEntry, ...]] = {k: tuple(v) for k, v in (tiers or {}).items()}
        self._classify = classify
        self._declared = list(nodes)
        self.stats = RollingStats(self._config.stats_window)
        self.distribution = Distribution()
        self._listeners = Listeners()
        self._tasks = ActiveTasks()
        self._members = Members(lambda: self._config)
        self._attempts = Attempts(
            members=self._members, tasks=self._tasks, config=lambda: self._config, tiers=lambda: self._tiers,
            stats=self.stats, distribution=self.distribution, emit=self._listeners.emit,
            requeue=lambda state: self._dispatcher.requeue(state))  # built next: requeue only runs later
        attempts = self._attempts
        self._dispatcher = Dispatcher(lambda: self._config, views=self._members.views, route=attempts.route,
                                      bind=attempts.bind, give_up=attempts.give_up, expire=attempts.expire,
                                      moves=attempts.moves)
        self._watchdog = Watchdog(attempts.check_timeouts)
        self._started = False

    # --- lifecycle ---

    @property
    def config(self) -> SollolConfig:
        return self._config

    def start(self, *, wait_for_nodes_s: float = 3.0) -> Router:
        if self._started:
            return self
        specs = discover(self._config, self._declared)  # may refuse the settings: then nothing has started
        self._started = True
        members = []
        for spec in specs:
            members.append(member := self._member(spec))
            self._members.add(member)
        deadline = time.monotonic() + wait_for_nodes_s
        for member in members:
            member.monitor.wait_first_poll(max(0.0, deadline - time.monotonic()))
        self._dispatcher.start()
        self._watchdog.start()
        healthy = sum(1 for s in self._members.states() if s.healthy)
        log.info("SOLLOL discovered %d %s (%d healthy): %s", len(specs), "node" if len(specs) == 1 else "nodes",
                 healthy, ", ".join(f"{s.name}={redact_url(s.url)}" for s in specs) or "none")
        log.info("Default routing mode: %s", self._config.default_mode.value.upper())
        log.info("Parallel requests: %s (max concurrent: %d)",
                 "enabled" if self._config.parallel_requests else "disabled", self._config.max_concurrent_requests)
        log.info("VRAM monitoring: %s", "enabled" if self._config.vram_monitoring else "disabled")
        return self

    def close(self) -> None:
        """Refuse new tasks; queued ones fail with ShutdownError, running ones end interrupted; then
        stop and join the engine threads."""
        left = self._tasks.close()  # from here on every submit is refused
        if left is None:
            return
        self._watchdog.stop()
        self._dispatcher.close()
        self._attempts.shut_down(left)
        self._members.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- nodes ---

    def _member(self, spec: NodeSpec) -> Member:
        return Member(spec, lambda: self._config, on_change=self._node_changed,
                      on_success=self._attempts.succeeded, on_failure=self._attempts.failed)

    def _node_changed(self, state: NodeState) -> None:
        """After each poll: the prefix record forgets what the node lost; the dispatcher looks again."""
        self._attempts.prefix.observe(state.view())
        self._dispatcher.wake()

    def add_node(self, spec: NodeSpec) -> None:
        if self._tasks.closed:
            raise ShutdownError("the router is closed")
        if not self._started:
            self._declared.append(spec)  # joins discovery at start()
            return
        self._members.add(self._member(spec))
        log.info("node %s added (%s)", spec.name, redact_url(spec.url))

    def remove_node(self, name: str) -> None:
        """No task is routed to the node from now on; attempts running there finish (see members.py)."""
        self._members.remove(name)
        self.stats.forget_node(name)
        self._attempts.prefix.forget_node(name)
        log.info("node %s removed", name)

    def nodes(self) -> list[NodeSpec]:
        return [s.spec for s in self._members.states()]

    def refresh_models(self, name: str) -> bool:
        """Ask node ``name``'s monitor to fetch its model list now (a model was pulled or deleted
        there); False when there is no such node."""
        member = self._members.get(name)
        if member is None:
            return False
        member.monitor.refresh_models()
        return True

    def poll_nodes(self, names: Iterable[str], timeout: float) -> bool:
        """Poll the named nodes now (their /api/ps too) and wait, at most ``timeout`` s in all, until
        each has answered: a snapshot then shows what they loaded or unloaded just before. Unknown
        names are passed over; False when a poll did not end in time."""
        monitors = [m.monitor for name in names if (m := self._members.get(name)) is not None]
        tickets = [monitor.request_poll() for monitor in monitors]  # all at once: they poll in parallel
        deadline = time.monotonic() + timeout
        answered = [monitor.wait_poll(ticket, max(0.0, deadline - time.monotonic()))  # each, no short cut
                    for monitor, ticket in zip(monitors, tickets, strict=True)]
        return all(answered)

    def has_healthy_node(self) -> bool:
        """Whether any node is healthy now. Cheap (no statistics, unlike snapshot())."""
        return any(v.healthy for v in self._members.views())

    def has_model(self, name: str) -> bool:
        """Whether a healthy node has ``name`` installed (the exact name, tag included). Cheap."""
        return any(v.healthy and name in v.installed for v in self._members.views())

    # --- settings ---

    def update_config(self, **changes: Any) -> SollolConfig:
        if "default_mode" in changes:
            changes["default_mode"] = RoutingMode.parse(changes["default_mode"], "default_mode")
        with self._config_lock:  # two updates at once must not lose either's changes
            self._config = config = self._config.replace(**changes)
        log.info("settings changed: %s", ", ".join(f"{k}={v}" for k, v in changes.items()))
        self._dispatcher.wake()
        return config

    def set_tiers(self, tiers: Mapping[str, Sequence[TierEntry]]) -> None:
        """New tier lists apply to tasks routed from now on (queued ones included)."""
        self._tiers = {k: tuple(v) for k, v in tiers.items()}
        self._dispatcher.wake()

    def subscribe(self, listener: Callable[[TaskEvent], None]) -> None:
        self._listeners.subscribe(listener)

    # --- submitting ---

    def submit(self, task: Task) -> TaskHandle:
        if self._tasks.closed:
            raise ShutdownError("the router is closed; start a new one")
        if not self._started:
            raise ShutdownError("the router is not started; call router.start() first")
        task.validate()
        mode = RoutingMode.parse(task.mode) if task.mode else self._config.default_mode
        task_type = task.task_type or (self._classify(prompt_text(task)) if self._classify else GENERAL)
        state = TaskState(task=task, mode=mode, task_type=task_type)
        state.on_leave_running = self._dispatcher.attempt_ended
        self._tasks.admit(state, self._config.max_queue)  # refused here if close() came first
        self._listeners.emit(TaskEvent("queued", task))
        if not self._attempts.end_if_no_models(state):
            self._dispatcher.submit(state)
        return TaskHandle(state, self._attempts.cancel)

    # --- reading ---

    def snapshot(self) -> ClusterSnapshot:
        return build_snapshot(self._config, self.stats, self.distribution, self._members.states(), self._tasks.all(),
                              prefix=self._attempts.prefix.snapshot(self._config.prefix_affinity))

    def decisions(self, limit: int = 100) -> list[RoutingDecision]:
        return self._attempts.decisions(limit)

    def handle(self, task_id: str) -> TaskHandle | None:
        state = self._tasks.get(task_id)
        return TaskHandle(state, self._attempts.cancel) if state else None

    @property
    def queue_depth(self) -> int:
        return self._tasks.queued()

    @property
    def in_flight(self) -> int:
        return self._dispatcher.in_flight
