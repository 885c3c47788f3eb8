"""Request validation at the gateway: the JSON body itself, then each API's fields.

Everything a client sends is checked here, before a task exists, and a bad value is a 400 that
names the field (``messages[2].content must be a string, got a number``), in the API's own error
shape (the routes turn a ``FieldError`` into one). Nothing malformed reaches a worker, where the
client library's own checks would fail it late, or a node, which would be blamed for it.

The body: strict JSON. Python's json reads ``NaN``, ``Infinity`` and ``1e999`` (infinite) and a
node's JSON has none of them; ``\\ud800`` decodes to a lone surrogate that cannot be encoded back to
UTF-8; nesting deeper than ``MAX_DEPTH`` is refused (and Python's parser raising RecursionError on
very deep input is a 400, not a 500). The checks that walk the body run only when a cheap look at
the raw bytes says they may find something (a bracket count, a flag from the number hooks, a regex
for surrogates), so an ordinary request pays one ``json.loads`` and a few type checks per field.

The fields: plain type checks (no schema library, no pydantic: this runs on every request). Types
follow what Ollama itself accepts: ``stream`` true, false or null (null = the default, as Ollama's
``*bool`` reads it), never ``"yes"`` or ``1``; options of Ollama's types; ``num_predict`` from -2
to ``MAX_TOKENS``. Fields Hydra does not use are ignored, as Ollama ignores unknown fields.
"""
from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hydra.sollol.validation import (
    MAX_DEPTH,
    MAX_TOKENS,
    FieldError,
    check_bool,
    check_format,
    check_images,
    check_integer,
    check_json,
    check_keep_alive,
    check_messages,
    check_number,
    check_options,
    check_text,
    check_think,
    check_tools,
    kind,
    optional_text,
    wrong,
)

# A \uD800-\uDFFF escape, or the UTF-8 of a surrogate (bodies are decoded with "surrogatepass", as json.loads
# does, so those decode too). Each is searched only when a byte it needs is there: the common body pays two `in`.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE_UTF8 = re.compile(rb"\xed[\xa0-\xbf]")


class BodyError(ValueError):
    """The body is not a JSON object the gateway can read (no single field to blame)."""


@dataclass
class Generation:
    """A generation request, checked: the arguments of ``submit`` and how to answer."""

    fields: dict[str, Any]
    stream: bool
    max_tokens: int | None = None
    include_usage: bool = False
    n: int = 1                # OpenAI's n: this many tasks, one choice each
    load: str | None = None   # "load" or "unload": an empty prompt or messages only (un)loads the model


# --- the body ---

