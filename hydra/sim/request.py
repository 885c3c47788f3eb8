"""Parsing ``/api/generate`` and ``/api/chat`` requests into a ``GenRequest`` (generation.py runs it),
and ``find_model``: which model a request names and whether the node has it, for every route.

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
# Ollama's 404 for a model the node lacks differs by route; "{name}" is the name as the request wrote it.
NOT_FOUND = "model '{name}' not found"  # embed, show and the model-management routes
NOT_FOUND_TRY_PULLING = 'model "{name}" not found, try pulling it first'  # generate and chat
MODEL_OR_NAME = ("model", "name")  # show and model management also read "name", the field's older spelling


class RequestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def find_model(body: object, profile: NodeProfile, *, not_found: str = NOT_FOUND,
               fields: tuple[str, ...] = ("model",)) -> tuple[str, SimModel]:
    """The name a request gives (as written: Ollama echoes it) and the node's model of that name;
    RequestError 400 when it names none, 404 ``not_found`` when the node lacks it."""
    name = requested_model(body, fields)
    return name, installed_model(profile, name, not_found)


def requested_model(body: object, fields: tuple[str, ...] = ("model",)) -> str:
    """The first of ``fields`` the request sets; RequestError 400 "model is required" unless a non-blank string."""
    name = next((v for v in (body.get(f) for f in fields) if v), None) if isinstance(body, dict) else None
    if not isinstance(name, str) or not name.strip():
        raise RequestError(400, "model is required")
    return name


def installed_model(profile: NodeProfile, name: str, not_found: str = NOT_FOUND) -> SimModel:
    """The node's model ``name`` resolves to (a bare name is its :latest); RequestError 404 ``not_found``."""
    model = profile.model(name)
    if model is None:
        raise RequestError(404, not_found.format(name=name))
    return model


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
    json_key: str | None = None  # with format: the answer is the JSON object {json_key: "<text>", ...}
    json_rest: dict = field(default_factory=dict)  # the schema's other properties, each with a value of its type
    tool_call: dict | None = None  # the answer is this one call (Ollama's shape), not text
    continued: int = 0  # content tokens of a trailing assistant message: the answer goes on after them
    # /api/generate's own fields, as received (a test reads them from the node's stats), and the
    # context the answer goes on from
    generate_fields: dict = field(default_factory=dict)
    context: list[int] = field(default_factory=list)
    images: int = 0  # images the request carried (only a vision model takes any)
    top_logprobs: int | None = None  # None: no logprobs asked; else alternatives per token


def parse(chat: bool, body: object, profile: NodeProfile) -> GenRequest:
    if not isinstance(body, dict):
        raise RequestError(400, "invalid request body: expected a JSON object")
    label, model = find_model(body, profile, not_found=NOT_FOUND_TRY_PULLING)
    think = _think(body, label, model)
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise RequestError(400, "options must be a JSON object")
    prompt = _chat_prompt(body) if chat else _generate_prompt(body)
    _check_capabilities(body, label, model, chat)
    extra = _generate_extras(body) if not chat else {}
    return GenRequest(
        chat=chat,
        label=label,
        model=model,
        stream=body.get("stream", True) is not False,
        think=think,
        key=prompt.key,
        prompt_tokens=textgen.prompt_token_count(prompt.texts, len(prompt.messages)),
        keep_alive_s=parse_keep_alive(body.get("keep_alive")),
        empty=prompt.empty,
        num_predict=_num_predict(options),
        think_tokens=_think_tokens(options),
        stop=_stop_sequences(options),
        json_key=_json_key(body.get("format")),
        json_rest=_json_rest(body.get("format"), prompt.key),
        tool_call=_tool_call(body.get("tools") if chat else None, prompt),
        continued=prompt.continued,
        generate_fields=extra,
        context=list(extra.get("context") or []),
        images=_image_count(body),
        top_logprobs=_top_logprobs(body),
    )


def _image_count(body: dict) -> int:
    top = body.get("images") or []
    in_messages = [m.get("images") or [] for m in body.get("messages") or [] if isinstance(m, dict)]
    return len(top) + sum(len(i) for i in in_messages)


def _check_capabilities(body: dict, label: str, model: SimModel, chat: bool) -> None:
    """Ollama's 400 for what the model cannot take: images without vision, tools it cannot call."""
    if _image_count(body) and not model.vision:
        raise RequestError(400, f'"{label}" does not support images')
    if chat and body.get("tools") and not model.tools:
        raise RequestError(400, f'"{label}" does not support tools')


def _generate_extras(body: dict) -> dict:
    """suffix, raw, template, context and images of /api/generate, type-checked as Ollama does."""
    out: dict = {}
    for name, kind in (("suffix", str), ("template", str), ("raw", bool), ("context", list), ("images", list)):
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, kind):
            raise RequestError(400, f"invalid {name}: expected a {kind.__name__}")
        out[name] = value
    if not all(isinstance(t, int) and not isinstance(t, bool) for t in out.get("context", [])):
        raise RequestError(400, "invalid context: expected a list of integers")
    return out


