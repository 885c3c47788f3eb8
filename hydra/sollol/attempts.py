"""The life of a task's attempts: route, bind to a node, succeed, fail over, give up, expire, time
out, move to a faster node, and every way a task ends.

One task's path crosses the engine's parts in one direction:

    Router.submit -> Dispatcher (queue, rounds) -> Attempts.route / bind -> NodeWorkers (a worker thread)
    worker thread -> Attempts.succeeded / failed;   watchdog thread -> Attempts.check_timeouts

(Router.submit asks ``end_if_no_models`` first: a task no tier could ever place ends at once,
and a cancel or close comes from the Router too: ``cancel``, ``shut_down``.)

An attempt that failed (or timed out) and may go on elsewhere is handed to ``requeue``: the
dispatcher's push-and-wake, so the dispatcher thread routes it again; the worker or watchdog
thread that saw the failure never runs a dispatch round. Every end goes through ``_finish``: the
task leaves the table of active tasks, the listeners are told, and every end that is not done
carries its FailureKind (callers decide by it, never by the text of the error).
"""
from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from .active import ActiveTasks
from .config import SollolConfig
from .eligibility import model_info, needs_load
from .errors import (
    ModelNotFoundError,
    NodeAuthError,
    NodeBackoffError,
    NodeError,
    RequestRejectedError,
    ShutdownError,
)
from .fit import prior_load_s, prior_tps
from .handle import TaskState
from .members import Members
from .metrics import Distribution, RollingStats, tokens_per_second
from .model_names import model_key
from .node import NodeView
from .prefix_cache import Affinity, PrefixCache
from .prompt_blocks import extended
from .rebalance import Running, plan_moves
from .routing import RouteOutcome, RouteRequest, route
from .task_rules import Tiers, cannot_continue, failure_kind, movable, prompt_text, tier_entries
from .types import FailureKind, ModelInfo, RoutingDecision, TaskEvent, TaskResult, TaskStatus
from .watchdog import FirstTokenBudget, FirstTokenDeadline, first_token_deadline, overdue
from .worker import FINAL_ERRORS, Assignment, Finished, build_messages

log = logging.getLogger("hydra.sollol")

DECISIONS_KEPT = 1000
NO_NODE_ADVICE = "Check the Nodes page, or add a node that has the model."
NO_TIER_ADVICE = "Name a model (Task.model), or pass tiers= to Router."
DEFAULT_BACKOFF_S = 5.0  # a 429 that names no Retry-After