def parse_body(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, strictly: BodyError when it is not JSON or not an object, FieldError
    naming the value that is not allowed (a non-finite number, a lone surrogate, too deep)."""
    _numbers.nonfinite = False
    encoding = json.detect_encoding(raw) if raw else "utf-8"  # UTF-16 and -32 too, as json.loads reads bytes
    try:
        value = _DECODER.decode(raw.decode(encoding, "surrogatepass") if raw else "{}")
    except RecursionError:
        raise BodyError(f"the request body is nested deeper than {MAX_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BodyError(f"invalid JSON in the request body: {exc}") from None
    if not isinstance(value, dict):
        raise BodyError("the request body must be a JSON object")
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH:
        _check_depth(value)
    if _numbers.nonfinite or encoding != "utf-8" or (b"\\u" in raw and _SURROGATE_ESCAPE.search(raw)) or (
            b"\xed" in raw and _SURROGATE_UTF8.search(raw)):
        for key, item in value.items():  # find it, to name it
            check_text(key, "the request body (a key)")
            check_json(item, key, 1)
    return value


class _Numbers(threading.local):
    nonfinite = False  # the body being read has NaN, Infinity or a float too large (1e999)


_numbers = _Numbers()


def _constant(name: str) -> float:
    _numbers.nonfinite = True
    return float(name.replace("Infinity", "inf"))


def _float(text: str) -> float:
    value = float(text)
    if value in (math.inf, -math.inf):
        _numbers.nonfinite = True
    return value


# One decoder, made once: json.loads with hooks would build a decoder (and its scanner) per call.
_DECODER = json.JSONDecoder(parse_constant=_constant, parse_float=_float)


def _check_depth(body: dict[str, Any]) -> None:
    """FieldError at the first value nested deeper than MAX_DEPTH (walks containers only)."""
    stack: list[tuple[Any, str, int]] = [(v, k, 1) for k, v in body.items()]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise FieldError(path, f"is nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            stack.extend((v, f"{path}.{k}", depth + 1) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value))


# --- small checks of the top-level fields ---

def stream_flag(body: Mapping[str, Any], default: bool) -> bool:
    """``stream``: true or false; absent or null is the API's default."""
    value = body.get("stream")
    return default if value is None else check_bool(value, "stream")


def optional_limit(value: Any, field: str) -> int | None:
    """max_tokens and its kind: a positive integer up to MAX_TOKENS, or null."""
    return None if value is None else check_integer(value, field, 1, MAX_TOKENS)


def _typed(body: Mapping[str, Any], fields: Mapping[str, str]) -> None:
    """Fields Hydra accepts but does not use: still of the type the API documents."""
    for name, expected in fields.items():
        value = body.get(name)
        if value is None:
            continue
        if expected == "bool":
            check_bool(value, name)
        elif expected == "str":
            check_text(value, name)
        elif expected == "int":
            check_integer(value, name)
        elif expected == "object" and not isinstance(value, dict):
            raise wrong(name, "an object", value)
        elif expected == "list" and not isinstance(value, list):
            raise wrong(name, "a list", value)


# --- the Ollama API ---

_OLLAMA_UNUSED = {"truncate": "bool", "shift": "bool"}
# /api/generate's own fields: each goes to the node's /api/generate (Task fields of the same names)
_GENERATE_FIELDS = ("suffix", "raw", "template", "context", "images")


def ollama_request(body: Mapping[str, Any], *, chat: bool) -> Generation:
    """/api/chat or /api/generate, checked, as the arguments of ``submit``. An empty prompt (generate)
    or no messages (chat) asks only to load the model, or with keep_alive 0 to unload it, as in Ollama."""
    _typed(body, _OLLAMA_UNUSED)
    options, max_tokens = split_options(body.get("options"))
    fields: dict[str, Any] = {"options": options, "max_tokens": max_tokens, "think": check_think(body.get("think"))}
    keep_alive_s = None
    if body.get("keep_alive") is not None:
        keep_alive_s = check_keep_alive(body["keep_alive"])
        fields["keep_alive"] = body["keep_alive"]
    if chat:
        if body.get("messages") in (None, []):
            return _load_request(body, keep_alive_s)
        fields["messages"] = ollama_messages(body.get("messages"))
        if body.get("tools") is not None:
            check_tools(body["tools"])
            fields["tools"] = body["tools"]
    else:
        prompt = check_text(body.get("prompt"), "prompt") if body.get("prompt") is not None else ""
        if prompt == "":
            return _load_request(body, keep_alive_s)
        if not prompt.strip():
            raise FieldError("prompt", "must not be only white space (an empty prompt loads the model)")
        fields["prompt"] = prompt
        system = optional_text(body.get("system"), "system")
        if system:
            fields["system"] = system
        fields.update(generate_fields(body))
        # Ollama's /api/generate always answers with the context (the prompt and answer as tokens, for
        # the next call); chat has none, so a plain prompt goes to the node's /api/generate too.
        # raw false is Ollama's default: sent, it only says which route of the node answers.
        fields.setdefault("raw", False)
    fields.update(logprob_fields(body))
    stream = stream_flag(body, True)
    if fields.get("logprobs") and stream:
        raise FieldError("logprobs", "", text='logprobs come with "stream": false only (Hydra does not stream them)')
    answer_format = body.get("format")
    if answer_format not in (None, ""):
        check_format(answer_format)
        fields["format"] = answer_format
    return Generation(fields, stream, max_tokens)


def _load_request(body: Mapping[str, Any], keep_alive_s: float | None) -> Generation:
    fields = {"keep_alive": body["keep_alive"]} if "keep_alive" in body and body["keep_alive"] is not None else {}
    return Generation(fields, stream_flag(body, True), load="unload" if keep_alive_s == 0 else "load")


def generate_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    """suffix, raw, template, context and images, checked (as Task.validate would) and only when sent."""
    out: dict[str, Any] = {}
    for name in _GENERATE_FIELDS:
        if body.get(name) is not None:
            out[name] = body[name]
    if "images" in out:
        check_images(out["images"], "images")
        if not out["images"]:
            del out["images"]  # an empty list is no image: the prompt may go through chat
    if "raw" in out:
        check_bool(out["raw"], "raw")
    for name in ("suffix", "template"):
        if name in out:
            check_text(out[name], name)
    if "context" in out:
        if not isinstance(out["context"], list):
            raise wrong("context", "a list of token ids (what an earlier /api/generate returned)", out["context"])
        for i, token in enumerate(out["context"]):
            check_integer(token, f"context[{i}]", 0, 2 ** 31 - 1)
    return out


def logprob_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    """Ollama's logprobs (bool) and top_logprobs (0..20), passed to the node."""
    out: dict[str, Any] = {}
    if body.get("logprobs") is not None:
        out["logprobs"] = check_bool(body["logprobs"], "logprobs")
    if body.get("top_logprobs") is not None:
        out["top_logprobs"] = check_integer(body["top_logprobs"], "top_logprobs", 0, 20)
        if not out.get("logprobs"):
            raise FieldError("top_logprobs", "needs logprobs: true")
    return out


def split_options(options: Any) -> tuple[dict[str, Any], int | None]:
    """Ollama options without num_predict, and num_predict as max_tokens (<= 0: unlimited)."""
    if options is None:
        return {}, None
    options = check_options(options)
    limit = options.pop("num_predict", None)
    return options, (limit if limit is not None and limit > 0 else None)


def ollama_messages(raw: Any) -> list[dict[str, Any]]:
    """Ollama's messages, checked; a null content becomes "" (as Ollama reads it)."""
    if not isinstance(raw, list) or not raw:
        raise FieldError("messages", f"must be a non-empty list of {{role, content}} objects, got {kind(raw)}"
                         + (" (empty)" if raw == [] else ""))
    check_messages(raw)
    return [m if m.get("content") is not None else {**m, "content": ""} for m in raw]


# --- the OpenAI API: the fields beside messages, tools and response_format (openai_api.py) ---

# OpenAI's sampling fields, their ranges, and the Ollama option each becomes.
_OPENAI_NUMBERS = {"temperature": (0.0, 2.0), "top_p": (0.0, 1.0), "frequency_penalty": (-2.0, 2.0),
                   "presence_penalty": (-2.0, 2.0)}
# Their use (or refusal) is in openai_fields.py's table; here, their types.
_OPENAI_UNUSED = {"user": "str", "parallel_tool_calls": "bool", "store": "bool", "metadata": "object",
                  "logit_bias": "object", "safety_identifier": "str", "prompt_cache_key": "str",
                  "service_tier": "str", "modalities": "list"}
REASONING_EFFORTS: dict[str, bool | str] = {"none": False, "minimal": "low", "low": "low", "medium": "medium", "high": "high"}


def openai_options(body: Mapping[str, Any]) -> dict[str, Any]:
    """OpenAI's sampling fields as Ollama options, each checked against OpenAI's documented range."""
    _typed(body, _OPENAI_UNUSED)
    options: dict[str, Any] = {}
    for name, (low, high) in _OPENAI_NUMBERS.items():
        if body.get(name) is not None:
            options[name] = check_number(body[name], name, low, high)
    if body.get("seed") is not None:
        options["seed"] = check_integer(body["seed"], "seed")
    stop = body.get("stop")
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else stop
        if not isinstance(stops, list) or len(stops) > 4:
            raise wrong("stop", "a string or a list of up to 4 strings", stop)
        options["stop"] = [check_text(s, f"stop[{i}]") for i, s in enumerate(stops)]
    return options


MAX_CHOICES = 16  # n: each choice is a task of its own


def openai_n(body: Mapping[str, Any], stream: bool) -> int:
    """``n``: 1 to MAX_CHOICES choices, each its own task; more than one only without streaming."""
    n = 1 if body.get("n") is None else check_integer(body["n"], "n", 1, MAX_CHOICES)
    if n > 1 and stream:
        raise FieldError("n", "", text=f"n={n} with stream is not supported: Hydra streams one choice; "
                                       'send "stream": false for several')
    return n


def openai_logprobs(body: Mapping[str, Any], stream: bool) -> dict[str, Any]:
    """Chat's logprobs (bool) and top_logprobs (0..20) as the task's; not with streaming."""
    fields = logprob_fields(body)
    if fields.get("logprobs") and stream:
        raise FieldError("logprobs", "", text='logprobs with stream are not supported: send "stream": false')
    return fields


def openai_think(body: Mapping[str, Any]) -> bool | str | None:
    """reasoning_effort as Ollama's think: "none" turns thinking off, "minimal" is Ollama's "low"."""
    effort = body.get("reasoning_effort")
    if effort is None:
        return None
    if effort not in REASONING_EFFORTS:
        raise FieldError("reasoning_effort", f"must be one of {', '.join(REASONING_EFFORTS)}, got "
                         + (repr(effort)[:80] if isinstance(effort, str) else kind(effort)))
    return REASONING_EFFORTS[effort]


def include_usage(body: Mapping[str, Any]) -> bool:
    options = body.get("stream_options")
    if options is None:
        return False
    if not isinstance(options, dict):
        raise wrong("stream_options", "an object", options)
    usage = options.get("include_usage")
    return False if usage is None else check_bool(usage, "stream_options.include_usage")


def tool_choice_none(body: Mapping[str, Any]) -> bool:
    """tool_choice: "none", "auto", "required" or {"type": "function", "function": {"name": ...}}."""
    choice = body.get("tool_choice")
    if choice is None or choice in ("auto", "required"):
        return False
    if choice == "none":
        return True
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict) \
            and isinstance(choice["function"].get("name"), str):
        return False
    raise FieldError("tool_choice", '', text='tool_choice must be "none", "auto", "required" or '
                     '{"type": "function", "function": {"name": ...}}, got ' + kind(choice))
