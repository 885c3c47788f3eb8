"""Parsing ``/api/generate`` and ``/api/chat`` requests into a ``GenRequest`` (generation.py runs it).

Errors are Ollama's: a ``RequestError`` carries the status and message the node answers with.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from hydra.sim import textgen
from hydra.sim.models import NodeProfile, SimModel

DEFAULT_KEEP_ALIVE_S = 300.0  # Ollama's 5m
THINK_LEVELS = ("low", "medium", "high")
_GO_DURATION = re.compile(r"^([+-]?)((?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h))+$")
_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class RequestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def parse_keep_alive(value: object) -> float | None:
    """Seconds to stay loaded; None = forever (negative values, like Ollama)."""
    if value is None:
        return DEFAULT_KEEP_ALIVE_S
    if isinstance(value, bool):
        raise RequestError(400, f"invalid keep_alive value: {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            if not _GO_DURATION.match(text):
                raise RequestError(400, f'time: invalid duration "{value}"') from None
            seconds = sum(float(n) * _GO_UNITS[u] for n, u in _GO_PART.findall(text))
            if text.startswith("-"):
                seconds = -seconds
    else:
        raise RequestError(400, f"invalid keep_alive value: {value!r}")
    return None if seconds < 0 else seconds


@dataclass
class GenRequest:
    chat: bool
    label: str  # the model name as requested; Ollama echoes it back
    model: SimModel
    stream: bool
    think: bool
    key: str  # what the deterministic text is derived from
    prompt_tokens: int
    keep_alive_s: float | None
    empty: bool
    num_predict: int | None = None
    think_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    json_key: str | None = None  # with format: the answer is the JSON object {json_key: "<text>"}
    tool_call: dict | None = None  # the answer is this one call (Ollama's shape), not text


def parse(chat: bool, body: object, profile: NodeProfile) -> GenRequest:
    if not isinstance(body, dict):
        raise RequestError(400, "invalid request body: expected a JSON object")
    label = body.get("model")
    if not isinstance(label, str) or not label.strip():
        raise RequestError(400, "model is required")
    model = profile.model(label)
    if model is None:
        raise RequestError(404, f'model "{label}" not found, try pulling it first')
    think_value = body.get("think")
    if think_value is None or think_value is False:
        think = False
    elif think_value is True or think_value in THINK_LEVELS:
        think = True
    else:
        raise RequestError(400, f"invalid think value: {think_value!r} (expected true, false, low, medium or high)")
    if think and not model.thinking:
        raise RequestError(400, f'"{label}" does not support thinking')
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise RequestError(400, "options must be a JSON object")

    if chat:
        messages = body.get("messages") or []
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise RequestError(400, "messages must be a list of objects")
        texts = [str(m.get("content") or "") for m in messages]
        key = "\n".join(f"{m.get('role', 'user')}: {t}" for m, t in zip(messages, texts))
        empty, n_messages = not messages, len(messages)
    else:
        prompt = body.get("prompt") or ""
        if not isinstance(prompt, str):
            raise RequestError(400, "prompt must be a string")
        system = body.get("system") or ""
        texts = [str(system), prompt]
        key, empty, n_messages = prompt, not prompt, 0

    req = GenRequest(
        chat=chat,
        label=label,
        model=model,
        stream=body.get("stream", True) is not False,
        think=think,
        key=key,
        prompt_tokens=textgen.prompt_token_count(texts, n_messages),
        keep_alive_s=parse_keep_alive(body.get("keep_alive")),
        empty=empty,
    )
    num_predict = options.get("num_predict")
    if num_predict is not None:
        if not isinstance(num_predict, int) or isinstance(num_predict, bool):
            raise RequestError(400, f"option num_predict must be an integer, got {num_predict!r}")
        req.num_predict = num_predict if num_predict >= 0 else None  # -1/-2: unlimited
    think_tokens = options.get("sim_think_tokens")
    if think_tokens is not None:
        if not isinstance(think_tokens, int) or think_tokens < 0:
            raise RequestError(400, f"option sim_think_tokens must be an integer >= 0, got {think_tokens!r}")
        req.think_tokens = think_tokens
    stop = options.get("stop") or []
    req.stop = [stop] if isinstance(stop, str) else [s for s in stop if isinstance(s, str) and s]
    req.json_key = _json_key(body.get("format"))
    tools = body.get("tools") if chat else None
    if tools is not None and (not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools)):
        raise RequestError(400, "tools must be a list of objects")
    if tools and messages and messages[-1].get("role") == "user":
        try:
            req.tool_call = textgen.tool_call(tools[0], key)
        except ValueError as exc:
            raise RequestError(400, str(exc)) from None
    return req


def _json_key(fmt: object) -> str | None:
    """Ollama constrains the answer to JSON ("json") or to a schema: the sim answers one object,
    keyed by the schema's first property (or "answer")."""
    if fmt is None or fmt == "":
        return None
    if fmt == "json":
        return "answer"
    if isinstance(fmt, dict):
        properties = fmt.get("properties")
        return next(iter(properties), "answer") if isinstance(properties, dict) and properties else "answer"
    raise RequestError(400, f"invalid format: {fmt!r} (expected \"json\" or a JSON schema object)")
