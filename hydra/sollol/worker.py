"""Per-node worker threads: run one attempt of a task on one node and stream its chunks.

The loop is short (take an assignment, run it, report the outcome through
``on_success`` / ``on_failure``); an error in one task never kills the thread.
Timeouts are the watchdog's job (attempts.py): it takes the task away from a
stalled attempt and cuts its connection, and the worker, at its next chunk or
when the connection ends, sees that it no longer owns the task.
"""
from __future__ import annotations

import base64
import collections
import logging
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

from .client import NodeClient, StreamPart, StreamSockets
from .config import SollolConfig
from .embedding import is_embedding, run_embedding
from .errors import NodeError, NodeProtocolError, RequestRejectedError
from .generate import generate_arguments, has_images, logprob_arguments, require_vision, uses_generate
from .handle import TaskState
from .node import NodeState
from .thinking import THINKING_SLACK_TOKENS, supports_thinking
from .types import Task

log = logging.getLogger("hydra.sollol.worker")

# After the first token of an attempt is handed over, this worker lets go of the interpreter lock for
# a moment: the reader (a caller's thread, the gateway's event loop) was just woken and would
# otherwise wait until this thread blocks on the socket again. Measured on the router path:
# 0.23 -> 0.08 ms from the token to the reader; on the gateway's loop 0.6 -> 0.2 ms.
FIRST_TOKEN_YIELD_S = 0.0002
ANSWER_NOW = ("Your thinking budget is used up. Using the reasoning above, stop thinking and give "
              "your final answer now.")


class RequestUnsendableError(RequestRejectedError):
    """The client library refused to build or send the request (its own validation, e.g. pydantic's
    ValidationError): the caller's request, not the node, so it is not charged, and every node would
    refuse it alike, so the task ends at once (REJECTED) instead of failing over."""


class AttemptCrashedError(NodeError):
    """A defect in Hydra's own code ended the attempt (logged with its traceback): no node is charged,
    and the task ends at once (INTERNAL): the same code would fail on any other node."""

    counts_against_node = False


FINAL_ERRORS = (RequestUnsendableError, AttemptCrashedError)  # end the task: no failover


