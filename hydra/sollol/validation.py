"""What a request to an Ollama node may carry: the type and range checks of the fields a task sends.

``Task.validate`` runs them for every caller (``Router.submit``, ``Hydra.submit``, the gateway), so
a malformed request is refused before it is queued, with a message that names the field
(``messages[2].content must be a string, got a number``), instead of reaching a worker, where the
client library's own validation (or a node's) would fail it, or worse, blame the node.

Plain type checks, no schema library: they run on the path of every task. Strings are checked for
lone surrogates (a JSON ``"\\ud800"`` decodes to one in Python, and it cannot be encoded to UTF-8 for
the node); ``str.isascii()`` is O(1) in CPython, so ASCII text costs nothing. Numbers must be finite
(Python's json reads ``NaN`` and ``Infinity``; the node's JSON has neither).
"""
from __future__ import annotations

import binascii
import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .errors import TaskError

if TYPE_CHECKING:
    from .types import Task

MAX_TOKENS = 1_000_000          # a sane ceiling for num_predict / max_tokens
MIN_NUM_PREDICT = -2            # Ollama: -1 generates without limit, -2 until the context is full
MAX_DEPTH = 64                  # JSON nesting, counted from the request body (or the Task field)
INT64 = 2 ** 63                 # Ollama's integers are Go's int64
ROLES = ("system", "user", "assistant", "tool")
THINK_LEVELS = ("low", "medium", "high")
TOOL_SHAPE = '{"type": "function", "function": {"name": ..., "parameters": ...}}'

