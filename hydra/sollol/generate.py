"""Tasks for a node's ``/api/generate``, images, and log probabilities: what they may carry and
what they need of a node.

Ollama's ``/api/generate`` has fields ``/api/chat`` has not (``suffix``, ``raw``, ``template``,
``context``, and ``images`` beside the prompt). A task that sets any of them runs on the node's
``/api/generate`` with every one of them (worker.py): answered through chat, they would be dropped.
Such a task cannot be continued on another node after a failure mid-answer (a raw prompt, a
suffix and a context have no chat turn to continue), so it fails over only before its first token.

Images, in a task's own ``images`` or in its messages, need a model with the "vision" capability
(the node's /api/show says so): a node whose model lacks it is not sent the images
(``CapabilityMissingError``, node-specific: the next node that has the model is tried).
"""
from __future__ import annotations

import base64
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import CapabilityMissingError, TaskError
from .validation import FieldError, check_bool, check_images, check_integer, check_text, optional_text, wrong

if TYPE_CHECKING:
    from .types import Task

GENERATE_ONLY = ("suffix", "raw", "template", "context", "images")
MAX_TOP_LOGPROBS = 20  # Ollama's (and OpenAI's) limit
MAX_CONTEXT_TOKENS = 1 << 20
VISION = "vision"


def uses_generate(task: Task) -> bool:
    """Whether the task must run on the node's /api/generate: it sets a field only that route has."""
    return any(getattr(task, name) is not None for name in GENERATE_ONLY)


def has_images(task: Task) -> bool:
    """Whether the task carries an image, beside its prompt or in a message."""
    return bool(task.images) or any(m.get("images") for m in task.messages or ())


def no_vision_message(model: str) -> str:
    """Ollama's words when a model is asked to look at an image it cannot see."""
    return f'"{model}" does not support images'


def require_vision(capabilities: Callable[[str], list[str] | None], seen: dict[str, bool], model: str,
                   node: str) -> None:
    """Before a task's images go to ``node``: CapabilityMissingError (node-specific: the next node
    that has the model is tried) when its /api/show (``capabilities``, asked once per model: ``seen``)
    lists capabilities without "vision". A node that lists none (an Ollama before capabilities) is
    sent the images, as a client would. A NodeError asking fails the attempt over as usual."""
    if model not in seen:
        caps = capabilities(model)
        seen[model] = caps is None or VISION in caps
    if not seen[model]:
        message = no_vision_message(model)
        raise CapabilityMissingError(f"cannot take images (HTTP 400): {message}", node=node, status=400,
                                     detail=message)


def check_generate_fields(task: Task) -> None:
    """Task.validate's part for the fields above: TaskError naming the first one not allowed."""
    try:
        optional_text(task.suffix, "suffix")
        optional_text(task.template, "template")
        if task.raw is not None:
            check_bool(task.raw, "raw")
        if task.context is not None:
            _check_context(task.context)
        check_images(task.images, "images")
        if task.logprobs is not None:
            check_bool(task.logprobs, "logprobs")
        if task.top_logprobs is not None:
            check_integer(task.top_logprobs, "top_logprobs", 0, MAX_TOP_LOGPROBS)
    except FieldError as exc:
        raise TaskError(str(exc)) from None
    if uses_generate(task) and task.messages:
        raise TaskError(f"{', '.join(n for n in GENERATE_ONLY if getattr(task, n) is not None)} "
                        "go with a prompt (/api/generate), not with messages")


def _check_context(context: Any) -> None:
    if not isinstance(context, list):
        raise wrong("context", "a list of token ids (what an earlier /api/generate returned)", context)
    if len(context) > MAX_CONTEXT_TOKENS:
        raise FieldError("context", f"has more than {MAX_CONTEXT_TOKENS} tokens")
    for i, token in enumerate(context):
        check_integer(token, f"context[{i}]", 0, 2 ** 31 - 1)


def generate_arguments(task: Task) -> dict[str, Any]:
    """The /api/generate fields of a task, as ``NodeClient.generate`` takes them. Images go as bytes:
    the client library reads a string that names an existing file as that file (worker.build_messages)."""
    out: dict[str, Any] = {"prompt": check_text(task.prompt, "prompt")}
    for name in ("system", "suffix", "template", "context"):
        value = getattr(task, name)
        if value is not None:
            out[name] = value
    if task.raw is not None:
        out["raw"] = task.raw
    if task.images:
        out["images"] = [base64.b64decode(i) for i in task.images]
    return out


def logprob_arguments(task: Task) -> dict[str, Any]:
    """``logprobs`` and ``top_logprobs`` when the task asks for them (else nothing: older nodes)."""
    if not task.logprobs:
        return {}
    out: dict[str, Any] = {"logprobs": True}
    if task.top_logprobs:
        out["top_logprobs"] = task.top_logprobs
    return out
