"""The OpenAI API of the gateway: GET /v1/models and POST /v1/chat/completions (SSE and not).

Thinking goes out as ``reasoning`` (as Ollama's own OpenAI layer names it) next
to ``content``; clients that do not know the field ignore it. A failover mid-answer
continues the answer on another node: the content stays one answer, and the final
chunk (and a whole answer) carries ``"hydra": {"nodes": [...], "notice": "..."}``,
as on the Ollama side. A failure that cannot be continued ends the stream with an
``error`` object, then ``data: [DONE]``.

Tools: OpenAI's ``tools`` go to the node as they are (Ollama takes the same
``{"type": "function", "function": {...}}`` shape; ``tool_choice: "none"`` sends
none). The model's calls come back in OpenAI's shape (``tool_calls`` with an id
and the arguments as a JSON string, ``finish_reason: "tool_calls"``); the
assistant's calls and the ``tool`` results a client sends back become Ollama's
messages (arguments as an object, ``tool_call_id`` as the called ``tool_name``).

Content is a string or a list of parts: text parts are joined, a user's ``image_url`` parts with
a ``data:`` URL become Ollama's base64 ``images`` (the gateway fetches no URL, as Ollama's own
OpenAI layer). Every field is checked before a task exists (validate.py); a bad one is a 400 whose
``error.param`` names it.
"""
from __future__ import annotations

import json
import secrets
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hydra.gateway.admission import GatewayError, Incoming, Tracker, invalid_request
from hydra.gateway.choices import ChoicesResponse, submit_choices
from hydra.gateway.ollama_api import hydra_field
from hydra.gateway.openai_fields import CHAT_FIELDS, refuse_unsupported
from hydra.gateway.service_api import GatewayService
from hydra.gateway.stream import TaskResponse, done_reason
from hydra.gateway.validate import (
    Generation,
    include_usage,
    openai_logprobs,
    openai_n,
    openai_options,
    openai_think,
    optional_limit,
    stream_flag,
    tool_choice_none,
)
from hydra.sollol import Chunk, TaskHandle, TaskResult
from hydra.sollol.validation import FieldError, check_images, check_json, check_text, check_tools, optional_text, wrong
from hydra.sollol.validation import kind as kind_of

# OpenAI's roles as Ollama's.
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant", "tool": "tool"}