def _top_logprobs(body: dict) -> int | None:
    if not body.get("logprobs"):
        return None
    top = body.get("top_logprobs") or 0
    if not isinstance(top, int) or not 0 <= top <= 20:
        raise RequestError(400, "top_logprobs must be an integer from 0 to 20")
    return top


@dataclass
class _Prompt:
    key: str  # what the deterministic text is derived from
    texts: list[str]  # what the prompt's tokens are counted over
    empty: bool
    messages: list[dict] = field(default_factory=list)  # chat only
    continued: int = 0  # tokens of a trailing assistant message (chat only)


def _think(body: dict, label: str, model: SimModel) -> bool:
    value = body.get("think")
    if value is None or value is False:
        return False
    if value is not True and value not in THINK_LEVELS:
        raise RequestError(400, f"invalid think value: {value!r} (expected true, false, low, medium or high)")
    if not model.thinking:
        raise RequestError(400, f'"{label}" does not support thinking')
    return True


def _chat_prompt(body: dict) -> _Prompt:
    messages = body.get("messages") or []
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise RequestError(400, "messages must be a list of objects")
    texts = [str(m.get("content") or "") for m in messages]
    # Ollama continues a trailing assistant message instead of starting a new turn: the text is
    # that of the conversation before it, and the answer goes on after the tokens it already holds.
    head = messages
    continued = 0
    if len(messages) > 1 and messages[-1].get("role") == "assistant" and texts[-1]:
        head, continued = messages[:-1], textgen.token_count(texts[-1])
    key = "\n".join(f"{m.get('role', 'user')}: {t}" for m, t in zip(head, texts, strict=False))
    return _Prompt(key=key, texts=texts, empty=not messages, messages=messages, continued=continued)


def _generate_prompt(body: dict) -> _Prompt:
    prompt = body.get("prompt") or ""
    if not isinstance(prompt, str):
        raise RequestError(400, "prompt must be a string")
    system = body.get("system") or ""
    # Everything that shapes the answer shapes the simulated text: the same prompt with another suffix,
    # template, context or images (or raw) is another answer.
    shaping = [f"{k}={body[k]!r}" for k in ("suffix", "template", "raw", "context", "images")
               if body.get(k) not in (None, "", [])]
    key = "\n".join([prompt, *shaping]) if shaping else prompt
    texts = [str(system), prompt] if body.get("raw") else [str(system), str(body.get("template") or ""), prompt]
    return _Prompt(key=key, texts=texts, empty=not prompt and not body.get("images"))


def _num_predict(options: dict) -> int | None:
    value = options.get("num_predict")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise RequestError(400, f"option num_predict must be an integer, got {value!r}")
    return value if value >= 0 else None  # -1/-2: unlimited


def _think_tokens(options: dict) -> int | None:
    value = options.get("sim_think_tokens")
    if value is not None and (not isinstance(value, int) or value < 0):
        raise RequestError(400, f"option sim_think_tokens must be an integer >= 0, got {value!r}")
    return value


def _stop_sequences(options: dict) -> list[str]:
    stop = options.get("stop") or []
    return [stop] if isinstance(stop, str) else [s for s in stop if isinstance(s, str) and s]


def _tool_call(tools: object, prompt: _Prompt) -> dict | None:
    """The call the model answers with: the first tool's, when the last message is the user's."""
    if tools is not None and (not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools)):
        raise RequestError(400, "tools must be a list of objects")
    if not tools or not prompt.messages or prompt.messages[-1].get("role") != "user":
        return None
    try:
        return textgen.tool_call(tools[0], prompt.key)
    except ValueError as exc:
        raise RequestError(400, str(exc)) from None


def _json_key(fmt: object) -> str | None:
    """Ollama constrains the answer to JSON ("json") or to a schema: the sim answers one object whose
    text goes under the schema's first string property (else its first, else "answer")."""
    if fmt is None or fmt == "":
        return None
    if fmt == "json":
        return "answer"
    if isinstance(fmt, dict):
        properties = _properties(fmt)
        texts = [k for k, v in properties.items() if not isinstance(v, dict) or v.get("type") in (None, "string")]
        return next(iter(texts or properties), "answer")
    raise RequestError(400, f"invalid format: {fmt!r} (expected \"json\" or a JSON schema object)")


def _json_rest(fmt: object, key: str) -> dict:
    """Every other property of a format's schema with a value of its type: a parser that checks the
    schema's required properties (LangChain's structured output) finds each one."""
    if not isinstance(fmt, dict):
        return {}
    properties = _properties(fmt)
    text_key = _json_key(fmt)
    return textgen.schema_values({k: v for k, v in properties.items() if k != text_key}, key)


def _properties(fmt: dict) -> dict:
    properties = fmt.get("properties")
    return properties if isinstance(properties, dict) else {}