def build_messages(task: Task) -> list[dict[str, Any]]:
    """The task's messages as sent (a ``tool`` message, an assistant's ``tool_calls`` go unchanged),
    the system prompt first, the prompt last. Images go as bytes: the client library reads a *string*
    that names an existing file as that file (``"Makefile"`` is valid base64), which would send this
    machine's files to the node; bytes it only encodes (Task.validate checked they are base64)."""
    messages = [_sendable(m) for m in task.messages] if task.messages else []
    if task.system and not any(m.get("role") == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": task.system})
    if task.prompt and task.prompt.strip():
        messages.append({"role": "user", "content": task.prompt})
    return messages


def _sendable(message: dict[str, Any]) -> dict[str, Any]:
    out = dict(message)
    images = out.get("images")
    if images:
        out["images"] = [base64.b64decode(i) if isinstance(i, str) else i for i in images]
    return out


@dataclass(frozen=True)
class Assignment:
    state: TaskState
    attempt: int
    model: str
    trial: bool      # the half-open circuit's one trial request


@dataclass(frozen=True)
class Finished:
    final: StreamPart | None
    eval_count: int | None
    eval_duration_ns: int | None
    prompt_eval_count: int | None
    load_s: float | None
    logprobs: tuple[dict[str, Any], ...] = ()   # every token's, when the task asked
    prompt_eval_duration_ns: int | None = None   # the prefill's time: prefix_cache learns the node's speed


# (task, attempt, node, model, outcome): how a worker reports the end of an attempt it still owned.
SucceededAttempt = Callable[[TaskState, int, str, str, Finished], None]
FailedAttempt = Callable[[TaskState, int, str, str, NodeError], None]
Outcome = Finished | tuple[str, Finished] | None  # done; (thinking so far, partial) at the budget; lost the task


@dataclass
class _Reading:
    """What one request has streamed so far, and where it must stop early."""

    budget: int | None          # thinking tokens allowed (None: no limit)
    answer_cap: int | None      # answer tokens allowed (None: the node's num_predict decides)
    thought: list[str] = field(default_factory=list)
    answered: int = 0
    delivered: bool = False     # the first token has reached the task
    final: StreamPart | None = None
    started: float | None = None
    logprobs: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class _Stop:
    """Stop reading this stream: the attempt's outcome is known."""

    outcome: Outcome


class NodeWorkers:
    """``slots`` threads serving one node.

    Work goes to the worker that went idle last (a stack, not a shared FIFO queue): its HTTP
    connection to the node is still open and its caches are warm. With a FIFO, a 200-slot node
    serving one request at a time hands each to the thread idle longest, which opens a new
    connection on the path to the first token (measured: +0.45 ms TTFT at 200 slots)."""

    def __init__(self, node: NodeState, client: NodeClient, config_source: Callable[[], SollolConfig], *,
                 on_success: SucceededAttempt, on_failure: FailedAttempt) -> None:
        self.node = node
        self.client = client
        self._on_success = on_success
        self._on_failure = on_failure
        self._config = config_source
        self._inboxes: list[queue.SimpleQueue[Assignment | None]] = [queue.SimpleQueue()
                                                                      for _ in range(node.spec.slots)]
        self._threads = [threading.Thread(target=self._run, args=(inbox,), name=f"sollol-worker-{node.name}-{i}",
                                          daemon=True) for i, inbox in enumerate(self._inboxes)]
        self._idle: list[queue.SimpleQueue[Assignment | None]] = []  # most recently idle last
        self._backlog: collections.deque[Assignment] = collections.deque()  # when none is idle yet
        self._think_cache: dict[str, bool] = {}
        self._vision_cache: dict[str, bool] = {}
        self._lock = threading.Lock()
        self._stopped = False
        self._running = 0                                     # threads started and not yet ended
        self._on_stopped: Callable[[], None] | None = None   # run once, when the last thread ends

    @property
    def threads(self) -> tuple[threading.Thread, ...]:
        return tuple(self._threads)

    def start(self) -> None:
        with self._lock:
            self._running = len(self._threads)
        for thread in self._threads:
            thread.start()

    def submit(self, assignment: Assignment) -> bool:
        """False once stopped: an assignment behind the stop sentinels would never run."""
        with self._lock:
            if self._stopped:
                return False
            if self._idle:
                self._idle.pop().put(assignment)
            else:  # every worker is still finishing its last task (the slot is already free)
                self._backlog.append(assignment)
            return True

    def stop(self, on_stopped: Callable[[], None] | None = None) -> None:
        """Each thread ends after the attempts already handed to it; the last one to end calls
        ``on_stopped`` (at once here when none is running)."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            self._on_stopped = on_stopped
            for inbox in self._inboxes:
                inbox.put(None)  # after any assignment already handed to it; the backlog is drained first
            now = self._running == 0
        if now and on_stopped is not None:
            on_stopped()

    def join(self, timeout: float) -> list[threading.Thread]:
        """Wait up to ``timeout`` seconds in all; returns the threads still running (never the caller's)."""
        deadline = time.monotonic() + timeout
        me = threading.current_thread()
        for thread in self._threads:
            if thread is not me and thread.ident is not None:
                thread.join(max(0.0, deadline - time.monotonic()))
        return [t for t in self._threads if t is not me and t.is_alive()]

    def _thread_ended(self) -> None:
        with self._lock:
            self._running -= 1
            last = self._running == 0 and self._stopped
            on_stopped = self._on_stopped if last else None
        if on_stopped is not None:
            try:
                on_stopped()
            except Exception:
                log.warning("closing the client of %s failed", self.node.name, exc_info=True)

    def _next(self, inbox: queue.SimpleQueue[Assignment | None]) -> Assignment | None:
        with self._lock:
            if self._backlog:
                return self._backlog.popleft()
            self._idle.append(inbox)
        return inbox.get()

    def _run(self, inbox: queue.SimpleQueue[Assignment | None]) -> None:
        try:
            self._serve(inbox)
        finally:
            self._thread_ended()

    def _serve(self, inbox: queue.SimpleQueue[Assignment | None]) -> None:
        try:
            self.client.prepare_thread()
        except Exception:
            log.warning("worker of %s could not prepare its HTTP client", self.node.name, exc_info=True)
        while True:
            item = self._next(inbox)
            if item is None:
                return
            try:
                self.execute(item)
            except Exception:
                log.critical("worker of %s crashed on task %s", self.node.name, item.state.id, exc_info=True)

    # --- one attempt ---

    def execute(self, a: Assignment) -> None:
        config = self._config()
        state, node = a.state, self.node
        ok: bool | None = None
        error_text: str | None = None
        try:
            if not state.is_current(a.attempt):
                return  # cancelled or timed out before it started
            done = self._run_embedding(a) if is_embedding(state.task) else self._run_stream(a)
            if done is None:
                return  # the attempt lost the task (cancel, timeout): says nothing of the node
            ok = True
            node.mark_loaded(a.model)
            self._on_success(state, a.attempt, node.name, a.model, done)
        except NodeError as exc:
            ok = False if exc.counts_against_node else None
            error_text = str(exc).removeprefix(f"node {node.name}: ")
            if not state.is_current(a.attempt):
                ok = None  # the watchdog already charged the node for this attempt
            log.debug("node=%s model=%s task=%s attempt=%d failed: %s", node.name, a.model, state.id,
                      a.attempt, error_text)
            self._on_failure(state, a.attempt, node.name, a.model, exc)
        except Exception as exc:  # none may leave an attempt unended: its task would wait for the watchdog
            log.exception("node=%s model=%s task=%s attempt=%d: Hydra failed running the attempt", node.name,
                          a.model, state.id, a.attempt)
            crashed = AttemptCrashedError(f"Hydra failed running this attempt ({type(exc).__name__}: {exc}); "
                                          "this is a defect in Hydra, logged with its traceback", node=node.name)
            self._on_failure(state, a.attempt, node.name, a.model, crashed)
        finally:
            node.end(ok=ok, error=error_text, threshold=config.breaker_threshold, trial=a.trial)

    def _run_embedding(self, a: Assignment) -> Finished | None:
        """An embedding task: one /api/embed request, its vectors the whole answer (embedding.py)."""
        answer = run_embedding(self.client, a.state, a.attempt, a.model)
        if answer is None:
            return None
        load_s = answer.load_duration_ns / 1e9 if answer.load_duration_ns else None
        return Finished(None, 0, None, answer.prompt_eval_count, load_s)  # it generates no tokens: 0, not unknown

    def _think_param(self, task: Task, model: str) -> bool | str | None:
        """Never send ``think`` to a model that cannot think (Ollama answers 400); an explicit
        ``think=False`` does go to a thinking model, which would otherwise think by default."""
        if task.think is None:
            return None
        if model not in self._think_cache:
            try:
                caps = self.client.capabilities(model)
            except NodeError:  # the node is struggling: decide by the name this time, ask again next time
                return task.think if supports_thinking(model) else None
            self._think_cache[model] = supports_thinking(model, caps)
        return task.think if self._think_cache[model] else None

    def _run_stream(self, a: Assignment) -> Finished | None:
        task = a.state.task
        if has_images(task):
            require_vision(self.client.capabilities, self._vision_cache, a.model, self.node.name)
        if uses_generate(task):
            return self._run_generate(a)
        so_far = a.state.continuation()
        if so_far:
            return self._continue(a, so_far)
        options = dict(task.options)
        messages = build_messages(task)
        think = self._think_param(task, a.model)
        budget = task.thinking_budget if think else None
        if task.max_tokens:
            # Ollama counts thinking in num_predict; max_tokens is the answer's length, so thinking gets its own room.
            options["num_predict"] = task.max_tokens + (budget or 0) + (THINKING_SLACK_TOKENS if budget else 0)
        # With thinking on, num_predict has room for the thinking too; the answer itself is capped here.
        outcome = self._consume(a, messages, options, think, budget, answer_cap=task.max_tokens if budget else None)
        if outcome is None or isinstance(outcome, Finished):
            return outcome
        # The thinking budget is spent: ask again without thinking, the reasoning so far in context.
        thought, first = outcome
        messages = messages + [{"role": "assistant", "content": "", "thinking": thought},
                               {"role": "user", "content": ANSWER_NOW}]
        if task.max_tokens:
            options["num_predict"] = task.max_tokens
        second = self._consume(a, messages, options, False, None)  # explicit: thinking models think by default
        if not isinstance(second, Finished):
            return None
        return Finished(second.final, _add(first.eval_count, second.eval_count),
                        _add(first.eval_duration_ns, second.eval_duration_ns),
                        _add(first.prompt_eval_count, second.prompt_eval_count), first.load_s)

    def _run_generate(self, a: Assignment) -> Finished | None:
        """A task with /api/generate's own fields, on the node's /api/generate with all of them (generate.py).
        No thinking budget here: the budget's second request is a chat turn, which a raw prompt has not."""
        task = a.state.task
        options = dict(task.options)
        if task.max_tokens:
            options["num_predict"] = task.max_tokens
        arguments = {**generate_arguments(task), **logprob_arguments(task)}
        think = self._think_param(task, a.model)

        def opener(sockets: StreamSockets) -> Iterator[StreamPart]:
            return self.client.generate(a.model, arguments, options=options or None, think=think,
                                        keep_alive=task.keep_alive, format=task.format, sockets=sockets)
        outcome = self._consume(a, [], options, think, None, opener=opener)
        return outcome if isinstance(outcome, Finished) else None

    def _continue(self, a: Assignment, so_far: str) -> Finished | None:
        """An earlier attempt streamed part of the answer and failed: this node continues it. Ollama
        continues a trailing assistant message (it does not start a new turn), without thinking again,
        within what is left of the output budget."""
        task = a.state.task
        options = dict(task.options)
        budget = task.max_tokens or options.get("num_predict")
        if isinstance(budget, int) and budget > 0:
            options["num_predict"] = max(1, budget - len(a.state.text))
        messages = build_messages(task) + [{"role": "assistant", "content": so_far}]
        think = False if self._think_param(task, a.model) is not None else None
        outcome = self._consume(a, messages, options, think, None)
        return outcome if isinstance(outcome, Finished) else None

    def _consume(self, a: Assignment, messages: list[dict[str, Any]], options: dict[str, Any],
                 think: bool | str | None, budget: int | None, *, answer_cap: int | None = None,
                 opener: Callable[[StreamSockets], Iterator[StreamPart]] | None = None) -> Outcome:
        """Stream one request into the task. Returns Finished, (thinking, partial) at the budget, or None.

        Stopping early (budget, answer cap) closes the stream; no final chunk then carries Ollama's
        counts, so the tokens are counted here and timed by the clock."""
        state = a.state
        sockets = StreamSockets()
        if not state.set_canceller(a.attempt, sockets.cut_all):
            return None
        task = state.task
        reading = _Reading(budget, answer_cap)
        if opener is not None:  # /api/generate (_run_generate)
            stream = opener(sockets)
        else:
            stream = self.client.chat(a.model, messages, options=options or None, think=think, sockets=sockets,
                                      format=task.format, keep_alive=task.keep_alive, tools=task.tools,
                                      extra=logprob_arguments(task) or None)
        try:
            while True:
                part = self._next_part(stream)
                if part is None:
                    break
                stop = self._take(a, reading, part)
                if stop is not None:
                    return stop.outcome
        finally:
            _close(stream)
            state.set_canceller(a.attempt, None)  # this connection is done; a later cut must not touch it
        if not state.is_current(a.attempt):
            return None
        final = reading.final
        if final is None:
            raise NodeProtocolError("ended the stream without its final chunk", node=self.node.name)
        load_s = final.load_duration / 1e9 if final.load_duration else None
        return Finished(final, final.eval_count, final.eval_duration, final.prompt_eval_count, load_s,
                        tuple(reading.logprobs), final.prompt_eval_duration)

    def _next_part(self, stream: Iterator[StreamPart]) -> StreamPart | None:
        """The next part of the stream (None at its end). The client turns every failure of the node
        into a NodeError; anything else it raises is the client library refusing the request itself."""
        try:
            return next(stream)
        except StopIteration:
            return None
        except NodeError:
            raise
        except Exception as exc:
            raise RequestUnsendableError(f"the request cannot be sent: the client library refused it "
                                         f"({type(exc).__name__}: {_summary(exc)})", node=self.node.name) from exc

    def _take(self, a: Assignment, reading: _Reading, part: StreamPart) -> _Stop | None:
        """Hand one part of the stream to the task; a _Stop when reading must end here."""
        reading.started = reading.started or time.monotonic()
        if part.logprobs:
            reading.logprobs.extend(part.logprobs)
        if part.thinking:
            if reading.budget is not None and len(reading.thought) >= reading.budget:
                return _Stop(("".join(reading.thought), self._counted(len(reading.thought), reading.started)))
            reading.thought.append(part.thinking)
        if part.thinking or part.text or part.tool_calls:
            if not a.state.add(a.attempt, part.text, part.thinking, part.tool_calls):
                return _Stop(None)
            if not reading.delivered:
                reading.delivered = True  # see FIRST_TOKEN_YIELD_S
                time.sleep(FIRST_TOKEN_YIELD_S)
        if part.text:
            reading.answered += 1
            cap = reading.answer_cap
            if cap is not None and reading.answered >= cap and not part.done:
                if not a.state.is_current(a.attempt):
                    return _Stop(None)
                return _Stop(self._counted(len(reading.thought) + reading.answered, reading.started))
        if part.done:
            reading.final = part
        return None

    @staticmethod
    def _counted(tokens: int, started: float | None) -> Finished:
        elapsed_ns = int((time.monotonic() - started) * 1e9) if started else None
        return Finished(None, tokens, elapsed_ns or None, None, None)


def _close(stream: Iterator[StreamPart]) -> None:
    """NodeClient.chat's generator: closing it drops the HTTP connection, so the node stops generating."""
    if isinstance(stream, Generator):
        stream.close()


def _summary(exc: Exception) -> str:
    """An exception's text on one line, bounded (pydantic's spans several: what, where, why)."""
    return "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())[:400]


def _add(a: int | None, b: int | None) -> int | None:
    return None if a is None and b is None else (a or 0) + (b or 0)