_SURROGATE = re.compile("[\ud800-\udfff]")
# A Go duration ("5m", "1h30m", "-1s") or a number of seconds as text ("300", "-1"), as Ollama reads keep_alive.
_DURATION = re.compile(r"^\s*(?:[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h))+|[+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
MAX_KEEP_ALIVE_S = 9.2e9        # Go's time.Duration (int64 nanoseconds), in seconds

# Ollama's options by type (api.Options and api.Runner); unknown keys go to the node, which ignores them.
INT_OPTIONS = frozenset({"num_keep", "seed", "num_predict", "top_k", "repeat_last_n", "mirostat", "num_ctx",
                         "num_batch", "num_gpu", "main_gpu", "num_thread"})
FLOAT_OPTIONS = frozenset({"top_p", "min_p", "tfs_z", "typical_p", "temperature", "repeat_penalty",
                           "presence_penalty", "frequency_penalty", "mirostat_tau", "mirostat_eta"})
BOOL_OPTIONS = frozenset({"penalize_newline", "numa", "low_vram", "f16_kv", "logits_all", "vocab_only",
                          "use_mmap", "use_mlock"})


class FieldError(ValueError):
    """One field of a request is not allowed; ``field`` is its path (``messages[2].content``)."""

    def __init__(self, field: str, problem: str, *, text: str | None = None) -> None:
        self.field = field
        super().__init__(text or f"{field} {problem}")


def kind(value: Any) -> str:
    """The JSON name of a value's type, for messages: 'a string', 'a number', 'null', ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a {type(value).__name__}"


def wrong(field: str, expected: str, value: Any) -> FieldError:
    return FieldError(field, f"must be {expected}, got {kind(value)}")


def check_text(value: Any, field: str) -> str:
    """A string that can be sent (no lone surrogate)."""
    if not isinstance(value, str):
        raise wrong(field, "a string", value)
    if not value.isascii() and _SURROGATE.search(value):
        raise FieldError(field, "contains a lone surrogate (invalid Unicode): it cannot be encoded as UTF-8")
    return value


def optional_text(value: Any, field: str) -> str | None:
    return None if value is None else check_text(value, field)


def check_bool(value: Any, field: str) -> bool:
    """A real boolean: not 1, not "yes", not "true"."""
    if not isinstance(value, bool):
        raise wrong(field, "true or false", value)
    return value


def check_number(value: Any, field: str, low: float | None = None, high: float | None = None) -> float:
    """A finite number (a boolean is not one), within [low, high] when given."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise wrong(field, "a number", value)
    if isinstance(value, float) and not math.isfinite(value):
        raise FieldError(field, f"must be a finite number, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise FieldError(field, f"must be a number from {low:g} to {high:g}, got {value!r}"
                         if low is not None and high is not None else f"is out of range: {value!r}")
    return value


def check_integer(value: Any, field: str, low: int = -INT64, high: int = INT64 - 1) -> int:
    """An integer in [low, high]; a float with no fraction (2.0, as JSON clients may send) counts as one."""
    number = check_number(value, field)
    if isinstance(number, float):
        if not number.is_integer():
            raise FieldError(field, f"must be an integer, got {number!r}")
        number = int(number)
    if not low <= number <= high:
        raise FieldError(field, f"must be an integer from {low} to {high}, got {number}")
    return int(number)


def check_json(value: Any, field: str, depth: int = 0) -> None:
    """Any JSON value that can be sent: string keys, finite numbers, valid Unicode, at most MAX_DEPTH deep.
    (For what goes to the node as it is: schemas, tool parameters, call arguments, unknown options.)"""
    if depth > MAX_DEPTH:
        raise FieldError(field, f"is nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, (bool, int)):
        return
    if isinstance(value, float):
        check_number(value, field)
    elif isinstance(value, str):
        check_text(value, field)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            check_text(key, f"{field} (a key)")
            check_json(item, f"{field}.{key}", depth + 1)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_json(item, f"{field}[{i}]", depth + 1)
    else:
        raise wrong(field, "a JSON value", value)


def check_object(value: Any, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise wrong(field, "an object", value)
    return value


# --- the fields of a task ---

TASK_TYPES = ("code", "reasoning", "math", "general")  # re-exported by types.py


def check_task(task: Task) -> None:
    """Task.validate: TaskError naming the first field that is not allowed. Normalizes as it goes: a
    None prompt is "", options get Ollama's types (integers as int, null values dropped)."""
    if task.task_type == "embedding":  # its own fields (embedding.py): texts in input, no prompt
        from .embedding import check_embedding_task
        check_embedding_task(task)
        return
    try:
        _check_content(task)
        _check_limits(task)
        _check_request_fields(task)
    except FieldError as exc:
        raise TaskError(str(exc)) from None


def _check_content(task: Task) -> None:
    if task.prompt is None:  # a caller's None means no prompt
        task.prompt = ""
    check_text(task.prompt, "prompt")
    if task.messages is not None:
        check_messages(task.messages)
    if not task.prompt.strip() and not task.messages:
        raise TaskError("task has neither a prompt nor messages")
    optional_text(task.system, "system")
    optional_text(task.model, "model")
    if isinstance(task.priority, bool) or not isinstance(task.priority, int) or not 1 <= task.priority <= 10:
        raise TaskError(f"priority must be an integer from 1 to 10, got {task.priority!r}")


def _check_limits(task: Task) -> None:
    if task.task_type is not None and task.task_type not in TASK_TYPES:
        raise TaskError(f"task_type must be one of {', '.join(TASK_TYPES)} or None, got {task.task_type!r}")
    if task.max_tokens is not None and (isinstance(task.max_tokens, bool) or not isinstance(task.max_tokens, int)
                                        or not 1 <= task.max_tokens <= MAX_TOKENS):
        raise TaskError(f"max_tokens must be a positive integer up to {MAX_TOKENS}, got {task.max_tokens!r}")
    if task.min_success_rate is not None:
        check_number(task.min_success_rate, "min_success_rate", 0.0, 1.0)
    if task.thinking_budget is not None:
        task.thinking_budget = check_integer(task.thinking_budget, "thinking_budget", 1, MAX_TOKENS)
    if task.deadline is not None and check_number(task.deadline, "deadline") <= 0:
        raise TaskError(f"deadline must be a positive number of seconds, got {task.deadline!r}")


def _check_request_fields(task: Task) -> None:
    """The fields that go to Ollama as they are: format, keep_alive, tools, options, think."""
    check_format(task.format)
    check_keep_alive(task.keep_alive)
    if task.tools is not None:
        check_tools(task.tools)
    task.options = check_options(task.options if task.options is not None else {})
    check_think(task.think)


def check_think(value: Any, field: str = "think") -> bool | str | None:
    if value is None or isinstance(value, bool) or value in THINK_LEVELS:
        return value
    raise FieldError(field, f"must be true, false or a level ({', '.join(THINK_LEVELS)}), got "
                            + (repr(value) if isinstance(value, str) else kind(value)))


def check_keep_alive(value: Any, field: str = "keep_alive") -> float:
    """A Go duration ("5m", "1h30m") or a number of seconds (negative: keep loaded), within Go's
    time.Duration (about 292 years): Ollama's arithmetic on a larger one overflows. Returns the seconds."""
    seconds = _keep_alive_seconds(value)
    if seconds is None or not math.isfinite(seconds):
        raise FieldError(field, 'must be a duration such as "5m" or a number of seconds (negative: keep loaded), '
                                f"got {value!r}"[:200])
    if abs(seconds) > MAX_KEEP_ALIVE_S:
        raise FieldError(field, f"must be at most {MAX_KEEP_ALIVE_S:.0f} seconds either way, got {value!r}"[:200])
    return seconds


def _keep_alive_seconds(value: Any) -> float | None:
    if value is None:
        return 0.0
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str) or len(value) > 64 or not _DURATION.match(value):
        return None
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        seconds = sum(float(n) * _UNITS[u] for n, u in _DURATION_PART.findall(text))
        return -seconds if text.startswith("-") else seconds


def check_format(value: Any, field: str = "format") -> None:
    """Ollama's format: "json", or a JSON schema (an object) the answer must follow."""
    if value is None or value == "json":
        return
    if not isinstance(value, Mapping):
        raise FieldError(field, f'must be "json" or a JSON schema object, got {value!r}'[:200])
    check_json(value, field, 1)


def check_options(options: Any, field: str = "options") -> dict[str, Any]:
    """Ollama's options with each known one of its type (integers as int); null values dropped, as
    Ollama skips them. A key that is not a string (a Python caller's) goes as its text, as history
    records it: JSON keys are strings, and the node ignores an option it does not know."""
    options = check_object(options, field)
    out: dict[str, Any] = {}
    for key, value in options.items():
        name = check_text(key if isinstance(key, str) else str(key), f"{field} (a key)")
        if value is None:
            continue
        out[name] = _option(name, value, f"{field}.{name}")
    return out


def _option(key: str, value: Any, where: str) -> Any:
    if key == "num_predict":
        return check_integer(value, where, MIN_NUM_PREDICT, MAX_TOKENS)
    if key in INT_OPTIONS:
        return check_integer(value, where)
    if key in FLOAT_OPTIONS:
        return check_number(value, where)
    if key in BOOL_OPTIONS:
        return check_bool(value, where)
    if key == "stop":
        if not isinstance(value, (list, tuple)):
            raise wrong(where, "a list of strings", value)
        return [check_text(s, f"{where}[{i}]") for i, s in enumerate(value)]
    check_json(value, where, 2)
    return value


def check_messages(messages: Any, field: str = "messages") -> None:
    """Ollama's chat messages: role, content, and optionally images, thinking, tool_calls, tool_name."""
    if not isinstance(messages, (list, tuple)):
        raise wrong(field, "a list of messages", messages)
    for i, message in enumerate(messages):
        check_message(message, f"{field}[{i}]")


def check_message(message: Any, field: str) -> None:
    message = check_object(message, field)
    role = message.get("role")
    if role not in ROLES:
        raise FieldError(f"{field}.role", f"must be one of {', '.join(ROLES)}, got "
                         + (repr(role)[:80] if isinstance(role, str) else kind(role)))
    for key, value in message.items():
        where = f"{field}.{key}"
        if key in ("content", "thinking", "tool_name"):
            optional_text(value, where)
        elif key == "images":
            check_images(value, where)
        elif key == "tool_calls":
            check_tool_calls(value, where)
        elif key != "role":
            check_text(key, f"{field} (a key)")
            check_json(value, where, 3)


def check_images(images: Any, field: str) -> None:
    """Base64 strings (Ollama's images). Paths are refused: the client library would read them from this
    machine's disk (see worker.build_messages)."""
    if images is None:
        return
    if not isinstance(images, (list, tuple)):
        raise wrong(field, "a list of base64 strings", images)
    for i, image in enumerate(images):
        where = f"{field}[{i}]"
        if not isinstance(image, str) or not image:
            raise wrong(where, "a non-empty base64 string", image)
        try:
            binascii.a2b_base64(image, strict_mode=True)
        except (binascii.Error, ValueError):
            raise FieldError(where, "is not valid base64 (send the image's bytes base64-encoded, without a "
                                    "data: prefix)") from None


def check_tool_calls(calls: Any, field: str) -> None:
    """An assistant's calls in Ollama's shape: [{"function": {"name": ..., "arguments": {...}}}]."""
    if calls is None:
        return
    if not isinstance(calls, (list, tuple)):
        raise wrong(field, 'a list of {"function": {"name": ..., "arguments": {...}}}', calls)
    for i, call in enumerate(calls):
        where = f"{field}[{i}]"
        function = check_object(check_object(call, where).get("function"), f"{where}.function")
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise wrong(f"{where}.function.name", "a non-empty string", name)
        check_object(function.get("arguments", {}), f"{where}.function.arguments")
        check_json(call, where, 3)


def check_tools(tools: Any, field: str = "tools") -> None:
    """Tools in the shape both APIs share: ``{"type": "function", "function": {"name": ..., ...}}``."""
    if not isinstance(tools, (list, tuple)):
        raise _bad_tool(field, field, f"got {tools!r}"[:200])
    for i, tool in enumerate(tools):
        where = f"{field}[{i}]"
        if not isinstance(tool, Mapping):
            raise _bad_tool(field, where, f"{where} is {kind(tool)}")
        if tool.get("type", "function") != "function":
            raise _bad_tool(field, f"{where}.type", f"{where}.type is {tool.get('type')!r}"[:200])
        function = tool.get("function")
        if not isinstance(function, Mapping):
            raise _bad_tool(field, f"{where}.function", f"{where}.function is {kind(function)}")
        name = function.get("name")
        if not isinstance(name, str) or not name.strip():
            raise _bad_tool(field, f"{where}.function.name", f"{where}.function.name is {kind(name)}"
                            + (" (empty)" if isinstance(name, str) else ""))
        optional_text(function.get("description"), f"{where}.function.description")
        if function.get("parameters") is not None:
            check_object(function["parameters"], f"{where}.function.parameters")
        check_json(tool, where, 2)


def _bad_tool(field: str, where: str, detail: str) -> FieldError:
    return FieldError(where, "", text=f"{field} must be a list of tool objects such as {TOOL_SHAPE}: {detail}")