def openai_error(status: int, message: str, kind: str = "invalid_request_error",
                 param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": None}}


def error_response(exc: GatewayError) -> JSONResponse:
    return JSONResponse(openai_error(exc.status, exc.message, exc.kind, exc.param), status_code=exc.status)


def _response_format(value: Any) -> str | dict[str, Any] | None:
    """OpenAI's response_format as Ollama's format: json_object -> "json", json_schema -> the schema."""
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        spec = value.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if isinstance(schema, dict):
            return schema
        raise FieldError("response_format.json_schema.schema", "must be a JSON schema object",
                         text="response_format json_schema needs json_schema.schema, a JSON schema object")
    raise FieldError("response_format.type", 'must be "text", "json_object" or "json_schema"')


def _messages(raw: Any) -> list[dict[str, Any]]:
    """OpenAI messages as Ollama's: text parts joined, data: image parts as images, tool calls and
    results converted (see the module's docstring)."""
    if not isinstance(raw, list) or not raw:
        raise FieldError("messages", f"must be a non-empty list, got {kind_of(raw)}" + (" (empty)" if raw == [] else ""))
    called: dict[str, str] = {}  # tool_call_id -> function name, from the assistant's calls so far
    return [_message(m, f"messages[{i}]", called) for i, m in enumerate(raw)]


def _message(m: Any, where: str, called: dict[str, str]) -> dict[str, Any]:
    if not isinstance(m, dict):
        raise wrong(where, "an object with a role and content", m)
    role = m.get("role")
    if role not in _ROLES:
        raise FieldError(f"{where}.role", f"must be one of {', '.join(_ROLES)}, got "
                         + (repr(role)[:80] if isinstance(role, str) else kind_of(role)))
    content, images = _content(m.get("content"), f"{where}.content", role)
    message: dict[str, Any] = {"role": _ROLES[role], "content": content}
    if images:
        message["images"] = images
    optional_text(m.get("name"), f"{where}.name")
    if role == "assistant" and m.get("tool_calls") is not None:
        calls = _calls_to_ollama(m["tool_calls"], called, f"{where}.tool_calls")
        if calls:
            message["tool_calls"] = calls
    if role == "tool":
        call_id = optional_text(m.get("tool_call_id"), f"{where}.tool_call_id")
        name = called.get(call_id or "") or m.get("name")
        if name:
            message["tool_name"] = name  # Ollama ties a result to its call by the function's name
    return message


def _content(value: Any, where: str, role: str) -> tuple[str, list[str]]:
    """A message's content as (text, base64 images): a string, or a list of parts (text; image_url
    with a data: URL, from the user). Only the assistant may leave it null (a message of tool calls)."""
    if value is None and role == "assistant":
        return "", []
    if isinstance(value, str):
        return check_text(value, where), []
    if not isinstance(value, list):
        raise wrong(where, "a string or a list of content parts", value)
    texts: list[str] = []
    images: list[str] = []
    for j, part in enumerate(value):
        at = f"{where}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            texts.append(check_text(part.get("text"), f"{at}.text"))
        elif kind == "refusal" and role == "assistant":
            texts.append(check_text(part.get("refusal"), f"{at}.refusal"))
        elif kind == "image_url" and role == "user":
            images.append(_data_url_image(part.get("image_url"), f"{at}.image_url"))
        elif not isinstance(part, dict):
            raise wrong(at, "a content part object", part)
        else:
            allowed = "text or image_url" if role == "user" else "text"
            raise FieldError(f"{at}.type", f"must be {allowed} in a {role} message, got "
                             + (repr(kind)[:80] if isinstance(kind, str) else kind_of(kind)))
    return "".join(texts), images


def _data_url_image(value: Any, where: str) -> str:
    """An image part's base64 bytes. Only data: URLs: the gateway fetches nothing from the web (as
    Ollama's own OpenAI layer)."""
    url = value.get("url") if isinstance(value, dict) else None
    if not isinstance(url, str):
        raise wrong(f"{where}.url", "a string", url)
    head, sep, data = url.partition(",")
    if not (head.startswith("data:") and head.endswith(";base64") and sep):
        raise FieldError(f"{where}.url", "must be a data: URL with the image base64-encodeded "
                                         "(data:image/png;base64,...): the gateway fetches no URL")
    check_images([data], f"{where}.url")
    return data


def _calls_to_ollama(calls: Any, called: dict[str, str], where: str) -> list[dict[str, Any]]:
    """An assistant's OpenAI tool_calls as Ollama's: the arguments as an object, not a JSON string."""
    if not isinstance(calls, list):
        raise wrong(where, "a list", calls)
    out = []
    for i, call in enumerate(calls):
        at = f"{where}[{i}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            raise FieldError(at, "", text=f'{at}: each tool call needs {{"function": {{"name": ..., '
                                           f'"arguments": ...}}}}')
        name = check_text(function["name"], f"{at}.function.name")
        arguments = _arguments(function.get("arguments"), f"{at}.function.arguments")
        if call.get("id") is not None:
            called[check_text(call["id"], f"{at}.id")] = name
        out.append({"function": {"name": name, "arguments": arguments}})
    return out