class Attempts:
    """Acts on the attempts of the router's active tasks; holds the recent routing decisions."""

    def __init__(self, *, members: Members, tasks: ActiveTasks, config: Callable[[], SollolConfig],
                 tiers: Callable[[], Tiers], stats: RollingStats, distribution: Distribution,
                 emit: Callable[[TaskEvent], None], requeue: Callable[[TaskState], None],
                 prefix: PrefixCache | None = None) -> None:
        self.prefix = prefix or PrefixCache()  # what each node's KV cache holds (prefix-aware placement)
        self._members = members
        self._tasks = tasks
        self._config = config
        self._tiers = tiers
        self._stats = stats
        self._distribution = distribution
        self._emit = emit
        self._requeue = requeue
        self._decisions: deque[RoutingDecision] = deque(maxlen=DECISIONS_KEPT)
        # task id -> its current attempt's first-token deadlines; written at bind, read by the watchdog
        self._first_token: dict[str, FirstTokenBudget] = {}
        # task id -> the latest node-specific refusal (a model missing there, no vision there): what the
        # task ends with, in the node's words, when no other node is left to try
        self._rejections: dict[str, RequestRejectedError] = {}

    def decisions(self, limit: int) -> list[RoutingDecision]:
        """The latest decisions, newest first."""
        return list(self._decisions)[-limit:][::-1]

    # --- routing and binding (the dispatcher's thread, or a submitter's) ---

    def end_if_no_models(self, state: TaskState) -> bool:
        """End at once (no route) a task that names no model when no tier lists one for its type: no
        node could ever take it, so it does not wait in the queue for one. True when it was ended."""
        if tier_entries(state.task, state.task_type, self._tiers()):
            return False
        self.give_up(state, f'no tier lists a model for task type "{state.task_type}" and the task names '
                            "none", advice=NO_TIER_ADVICE)
        return True

    def route(self, state: TaskState, views: list[NodeView], ahead: int = 0) -> RouteOutcome:
        task = state.task
        config = self._config()
        prompt_tokens, affinity = self._affinity(state, config)
        request = RouteRequest(
            mode=state.mode, task_type=state.task_type, entries=tier_entries(task, state.task_type, self._tiers()),
            min_success_rate=task.min_success_rate if task.min_success_rate is not None
            else config.min_success_rate,
            excluded=frozenset(state.excluded), prompt_tokens=prompt_tokens,
            max_tokens=task.max_tokens, explicit_model=bool(task.model), ahead=ahead,
            thinking=bool(task.think), affinity=affinity)
        outcome = route(request, views, config, self._stats.estimates(), self._stats.success_rates())
        log.debug("task=%s mode=%s node=%s model=%s reason=%s", state.id, state.mode.value, outcome.node,
                  outcome.model, outcome.reason)
        return outcome

    def _affinity(self, state: TaskState, config: SollolConfig) -> tuple[int, Affinity | None]:
        """The prompt's tokens and what the nodes' caches hold of it. With affinity off: the estimate from
        the task's own text alone, as before prefix-aware placement, and no cache."""
        if not config.prefix_affinity:
            return max(1, len(prompt_text(state.task)) // 4), None
        blocks = self.prefix.blocks_for(state.id, lambda: build_messages(state.task))
        return max(1, blocks.tokens), self.prefix.lookup(blocks, state.id)

    def _record_prefix(self, state: TaskState, node: str, model: str, done: Finished) -> None:
        """The node evaluated this prompt and generated this answer: its slot now holds both."""
        member = self._members.get(node)
        prompt = self.prefix.blocks_for(state.id, lambda: build_messages(state.task))
        # As the client sends the answer back with its next turn: one string.
        sequence = extended(prompt, [{"role": "assistant", "content": "".join(state.text)}])
        self.prefix.evaluated(node, model, member.state.spec.slots if member is not None else 1, prompt, sequence,
                              done.prompt_eval_count, done.prompt_eval_duration_ns)

    def bind(self, state: TaskState, outcome: RouteOutcome) -> bool:
        """Start an attempt where ``outcome`` says; False when nothing started (the node was removed,
        or the task was cancelled or expired since it was routed)."""
        node, model = outcome.node, outcome.model
        assert node is not None and model is not None
        member = self._members.get(node)
        if member is None or member.state.removed:
            return False
        decision = RoutingDecision(
            task_id=state.id, time=time.time(), mode=state.mode, task_type=state.task_type,
            node=node, model=model, reason=outcome.reason, candidates=outcome.candidates,
            attempt=state.attempt + 1, priority=state.task.priority)
        trial = member.state.half_open(self._config().breaker_cooldown_s)
        budget = self._first_token_budget(state, member.state.view(), model)
        attempt = state.bind(node, model, decision)
        if attempt is None:
            return False
        self._first_token[state.id] = budget._replace(attempt=attempt)
        self._decisions.append(decision)
        self._distribution.routed(node, model, state.mode.value, state.task_type)
        self._emit(TaskEvent("routed", state.task, decision=decision))
        self._emit(TaskEvent("running", state.task, node=node, model=model, attempt=attempt))
        # Counted now, not when a worker thread picks it up: the next round (often the very next
        # submit) must already see this slot taken, or it binds more tasks than the node has slots.
        member.state.begin(trial)
        if not member.workers.submit(Assignment(state, attempt, model, trial)):
            # The node was removed while this task was being bound: straight back to the queue.
            member.state.end(ok=None, trial=trial)
            if state.requeue(attempt, node, f"node {node} was removed"):
                self._requeue(state)
        return True

    def _first_token_budget(self, state: TaskState, view: NodeView, model: str) -> FirstTokenBudget:
        """How long the attempt about to start may wait for its first token, loaded and cold (watchdog.py)."""
        fit = view.fits_by_model.get(model_key(model))
        gpu = view.gpu
        load_prior = fit.prior_load_s if fit is not None else prior_load_s(gpu, _UNKNOWN_SIZE)
        tps_prior = fit.prior_tps if fit is not None else prior_tps(gpu, _UNKNOWN_SIZE)
        history = self._stats.first_token_history(view.name, model)
        # The whole prompt as sent (system, history, new turn): a long conversation's prefill takes its time.
        prompt_tokens = max(1, self.prefix.blocks_for(state.id, lambda: build_messages(state.task)).tokens)
        ceiling = self._config().first_token_timeout_s

        def deadline(cold: bool) -> FirstTokenDeadline:
            return first_token_deadline(cold=cold, history=history, prior_load_s=load_prior, prior_tps=tps_prior,
                                        prompt_tokens=prompt_tokens, ceiling_s=ceiling)
        return FirstTokenBudget(0, model, deadline(False), deadline(True), needs_load(view, model))

    def first_token_limit(self, state: TaskState) -> FirstTokenDeadline:
        """The first-token deadline of ``state``'s current attempt: the cold one when the model was not
        loaded on its node at bind, or is not now (evicted meanwhile: it loads again)."""
        budget = self._first_token.get(state.id)
        if budget is None or budget.attempt != state.attempt:
            return FirstTokenDeadline(self._config().first_token_timeout_s, "first_token_timeout_s")
        if budget.cold_at_bind:
            return budget.cold
        member = self._members.get(state.node or "")
        if member is not None and needs_load(member.state.view(), budget.model):
            return budget.cold
        return budget.warm

    def moves(self, views: list[NodeView]) -> list[tuple[TaskState, RouteOutcome]]:
        """At the tail of a backlog: end the attempts that an idle node would finish well before
        their slow node (once per task; never in reliable mode) and say where each continues."""
        candidates: dict[str, tuple[TaskState, int, Running]] = {}
        for state in self._tasks.all():
            running = movable(state)
            if running is not None:
                candidates[state.id] = (state, state.attempt, running)
        planned = plan_moves([c[2] for c in candidates.values()], views, self._config(), self._stats.estimates())
        out = []
        for move in planned:
            state, attempt, _ = candidates[move.task_id]
            notice = (f"moved from {move.from_node} to {move.to_node}, which finishes sooner (about "
                      f"{move.estimate_s:.1f} s against {move.remaining_s:.1f} s left); the answer continues there.")
            if state.requeue(attempt, move.from_node, notice, notice=notice, moved=True):
                log.info("task %s %s", state.id, notice)
                self._emit(TaskEvent("restart", state.task, node=move.from_node, notice=notice))
                out.append((state, RouteOutcome(move.to_node, move.model, f"{state.mode.value}: {notice}", ())))
        return out

    def give_up(self, state: TaskState, reason: str, *, advice: str = NO_NODE_ADVICE) -> None:
        rejection = self._rejections.get(state.id)
        if rejection is not None:  # every node that has the model refused it so: the caller's to fix
            self._reject(state, None, rejection, f"no other node to try ({reason})")
            return
        tried = f" (tried: {'; '.join(state.errors)})" if state.errors else ""
        decision = RoutingDecision(task_id=state.id, time=time.time(), mode=state.mode, task_type=state.task_type,
                                   node=None, model=None, reason=reason, attempt=state.attempt + 1,
                                   priority=state.task.priority)
        self._decisions.append(decision)
        self._emit(TaskEvent("routed", state.task, decision=decision))
        self._finish(state, TaskStatus.FAILED, error=f"no node could run this task: {reason}{tried}. {advice}",
                     failure=FailureKind.NO_ROUTE)

    def expire(self, state: TaskState) -> None:
        self._finish(state, TaskStatus.FAILED, error=f"deadline of {state.task.deadline:g} s passed",
                     failure=FailureKind.DEADLINE)

    # --- outcomes (a worker's thread; the watchdog's) ---

    def succeeded(self, state: TaskState, attempt: int, node: str, model: str, done: Finished) -> None:
        ttft = (state.first_token_mono - state.attempt_started
                if state.first_token_mono and state.attempt_started else None)
        tps = tokens_per_second(done.eval_count, done.eval_duration_ns)
        self._stats.record(node, model, ok=True, ttft_s=ttft, tokens_per_s=tps, load_s=done.load_s)
        self._record_prefix(state, node, model, done)
        # The node's speed from its own count; the task's count with what earlier attempts generated.
        eval_count = None if done.eval_count is None else done.eval_count + state.carried_tokens
        final = done.final
        extra: dict[str, Any] = {}
        if final is not None and final.context is not None:
            extra["context"] = final.context
        if done.logprobs:
            extra["logprobs"] = done.logprobs
        self._finish(state, TaskStatus.DONE, attempt=attempt, eval_count=eval_count,
                     prompt_eval_count=done.prompt_eval_count, tokens_per_s=tps, **extra)

    def failed(self, state: TaskState, attempt: int, node: str, model: str, error: NodeError) -> None:
        """Fail over to another node, or end the task when none is left to try."""
        if not state.is_current(attempt):
            return  # the watchdog (or a cancel) already settled this attempt
        if self._learnt_from(state, attempt, node, model, error):
            return
        if error.counts_against_node:
            self._stats.record(node, model, ok=False)
            self.prefix.forget(node, model)  # what the node kept of its slots is unknown now
        member = self._members.get(node)
        if member is not None:
            member.monitor.poke()  # look at the node now rather than at the next poll
        message = str(error)
        others = [v for v in self._members.views() if v.name != node and v.name not in state.excluded]
        if self._rejected(state, attempt, model, error, others):
            return
        failures = len(state.errors) + 1  # moves to a faster node are attempts but not failures
        final = isinstance(error, FINAL_ERRORS)  # the request itself, or Hydra: another node would fare the same
        if final or failures >= self._config().max_attempts or not others:
            why = ("not retried elsewhere" if final else "no other node to try" if not others
                   else f"{failures} failed attempts")
            if isinstance(error, RequestRejectedError) and not final:  # node-specific, out of attempts
                self._reject(state, attempt, error, why)
                return
            self._finish(state, TaskStatus.FAILED, attempt=attempt, failure=failure_kind(error),
                         error=f"{message} ({why}; earlier: {'; '.join(state.errors) or 'none'})")
            return
        self._fail_over(state, attempt, node, message)

    def _fail_over(self, state: TaskState, attempt: int, node: str, message: str) -> None:
        """Back to the queue, ``node`` excluded; after output, only when the answer can continue elsewhere."""
        if not state.text and not state.tool_calls and not state.thinking:
            notice = ""  # nothing streamed yet: a plain failover
        else:
            stuck = cannot_continue(state)
            if stuck:
                self._finish(state, TaskStatus.FAILED, attempt=attempt, failure=FailureKind.NODE_FAILED,
                             error=f"{message}: the node failed mid-answer and {stuck}")
                return
            notice = f"{node} failed mid-answer ({message}); the answer continues on another node."
        if state.requeue(attempt, node, message, notice=notice):
            self._distribution.failover()
            log.info("task %s fails over from %s: %s", state.id, node, message)
            if notice:
                self._emit(TaskEvent("restart", state.task, node=node, notice=notice))
            self._requeue(state)

    def _rejected(self, state: TaskState, attempt: int, model: str, error: NodeError,
                  others: list[NodeView]) -> bool:
        """A node's 4xx (never charged to it). One that another node would answer alike ends the task
        now, with the node's status and words (True); a node-specific one (model missing, no vision
        there) is remembered and fails over when another node has the model (False), else ends it too.
        Not a rejection, or one of FINAL_ERRORS (ended below as they are): False."""
        if not isinstance(error, RequestRejectedError) or isinstance(error, FINAL_ERRORS):
            return False
        if error.node_specific:
            self._rejections[state.id] = error
            named = state.task.model
            if any(model_info(v, model) is not None for v in others) or (not named and others):
                return False
        self._reject(state, attempt, error, "not retried elsewhere" if not error.node_specific
                     else "no other node has the model")
        return True

    def _reject(self, state: TaskState, attempt: int | None, error: RequestRejectedError, why: str) -> None:
        self._finish(state, TaskStatus.FAILED, attempt=attempt, failure=FailureKind.REJECTED,
                     error=f"{error} ({why}; earlier: {'; '.join(state.errors) or 'none'})",
                     rejected_status=error.status, rejected_message=error.detail)

    def _learnt_from(self, state: TaskState, attempt: int, node: str, model: str, error: NodeError) -> bool:
        """Answers that say something of the node without being its fault (never charged to its breaker):
        a 429 backs it off and the task goes back to the queue, free to return there once the backoff
        ends (True: dealt with here); a 401/403 marks it as refusing Hydra's credentials, and a model-404
        hides the model there and has its model list fetched again; those two then fail over as usual."""
        member = self._members.get(node)
        if member is None or state.first_token_mono is not None:
            return False
        message = str(error).removeprefix(f"node {node}: ")
        if isinstance(error, NodeAuthError):
            member.state.refuse_credentials(message)
        elif isinstance(error, ModelNotFoundError):
            member.state.mark_missing(model)
            member.monitor.refresh_models()
        if not isinstance(error, NodeBackoffError):
            return False
        member.state.back_off(error.retry_after_s or DEFAULT_BACKOFF_S, message)
        if len(state.errors) + 1 >= self._config().max_attempts:
            self._finish(state, TaskStatus.FAILED, attempt=attempt, failure=FailureKind.NO_ROUTE,
                         error=f"{error} ({len(state.errors) + 1} attempts; earlier: {'; '.join(state.errors) or 'none'})")
        elif state.requeue(attempt, node, str(error)):
            with state.cond:
                state.excluded.discard(node)  # the backoff keeps work away; after it, the node may take this task
            log.info("task %s goes back to the queue: %s", state.id, error)
            self._requeue(state)
        return True

    def check_timeouts(self, now: float) -> None:
        """The watchdog's tick: tasks past their deadline end; stalled attempts fail (and charge their node)."""
        config = self._config()
        for state, error in overdue(self._tasks.all(), now, config, self.first_token_limit):
            if error is None:
                self.expire(state)
                continue
            attempt, node, model = state.attempt, state.node or "", state.model or ""
            member = self._members.get(node)
            if member is not None and state.is_current(attempt):
                member.state.charge(str(error).removeprefix(f"node {node}: "), config.breaker_threshold)
            self.failed(state, attempt, node, model, error)

    # --- the caller's ends ---

    def cancel(self, state: TaskState) -> bool:
        return self._finish(state, TaskStatus.CANCELLED, error="cancelled", failure=FailureKind.CANCELLED) is not None

    def shut_down(self, states: Iterable[TaskState]) -> None:
        """The router closes: queued tasks fail (shutdown), running ones end interrupted (their
        connections are cut, which frees their workers)."""
        for state in states:
            if state.status is TaskStatus.QUEUED:
                self._finish(state, TaskStatus.FAILED, error=str(ShutdownError("the router closed before this task ran")),
                             failure=FailureKind.SHUTDOWN)
            else:
                self._finish(state, TaskStatus.INTERRUPTED, error="the router closed while this task ran",
                             failure=FailureKind.INTERRUPTED)

    def _finish(self, state: TaskState, status: TaskStatus, **kwargs: Any) -> TaskResult | None:
        result = state.finish(status, **kwargs)
        if result is None:
            return None
        self._tasks.discard(state.id)
        self._first_token.pop(state.id, None)
        self._rejections.pop(state.id, None)
        self.prefix.release(state.id)
        self._distribution.finished(status.value)
        self._emit(TaskEvent("finished", state.task, result=result))
        return result


_UNKNOWN_SIZE = ModelInfo("", None)  # the priors of a model whose size is not known
