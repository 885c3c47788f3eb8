"""Router: wires nodes, monitors, workers, the dispatcher and the watchdog; start / submit / snapshot / close.

Lock order (never reversed): a task's condition -> the dispatcher's condition.
Engine threads are daemons on purpose: ``close()`` stops and joins them, but a
program that forgets it (or a worker stuck on a hung node's socket) must not
keep the interpreter from exiting, and atexit hooks run only after non-daemon
threads end.
No lock is held across a network call: monitors and workers do I/O with only
their own thread's state in hand.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .client import NodeClient
from .config import SollolConfig
from .discovery import discover
from .errors import ConfigError, NodeError, QueueFullError, ShutdownError
from .handle import TaskHandle, TaskState
from .metrics import Distribution, RollingStats, tokens_per_second
from .monitor import NodeMonitor
from .node import NodeState, NodeView
from .rebalance import Running, plan_moves
from .routing import RouteOutcome, RouteRequest, route
from .scheduler import Dispatcher
from .snapshot import build_snapshot
from .types import (
    ClusterSnapshot,
    FailureKind,
    NodeSpec,
    RoutingDecision,
    RoutingMode,
    Task,
    TaskEvent,
    TaskStatus,
    TierEntry,
)
from .watchdog import overdue
from .worker import Assignment, Finished, NodeWorkers

log = logging.getLogger("hydra.sollol")

WATCHDOG_TICK_S = 0.1


class _Member:
    """Everything the router holds for one node."""

    def __init__(self, spec: NodeSpec, router: Router) -> None:
        config = router.config
        self.state = NodeState(spec)
        self.client = NodeClient(spec, connect_timeout_s=config.connect_timeout_s,
                                 read_timeout_s=config.first_token_timeout_s + config.idle_timeout_s,
                                 poll_timeout_s=max(1.0, config.connect_timeout_s))
        self.monitor = NodeMonitor(self.state, self.client, lambda: router.config, router._node_changed)
        self.workers = NodeWorkers(self.state, self.client, router, lambda: router.config)

    def start(self) -> None:
        self.monitor.start()
        self.workers.start()

    def stop(self) -> None:
        self.monitor.stop()
        self.workers.stop()


class Router:
    def __init__(self, nodes: Iterable[NodeSpec] = (), config: SollolConfig | None = None, *,
                 tiers: Mapping[str, Sequence[TierEntry]] | None = None,
                 classify: Callable[[str], str] | None = None) -> None:
        self._config = config or SollolConfig()
        if tiers is None or classify is None:
            from hydra import tiers as seed_tiers  # a leaf module of pure data; no cycle
            tiers = tiers if tiers is not None else seed_tiers.SEED_TIERS
            classify = classify or seed_tiers.classify
        self._tiers = {k: tuple(v) for k, v in tiers.items()}
        self._classify = classify
        self._declared = list(nodes)
        self._lock = threading.Lock()          # guards _members, _active, _listeners
        self._members: dict[str, _Member] = {}
        self._active: dict[str, TaskState] = {}
        self._listeners: list[Callable[[TaskEvent], None]] = []
        self._decisions: deque[RoutingDecision] = deque(maxlen=1000)
        self.stats = RollingStats(self._config.stats_window)
        self.distribution = Distribution()
        self._dispatcher = Dispatcher(self, lambda: self._config)
        self._stop = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name="sollol-watchdog", daemon=True)
        self._started = self._closed = False

    # --- lifecycle ---

    @property
    def config(self) -> SollolConfig:
        return self._config

    def start(self, *, wait_for_nodes_s: float = 3.0) -> Router:
        if self._started:
            return self
        specs = discover(self._config, self._declared)  # may refuse the settings: then nothing has started
        self._started = True
        for spec in specs:
            self._add_member(spec)
        deadline = time.monotonic() + wait_for_nodes_s
        for member in list(self._members.values()):
            member.monitor.wait_first_poll(max(0.0, deadline - time.monotonic()))
        self._dispatcher.start()
        self._watchdog.start()
        healthy = sum(1 for m in self._members.values() if m.state.healthy)
        log.info("SOLLOL discovered %d nodes (%d healthy): %s", len(specs), healthy,
                 ", ".join(f"{s.name}={s.url}" for s in specs) or "none")
        log.info("Default routing mode: %s", self._config.default_mode.value.upper())
        log.info("Parallel requests: %s (max concurrent: %d)",
                 "enabled" if self._config.parallel_requests else "disabled", self._config.max_concurrent_requests)
        log.info("VRAM monitoring: %s", "enabled" if self._config.vram_monitoring else "disabled")
        return self

    def close(self) -> None:
        """Stop threads; queued tasks fail with ShutdownError, running ones end interrupted."""
        if self._closed:
            return
        self._closed = True
        for state in self._dispatcher.close():
            self._finish(state, TaskStatus.FAILED, error=str(ShutdownError("the router closed before this task ran")),
                         failure=FailureKind.SHUTDOWN)
        for state in list(self._active.values()):
            self._finish(state, TaskStatus.INTERRUPTED, error="the router closed while this task ran",
                         failure=FailureKind.INTERRUPTED)
        self._stop.set()
        if self._watchdog.is_alive():
            self._watchdog.join()
        with self._lock:
            members = list(self._members.values())
        for member in members:
            member.stop()
        for member in members:
            member.monitor.join()
            member.client.close()

    def __enter__(self) -> Router:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- nodes ---

    def _add_member(self, spec: NodeSpec) -> _Member:
        with self._lock:
            if spec.name in self._members:
                raise ConfigError("node name", spec.name, "a name no other node has")
            if any(m.state.spec.url == spec.url for m in self._members.values()):
                raise ConfigError("node url", spec.url, "a URL not already in the cluster")
            member = self._members[spec.name] = _Member(spec, self)
        member.start()
        return member

    def add_node(self, spec: NodeSpec) -> None:
        if self._closed:
            raise ShutdownError("the router is closed")
        if not self._started:
            self._declared.append(spec)  # joins discovery at start()
            return
        self._add_member(spec)
        log.info("node %s added (%s)", spec.name, spec.url)

    def remove_node(self, name: str) -> None:
        with self._lock:
            member = self._members.pop(name, None)
        if member is None:
            raise ConfigError("node name", name, "one of the cluster's nodes: " + (", ".join(self._members) or "none"))
        member.state.removed = True
        member.stop()
        self.stats.forget_node(name)
        log.info("node %s removed", name)

    def nodes(self) -> list[NodeSpec]:
        with self._lock:
            return [m.state.spec for m in self._members.values()]

    def _node_changed(self, state: NodeState) -> None:
        self._dispatcher.wake()

    def node_views(self) -> list[NodeView]:
        with self._lock:
            states = [m.state for m in self._members.values()]
        cooldown = self._config.breaker_cooldown_s
        return [s.view(breaker_cooldown_s=cooldown) for s in states]

    # --- settings ---

    def update_config(self, **changes: Any) -> SollolConfig:
        if "default_mode" in changes:
            changes["default_mode"] = RoutingMode.parse(changes["default_mode"], "default_mode")
        self._config = self._config.replace(**changes)
        log.info("settings changed: %s", ", ".join(f"{k}={v}" for k, v in changes.items()))
        self._dispatcher.wake()
        return self._config

    def set_tiers(self, tiers: Mapping[str, Sequence[TierEntry]]) -> None:
        """New tier lists apply to tasks routed from now on (queued ones included)."""
        self._tiers = {k: tuple(v) for k, v in tiers.items()}
        self._dispatcher.wake()

    def subscribe(self, listener: Callable[[TaskEvent], None]) -> None:
        with self._lock:
            self._listeners.append(listener)

    def _emit(self, event: TaskEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed on %s of task %s", event.kind, event.task.id)

    # --- submitting ---

    def submit(self, task: Task) -> TaskHandle:
        if self._closed:
            raise ShutdownError("the router is closed; start a new one")
        if not self._started:
            raise ShutdownError("the router is not started; call router.start() first")
        task.validate()
        if len(self._active) >= self._config.max_queue:
            raise QueueFullError(f"{len(self._active)} tasks are waiting or running (the maximum); "
                                 "submit again when some have finished")
        mode = RoutingMode.parse(task.mode) if task.mode else self._config.default_mode
        task_type = task.task_type or self._classify(task.prompt or _last_user(task.messages))
        state = TaskState(task=task, mode=mode, task_type=task_type)
        state.on_leave_running = self._dispatcher.attempt_ended
        with self._lock:
            self._active[task.id] = state
        self._emit(TaskEvent("queued", task))
        self._dispatcher.submit(state)
        return TaskHandle(state, self._cancel)

    def _cancel(self, state: TaskState) -> bool:
        return self._finish(state, TaskStatus.CANCELLED, error="cancelled", failure=FailureKind.CANCELLED) is not None

    # --- the dispatcher's engine protocol ---

    def route_task(self, state: TaskState, views: list[NodeView], ahead: int = 0) -> RouteOutcome:
        task = state.task
        entries = ((TierEntry(task.model),) if task.model else self._tiers.get(state.task_type)
                   or self._tiers.get("general", ()))
        prompt_text = task.prompt or _last_user(task.messages)
        request = RouteRequest(
            mode=state.mode, task_type=state.task_type, entries=tuple(entries),
            min_success_rate=task.min_success_rate if task.min_success_rate is not None
            else self._config.min_success_rate,
            excluded=frozenset(state.excluded), prompt_tokens=max(1, len(prompt_text) // 4),
            max_tokens=task.max_tokens, explicit_model=bool(task.model), ahead=ahead)
        outcome = route(request, views, self._config, self.stats.estimates(), self.stats.success_rates())
        log.debug("task=%s mode=%s node=%s model=%s reason=%s", state.id, state.mode.value, outcome.node,
                  outcome.model, outcome.reason)
        return outcome

    def start_attempt(self, state: TaskState, outcome: RouteOutcome) -> bool:
        assert outcome.node is not None and outcome.model is not None
        with self._lock:
            member = self._members.get(outcome.node)
        if member is None:
            return False
        decision = RoutingDecision(
            task_id=state.id, time=time.time(), mode=state.mode, task_type=state.task_type,
            node=outcome.node, model=outcome.model, reason=outcome.reason, candidates=outcome.candidates,
            attempt=state.attempt + 1, priority=state.task.priority)
        if member.state.removed:
            return False
        trial = member.state.half_open(self._config.breaker_cooldown_s)
        attempt = state.bind(outcome.node, outcome.model, decision)
        if attempt is None:
            return False  # cancelled or expired between routing and binding
        self._decisions.append(decision)
        self.distribution.routed(outcome.node, outcome.model, state.mode.value, state.task_type)
        self._emit(TaskEvent("routed", state.task, decision=decision))
        self._emit(TaskEvent("running", state.task, node=outcome.node, model=outcome.model, attempt=attempt))
        # Counted now, not when a worker thread picks it up: the next round (often the very next
        # submit) must already see this slot taken, or it binds more tasks than the node has slots.
        member.state.begin(trial)
        if not member.workers.submit(Assignment(state, attempt, outcome.model, trial)):
            # The node was removed while this task was being bound: straight back to the queue.
            member.state.end(ok=None, trial=trial)
            if state.requeue(attempt, outcome.node, f"node {outcome.node} was removed"):
                self._dispatcher.requeue(state)
        return True

    def rebalance(self, views: list[NodeView]) -> list[tuple[TaskState, RouteOutcome]]:
        """At the tail of a backlog: end the attempts that an idle node would finish well before
        their slow node (once per task; never in reliable mode) and say where each should restart."""
        candidates: dict[str, tuple[TaskState, int, Running]] = {}
        for state in list(self._active.values()):
            first = state.first_token_mono
            if (state.status is not TaskStatus.RUNNING or state.mode is RoutingMode.RELIABLE or state.moved
                    or first is None or not state.node or not state.model):
                continue
            prompt = state.task.prompt or _last_user(state.task.messages)
            candidates[state.id] = (state, state.attempt, Running(
                state.id, state.node, state.model, len(state.text) + len(state.thinking),
                state.task.max_tokens, max(1, len(prompt) // 4), frozenset(state.excluded)))
        moves = plan_moves([c[2] for c in candidates.values()], views, self._config, self.stats.estimates())
        out = []
        for move in moves:
            state, attempt, _ = candidates[move.task_id]
            notice = (f"moved from {move.from_node} to {move.to_node}, which finishes sooner (about "
                      f"{move.estimate_s:.1f} s against {move.remaining_s:.1f} s left); the answer restarts.")
            if state.requeue(attempt, move.from_node, notice, restart_notice=notice, moved=True):
                log.info("task %s %s", state.id, notice)
                self._emit(TaskEvent("restart", state.task, node=move.from_node, notice=notice))
                out.append((state, RouteOutcome(move.to_node, move.model, f"{state.mode.value}: {notice}", ())))
        return out

    def give_up(self, state: TaskState, reason: str) -> None:
        tried = f" (tried: {'; '.join(state.errors)})" if state.errors else ""
        decision = RoutingDecision(task_id=state.id, time=time.time(), mode=state.mode, task_type=state.task_type,
                                   node=None, model=None, reason=reason, attempt=state.attempt + 1,
                                   priority=state.task.priority)
        self._decisions.append(decision)
        self._emit(TaskEvent("routed", state.task, decision=decision))
        self._finish(state, TaskStatus.FAILED, error=f"no node could run this task: {reason}{tried}. "
                     "Check the Nodes page, or add a node that has the model.", failure=FailureKind.NO_ROUTE)

    def expire(self, state: TaskState) -> None:
        self._finish(state, TaskStatus.FAILED, error=f"deadline of {state.task.deadline:g} s passed",
                     failure=FailureKind.DEADLINE)

    # --- the workers' engine protocol ---

    def attempt_succeeded(self, state: TaskState, attempt: int, node: str, model: str, done: Finished) -> None:
        ttft = (state.first_token_mono - state.attempt_started
                if state.first_token_mono and state.attempt_started else None)
        tps = tokens_per_second(done.eval_count, done.eval_duration_ns)
        self.stats.record(node, model, ok=True, ttft_s=ttft, tokens_per_s=tps, load_s=done.load_s)
        self._finish(state, TaskStatus.DONE, attempt=attempt, eval_count=done.eval_count,
                     prompt_eval_count=done.prompt_eval_count, tokens_per_s=tps)

    def attempt_failed(self, state: TaskState, attempt: int, node: str, model: str, error: NodeError) -> None:
        if not state.is_current(attempt):
            return  # the watchdog (or a cancel) already settled this attempt
        if error.counts_against_node:
            self.stats.record(node, model, ok=False)
        with self._lock:
            member = self._members.get(node)
        if member is not None:
            member.monitor.poke()  # look at the node now rather than at the next poll
        message = str(error)
        others = [v for v in self.node_views() if v.name != node and v.name not in state.excluded]
        failures = len(state.errors) + 1  # moves to a faster node are attempts but not failures
        if failures >= self._config.max_attempts or not others:
            why = "no other node to try" if not others else f"{failures} failed attempts"
            self._finish(state, TaskStatus.FAILED, attempt=attempt,
                         error=f"{message} ({why}; earlier: {'; '.join(state.errors) or 'none'})",
                         failure=FailureKind.NODE_FAILED if error.counts_against_node else FailureKind.REJECTED)
            return
        notice = ""
        if state.first_token_mono is not None:
            notice = f"{node} failed mid-answer ({message}); the answer restarts on another node."
        if state.requeue(attempt, node, message, restart_notice=notice):
            self.distribution.failover()
            log.info("task %s fails over from %s: %s", state.id, node, message)
            if notice:
                self._emit(TaskEvent("restart", state.task, node=node, notice=notice))
            self._dispatcher.requeue(state)

    def _finish(self, state: TaskState, status: TaskStatus, **kwargs: Any):
        result = state.finish(status, **kwargs)
        if result is None:
            return None
        with self._lock:
            self._active.pop(state.id, None)
        self.distribution.finished(status.value)
        self._emit(TaskEvent("finished", state.task, result=result))
        return result

    # --- watchdog: first-token, idle and deadline timeouts ---

    def _watch(self) -> None:
        while not self._stop.wait(WATCHDOG_TICK_S):
            try:
                self.check_timeouts(time.monotonic())
            except Exception:
                log.critical("watchdog crashed in a tick", exc_info=True)

    def check_timeouts(self, now: float) -> None:
        config = self._config
        for state, error in overdue(list(self._active.values()), now, config):
            if error is None:
                self.expire(state)
                continue
            attempt, node, model = state.attempt, state.node or "", state.model or ""
            with self._lock:
                member = self._members.get(node)
            if member is not None and state.is_current(attempt):
                member.state.charge(str(error).removeprefix(f"node {node}: "), config.breaker_threshold)
            self.attempt_failed(state, attempt, node, model, error)

    # --- reading ---

    def snapshot(self) -> ClusterSnapshot:
        with self._lock:
            states = [m.state for m in self._members.values()]
            active = list(self._active.values())
        return build_snapshot(self, states, active)

    def decisions(self, limit: int = 100) -> list[RoutingDecision]:
        items = list(self._decisions)
        return items[-limit:][::-1]

    def handle(self, task_id: str) -> TaskHandle | None:
        state = self._active.get(task_id)
        return TaskHandle(state, self._cancel) if state else None

    @property
    def queue_depth(self) -> int:
        return sum(1 for s in list(self._active.values()) if s.status is TaskStatus.QUEUED)

    @property
    def in_flight(self) -> int:
        return self._dispatcher.in_flight


def _last_user(messages: list[dict[str, Any]] | None) -> str:
    for message in reversed(messages or []):
        if message.get("role") == "user":
            return str(message.get("content", ""))
    return ""