def _arguments(value: Any, where: str) -> dict[str, Any]:
    """A call's arguments: OpenAI's JSON text (strict JSON: no NaN or Infinity), or an object."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value, parse_constant=_no_constant)
        except (ValueError, RecursionError):
            raise FieldError(where, "", text=f"{where}: tool call arguments are not JSON: {value[:80]!r}") from None
    if not isinstance(value, dict):
        raise FieldError(where, "", text=f"{where}: tool call arguments must be a JSON object, got {kind_of(value)}")
    check_json(value, where, 4)
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _tools(body: dict[str, Any]) -> list[dict[str, Any]] | None:
    tools = body.get("tools")
    none = tool_choice_none(body)
    if tools is None:
        return None
    check_tools(tools)
    return None if none else tools


def openai_request(body: dict[str, Any]) -> Generation:
    """/v1/chat/completions, checked, as the arguments of ``submit`` (every field: openai_fields.py)."""
    messages = _messages(body.get("messages"))
    limit = optional_limit(body.get("max_tokens"), "max_tokens")
    limit = optional_limit(body.get("max_completion_tokens"), "max_completion_tokens") or limit
    options = openai_options(body)
    refuse_unsupported(body, CHAT_FIELDS)
    stream = stream_flag(body, False)
    fields: dict[str, Any] = {"messages": messages, "max_tokens": limit, "options": options,
                              "think": openai_think(body), "format": _response_format(body.get("response_format")),
                              "tools": _tools(body), **openai_logprobs(body, stream)}
    return Generation(fields, stream, limit, include_usage(body), n=openai_n(body, stream))


def _openai_calls(calls: tuple[dict[str, Any], ...], first: int = 0) -> list[dict[str, Any]]:
    """Ollama's calls in OpenAI's shape; ``index`` numbers them within the answer (streaming)."""
    return [{"index": first + i, "id": f"call_{secrets.token_hex(12)}", "type": "function",
             "function": {"name": c["function"]["name"],
                          "arguments": json.dumps(c["function"].get("arguments") or {})}}
            for i, c in enumerate(calls)]


def _openai_logprob(entry: dict[str, Any]) -> dict[str, Any]:
    """One token's logprobs from Ollama's shape (token, logprob, bytes, top_logprobs) to OpenAI's."""
    def one(e: dict[str, Any]) -> dict[str, Any]:
        token = str(e.get("token", ""))
        return {"token": token, "logprob": float(e.get("logprob", 0.0)), "bytes": e.get("bytes") or list(token.encode())}
    return {**one(entry), "top_logprobs": [one(t) for t in entry.get("top_logprobs") or ()]}


