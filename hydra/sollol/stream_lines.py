"""A node's stream lines (plain dicts, as node_stream.py reads them) as the engine's StreamParts, and the
body of a request the ollama library builds itself (one with tools or images).

Each line is checked as the library's pydantic models checked it (a count is an integer, a text a
string, a tool call names its function), so a node that is not speaking Ollama's API still fails as
a protocol error (node_errors.py), without a model being built for every token.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class StreamPart:
    """One NDJSON line of /api/chat or /api/generate, reduced to what the engine uses. Filled in once
    where it is read (stream_lines.py) and never changed after: not frozen, because a frozen dataclass sets
    each field through object.__setattr__, and one is built for every token."""

    text: str = ""
    thinking: str = ""
    tool_calls: tuple[dict[str, Any], ...] = ()  # plain dicts: {"function": {"name": ..., "arguments": {...}}}
    done: bool = False
    done_reason: str | None = None
    eval_count: int | None = None
    eval_duration: int | None = None
    prompt_eval_count: int | None = None
    load_duration: int | None = None
    # /api/generate's final line carries the context; either route, per-token logprobs when asked
    context: tuple[int, ...] | None = None
    logprobs: tuple[dict[str, Any], ...] = ()
    prompt_eval_duration: int | None = None   # ns; with a cached prefix only the uncached part's


def _plain_calls(calls: Any) -> tuple[dict[str, Any], ...]:
    """A line's tool calls as the engine keeps them: only the function's name and arguments (what
    the library's ToolCall model kept), as fresh dicts."""
    out = []
    for call in calls:
        function = call["function"]
        name = function["name"]
        if not isinstance(name, str):
            raise TypeError(f"a tool call's name must be a string, got {name!r}")
        out.append({"function": {"name": name, "arguments": dict(function.get("arguments") or {})}})
    return tuple(out)


def library_body(path: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The body the ollama library would send for ``fields``, built by its own request model (it
    raises what it refuses to build, e.g. pydantic's ValidationError for a tool it cannot describe)."""
    from ollama._client import _copy_images, _copy_messages, _copy_tools
    from ollama._types import ChatRequest, GenerateRequest

    if path == "/api/chat":
        fields = {**fields, "messages": list(_copy_messages(fields.get("messages"))),
                  "tools": list(_copy_tools(fields.get("tools")))}
        return ChatRequest(**fields).model_dump(exclude_none=True)
    if fields.get("images"):
        fields = {**fields, "images": list(_copy_images(fields["images"]))}
    return GenerateRequest(**fields).model_dump(exclude_none=True)


def _count(value: Any) -> int | None:
    """A count or duration of Ollama's (an integer), or None when absent; anything else is not its API."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise TypeError(f"expected an integer, got {value!r}")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    raise TypeError(f"expected a string, got {value!r}")


def _final(part: dict[str, Any]) -> StreamPart:
    """The last line's counts (no other line carries them in Ollama's API), checked as the library's
    models checked them; text and the rest are filled in by the caller."""
    return StreamPart(done=True, done_reason=part.get("done_reason"), eval_count=_count(part.get("eval_count")),
                      eval_duration=_count(part.get("eval_duration")),
                      prompt_eval_count=_count(part.get("prompt_eval_count")),
                      load_duration=_count(part.get("load_duration")),
                      prompt_eval_duration=_count(part.get("prompt_eval_duration")))


def chat_part(part: dict[str, Any]) -> StreamPart:
    out = _final(part) if part.get("done") else StreamPart()
    message = part.get("message")
    if message is not None:
        out.text, out.thinking = _text(message.get("content")), _text(message.get("thinking"))
        calls = message.get("tool_calls")
        if calls:
            out.tool_calls = _plain_calls(calls)
    logprobs = part.get("logprobs")
    if logprobs:
        out.logprobs = tuple(_logprob(p) for p in logprobs)
    return out


def generate_part(part: dict[str, Any]) -> StreamPart:
    out = _final(part) if part.get("done") else StreamPart()
    out.text, out.thinking = _text(part.get("response")), _text(part.get("thinking"))
    context = part.get("context")
    if context is not None:
        out.context = tuple(_count(t) or 0 for t in context)
    logprobs = part.get("logprobs")
    if logprobs:
        out.logprobs = tuple(_logprob(p) for p in logprobs)
    return out


def _logprob(entry: dict[str, Any]) -> dict[str, Any]:
    """A token's logprob as the library's Logprob model kept it: token, logprob, top_logprobs when given."""
    out: dict[str, Any] = {"token": _text(entry["token"]), "logprob": float(entry["logprob"])}
    top = entry.get("top_logprobs")
    if top is not None:
        out["top_logprobs"] = [{"token": _text(t["token"]), "logprob": float(t["logprob"])} for t in top]
    return out
