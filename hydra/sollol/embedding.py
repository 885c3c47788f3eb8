"""Embedding tasks: their checks and the one attempt a worker runs for them.

An embedding task (``task_type == "embedding"``) carries texts in ``Task.input`` instead of a prompt
and always names its model (no tier lists embedding models). It is routed like any other task (the
node that has the model, load-aware, failover on a node's failure) but its attempt is one request to
the node's ``/api/embed``, not a stream: the vectors arrive whole, so the task's "first token" is
the answer, and a failover simply asks the next node again.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import validation as checks
from .errors import TaskError

if TYPE_CHECKING:
    from .client import NodeClient
    from .handle import TaskState
    from .types import Task

EMBEDDING = "embedding"           # the task type
MAX_INPUTS = 2048                 # texts in one task (OpenAI's limit for one request)
MAX_DIMENSIONS = 1 << 16          # more than any embedding model has
# Fields a chat task sends that an embedding task must leave empty: the node's /api/embed has none of them.
_CHAT_ONLY = ("tools", "format", "think", "system", "max_tokens", "thinking_budget")


def is_embedding(task: Task) -> bool:
    return task.task_type == EMBEDDING


def check_embedding_task(task: Task) -> None:
    """Task.validate for an embedding task: TaskError naming the first field that is not allowed."""
    try:
        if task.prompt or task.messages:
            raise TaskError('task_type "embedding" takes its texts in input (Hydra.embed, /api/embed), not a '
                            "prompt or messages")
        if not isinstance(task.model, str) or not task.model.strip():
            raise TaskError("an embedding task must name its model (an embedding model such as nomic-embed-text)")
        checks.check_text(task.model, "model")
        task.input = check_inputs(task.input)
        for name in _CHAT_ONLY:
            if getattr(task, name) is not None:
                raise TaskError(f"{name} is not used by an embedding task: leave it unset")
        if task.truncate is not None:
            checks.check_bool(task.truncate, "truncate")
        if task.dimensions is not None:
            task.dimensions = checks.check_integer(task.dimensions, "dimensions", 1, MAX_DIMENSIONS)
        checks.check_keep_alive(task.keep_alive)
        task.options = checks.check_options(task.options if task.options is not None else {})
        if isinstance(task.priority, bool) or not isinstance(task.priority, int) or not 1 <= task.priority <= 10:
            raise TaskError(f"priority must be an integer from 1 to 10, got {task.priority!r}")
        if task.deadline is not None and checks.check_number(task.deadline, "deadline") <= 0:
            raise TaskError(f"deadline must be a positive number of seconds, got {task.deadline!r}")
    except checks.FieldError as exc:
        raise TaskError(str(exc)) from None


def check_inputs(value: Any, field: str = "input") -> list[str]:
    """The texts to embed: a string (one text) or a list of strings, at most MAX_INPUTS of them."""
    if isinstance(value, str):
        return [checks.check_text(value, field)]
    if not isinstance(value, (list, tuple)):
        raise checks.wrong(field, "a string or a list of strings", value)
    if len(value) > MAX_INPUTS:
        raise checks.FieldError(field, f"holds {len(value)} texts; at most {MAX_INPUTS} go in one request")
    return [checks.check_text(text, f"{field}[{i}]") for i, text in enumerate(value)]


def input_text(task: Task) -> str:
    """What the texts weigh for routing and deadlines (their tokens are counted from it)."""
    return "\n".join(task.input or ())


@dataclass(frozen=True)
class EmbedAnswer:
    """A node's answer to /api/embed: one vector per text, and what it counted."""

    embeddings: tuple[tuple[float, ...], ...]
    prompt_eval_count: int | None = None
    total_duration_ns: int | None = None
    load_duration_ns: int | None = None


def run_embedding(client: NodeClient, state: TaskState, attempt: int, model: str) -> EmbedAnswer | None:
    """One attempt of an embedding task on the worker's node: the vectors into the task's state. None when
    the attempt no longer owns the task (cancelled, timed out) when the answer came. A cancel cuts the
    request's connection, as it does a stream's."""
    from .client import StreamSockets

    task = state.task
    sockets = StreamSockets()
    if not state.set_canceller(attempt, sockets.cut_all):
        return None
    try:
        answer = client.embed(model, task.input or [], truncate=task.truncate, dimensions=task.dimensions,
                              keep_alive=task.keep_alive, options=task.options or None, sockets=sockets)
    finally:
        state.set_canceller(attempt, None)
    return answer if state.set_embeddings(attempt, answer.embeddings) else None


def as_vectors(raw: Sequence[Sequence[float]]) -> tuple[tuple[float, ...], ...]:
    """The node's vectors as immutable tuples of floats (the result is shared across threads)."""
    return tuple(tuple(float(x) for x in vector) for vector in raw)