def _usage(result: TaskResult) -> dict[str, int]:
    prompt, completion = result.prompt_eval_count or 0, result.eval_count or 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class OpenAIRenderer:
    media_type = "text/event-stream"

    def __init__(self, task_id: str, model: str | None, max_tokens: int | None, include_usage: bool) -> None:
        self.id = f"chatcmpl-{task_id}"
        self.created = int(time.time())
        self.requested = model or "auto"
        self.max_tokens = max_tokens
        self.include_usage = include_usage
        self.first = True
        self.calls = 0  # tool calls streamed so far: the next one's index
        self._heads: dict[str, tuple[bytes, bytes]] = {}  # model -> the bytes around a text chunk's content

    def _event(self, model: str, delta: dict[str, Any], finish: str | None, **extra: Any) -> bytes:
        body = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": model or self.requested,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
        return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"

    def chunk(self, chunk: Chunk) -> bytes | None:
        text = chunk.text
        if not text and not chunk.thinking and not chunk.tool_calls:
            return None
        if not self.first and not chunk.thinking and not chunk.tool_calls:
            return self._text_event(chunk.model, text)
        delta: dict[str, Any] = {"content": text if text or not chunk.tool_calls else None}  # null with calls
        if chunk.thinking:
            delta["reasoning"] = chunk.thinking
        if chunk.tool_calls:
            delta["tool_calls"] = _openai_calls(chunk.tool_calls, self.calls)
            self.calls += len(chunk.tool_calls)
        if self.first:
            delta["role"], self.first = "assistant", False
        return self._event(chunk.model, delta, None)

    def _text_event(self, model: str, text: str) -> bytes:
        """``_event(model, {"content": text}, None)``, byte for byte, without building and encoding the
        whole object for every token: only the text is encoded, between a head and a tail made once."""
        head = self._heads.get(model)
        if head is None:
            marker = "\x00"
            whole = self._event(model, {"content": marker}, None)
            cut = whole.rindex(json.dumps(marker).encode())  # the content comes after the model
            head = self._heads[model] = (whole[:cut], whole[cut + len(json.dumps(marker)):])
        return head[0] + json.dumps(text).encode() + head[1]

    def end(self, result: TaskResult) -> bytes:
        tail = self._event(result.model or "", {}, self._finish(result), hydra=hydra_field(result))
        if self.include_usage:
            usage = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                     "model": result.model or self.requested, "choices": [], "usage": _usage(result)}
            tail += b"data: " + json.dumps(usage).encode() + b"\n\n"
        return tail + b"data: [DONE]\n\n"

    def stream_error(self, message: str) -> bytes:
        return b"data: " + json.dumps(openai_error(502, message, "server_error")).encode() + b"\n\ndata: [DONE]\n\n"

    def _finish(self, result: TaskResult) -> str:
        return "tool_calls" if result.tool_calls else done_reason(result, self.max_tokens)

    def whole(self, result: TaskResult) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": result.text}
        if result.thinking:
            message["reasoning"] = result.thinking
        if result.tool_calls:
            message["content"] = result.text or None  # as OpenAI answers a call without text
            calls = _openai_calls(result.tool_calls)
            message["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in calls]  # index: stream only
        choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": self._finish(result)}
        if result.logprobs:
            choice["logprobs"] = {"content": [_openai_logprob(p) for p in result.logprobs], "refusal": None}
        return {"id": self.id, "object": "chat.completion", "created": self.created,
                "model": result.model or self.requested, "choices": [choice],
                "usage": _usage(result), "hydra": hydra_field(result)}

    def error(self, status: int, message: str) -> dict[str, Any]:
        kind = "service_unavailable" if status == 503 else "server_error" if status >= 500 else "invalid_request_error"
        return openai_error(status, message, kind)


def _model_entry(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "hydra"}


class OpenAIRoutes:
    def __init__(self, service: GatewayService, tracker: Tracker) -> None:
        self.service = service
        self.tracker = tracker

    async def models(self, request: Request) -> Response:
        data = [_model_entry(name) for name in self.service.models()]
        return JSONResponse({"object": "list", "data": data})

    async def model(self, request: Request) -> Response:
        """/v1/models/{id}: one model a healthy node has (a bare name is its :latest), else OpenAI's 404."""
        name = request.path_params["model"]
        for candidate in (name, f"{name}:latest"):
            if self.service.has_model(candidate):
                return JSONResponse(_model_entry(candidate))
        return JSONResponse({"error": {"message": f"The model '{name}' does not exist", "type": "invalid_request_error",
                                       "param": "model", "code": "model_not_found"}}, status_code=404)

    async def chat_completions(self, request: Request) -> Response:
        api, started = "openai_chat", time.monotonic()
        incoming = Incoming()
        try:
            routing, body, model = await incoming.read(self.service, request)
            checked = openai_request(body)  # every field, before a task exists
            handles = await submit_choices(self.service, self.tracker, checked.n, model=model, mode=routing.mode,
                                           priority=routing.priority, task_type=routing.task_type, **checked.fields)
        except (GatewayError, FieldError) as refused:
            exc = invalid_request(refused)
            incoming.refused(self.tracker, api, exc)
            return error_response(exc)
        renderer = OpenAIRenderer(handles[0].id, model, checked.max_tokens, checked.include_usage)

        def on_finish(handle: TaskHandle, result: TaskResult | None) -> None:
            self.tracker.finished(api, handle, result, started)
        if len(handles) > 1:
            return ChoicesResponse(handles, [renderer] * len(handles), on_finish=on_finish)  # type: ignore[return-value]
        return TaskResponse(handles[0], renderer, stream=checked.stream,  # type: ignore[return-value]
                            on_finish=on_finish)
