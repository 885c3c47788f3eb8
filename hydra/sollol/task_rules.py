"""Pure rules over one task and its state, which the attempt life cycle (attempts.py) and the
router ask: the text a task is about, the models it may run on, how a failed task ends, whether its
answer can go on on another node, and whether the rebalance may move it. Nothing here changes a task.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from .embedding import input_text
from .errors import NodeError, RequestRejectedError
from .generate import uses_generate
from .handle import TaskState
from .rebalance import Running
from .types import FailureKind, RoutingMode, Task, TaskStatus, TierEntry
from .worker import AttemptCrashedError

Tiers = Mapping[str, Sequence[TierEntry]]


def prompt_text(task: Task) -> str:
    """The text a task is about: its prompt, else the last user message (an embedding task: its texts)."""
    if task.input:
        return input_text(task)
    if task.prompt:
        return task.prompt
    for message in reversed(task.messages or []):
        if message.get("role") == "user":
            return str(message.get("content", ""))
    return ""


def tier_entries(task: Task, task_type: str, tiers: Tiers) -> tuple[TierEntry, ...]:
    """The models a task may run on, in order: its own model, else its type's tier (else general's)."""
    if task.model:
        return (TierEntry(task.model),)
    return tuple(tiers.get(task_type) or tiers.get("general", ()))


def failure_kind(error: NodeError) -> FailureKind:
    """How a task whose last attempt failed with ``error`` ends: the request refused (by a node or by
    the client library) is the caller's, a crash of Hydra's own code is internal, the rest the nodes'."""
    if isinstance(error, RequestRejectedError):
        return FailureKind.REJECTED
    if isinstance(error, AttemptCrashedError):
        return FailureKind.INTERNAL
    return FailureKind.NODE_FAILED


def cannot_continue(state: TaskState) -> str:
    """Why the output streamed so far cannot go on on another node ("" when it can): a tool call
    cannot be taken back nor continued, and a JSON-mode answer would not be continued either (Ollama
    constrains each request's own output to a whole JSON document, so a second one would follow the
    first half). Thinking alone restarts; an answer of text continues (worker.py)."""
    if state.tool_calls:
        return "its tool calls cannot be continued on another node"
    if state.text and state.task.format is not None:
        return "a JSON-mode answer cannot be continued on another node"
    if (state.text or state.thinking) and uses_generate(state.task):
        return "an /api/generate answer (raw, suffix, template, context or images) cannot be continued on another node"
    return ""


def movable(state: TaskState) -> Running | None:
    """A running attempt the rebalance may move: streaming already, never moved, not reliable mode."""
    first = state.first_token_mono
    if (state.status is not TaskStatus.RUNNING or state.mode is RoutingMode.RELIABLE or state.moved
            or first is None or not state.node or not state.model or cannot_continue(state)):
        return None
    return Running(state.id, state.node, state.model, len(state.text) + len(state.thinking),
                   state.task.max_tokens, max(1, len(prompt_text(state.task)) // 4), frozenset(state.excluded))
