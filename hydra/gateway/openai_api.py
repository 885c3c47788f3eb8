"""The OpenAI API of the gateway: GET /v1/models and POST /v1/chat/completions (SSE and not).

Thinking goes out as ``reasoning`` (as Ollama's own OpenAI layer names it) next
to ``content``; clients that do not know the field ignore it. A failover restart
is a bracketed note in the content, as on the Ollama side.

Tools: OpenAI's ``tools`` go to the node as they are (Ollama takes the same
``{"type": "function", "function": {...}}`` shape; ``tool_choice: "none"`` sends
none). The model's calls come back in OpenAI's shape (``tool_calls`` with an id
and the arguments as a JSON string, ``finish_reason: "tool_calls"``); the
assistant's calls and the ``tool`` results a client sends back become Ollama's
messages (arguments as an object, ``tool_call_id`` as the called ``tool_name``).
"""
from __future__ import annotations

import json
import secrets
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hydra.gateway.ollama_api import restart_note
from hydra.gateway.service_api import GatewayService
from hydra.gateway.stream import GatewayError, Incoming, TaskResponse, Tracker, done_reason, submit
from hydra.sollol import Chunk, TaskResult

# OpenAI request fields that map onto Ollama options.
_OPTION_FIELDS = {"temperature": "temperature", "top_p": "top_p", "seed": "seed", "stop": "stop",
                  "frequency_penalty": "frequency_penalty", "presence_penalty": "presence_penalty"}


def openai_error(status: int, message: str, kind: str = "invalid_request_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def error_response(exc: GatewayError) -> JSONResponse:
    return JSONResponse(openai_error(exc.status, exc.message, exc.kind), status_code=exc.status)


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
        schema = (value.get("json_schema") or {}).get("schema") if isinstance(value.get("json_schema"), dict) else None
        if isinstance(schema, dict):
            return schema
        raise GatewayError(400, "response_format json_schema needs json_schema.schema, a JSON schema object")
    raise GatewayError(400, 'response_format.type must be "text", "json_object" or "json_schema"')


def _messages(raw: Any) -> list[dict[str, Any]]:
    """OpenAI messages as Ollama's: content parts of type text are joined, tool calls and results
    converted (see the module's docstring)."""
    if not isinstance(raw, list) or not raw:
        raise GatewayError(400, "messages must be a non-empty list")
    out = []
    called: dict[str, str] = {}  # tool_call_id -> function name, from the assistant's calls so far
    for m in raw:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise GatewayError(400, "each message needs a role and content")
        content = m.get("content") or ""
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
        if not isinstance(content, str):
            raise GatewayError(400, "message content must be a string or a list of text parts")
        role = "system" if m["role"] == "developer" else m["role"]
        message: dict[str, Any] = {"role": role, "content": content}
        if role == "assistant" and m.get("tool_calls"):
            message["tool_calls"] = _calls_to_ollama(m["tool_calls"], called)
        if role == "tool":
            name = called.get(str(m.get("tool_call_id"))) or m.get("name")
            if isinstance(name, str) and name:
                message["tool_name"] = name  # Ollama ties a result to its call by the function's name
        out.append(message)
    return out


def _calls_to_ollama(calls: Any, called: dict[str, str]) -> list[dict[str, Any]]:
    """An assistant's OpenAI tool_calls as Ollama's: the arguments as an object, not a JSON string."""
    if not isinstance(calls, list):
        raise GatewayError(400, "tool_calls must be a list")
    out = []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise GatewayError(400, 'each tool call needs {"function": {"name": ..., "arguments": ...}}')
        arguments = function.get("arguments") or {}
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except ValueError:
                raise GatewayError(400, f"tool call arguments are not JSON: {arguments[:80]!r}") from None
        if not isinstance(arguments, dict):
            raise GatewayError(400, "tool call arguments must be a JSON object")
        if call.get("id") is not None:
            called[str(call["id"])] = function["name"]
        out.append({"function": {"name": function["name"], "arguments": arguments}})
    return out


def _tools(body: dict[str, Any]) -> list[dict[str, Any]] | None:
    tools = body.get("tools")
    if tools is None or body.get("tool_choice") == "none":
        return None
    if not isinstance(tools, list) or not all(isinstance(t, dict) and t.get("type", "function") == "function"
                                              and isinstance(t.get("function"), dict) for t in tools):
        raise GatewayError(400, 'tools must be a list of {"type": "function", "function": {"name": ..., '
                                '"parameters": ...}}')
    return tools


def _openai_calls(calls: tuple[dict[str, Any], ...], first: int = 0) -> list[dict[str, Any]]:
    """Ollama's calls in OpenAI's shape; ``index`` numbers them within the answer (streaming)."""
    return [{"index": first + i, "id": f"call_{secrets.token_hex(12)}", "type": "function",
             "function": {"name": c["function"]["name"],
                          "arguments": json.dumps(c["function"].get("arguments") or {})}}
            for i, c in enumerate(calls)]


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

    def _event(self, model: str, delta: dict[str, Any], finish: str | None, **extra: Any) -> bytes:
        body = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": model or self.requested,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
        return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"

    def chunk(self, chunk: Chunk) -> bytes | None:
        text = restart_note(chunk) if chunk.restart else chunk.text
        if not text and not chunk.thinking and not chunk.tool_calls:
            return None
        delta: dict[str, Any] = {"content": text if text or not chunk.tool_calls else None}  # null with calls
        if chunk.thinking:
            delta["reasoning"] = chunk.thinking
        if chunk.tool_calls:
            delta["tool_calls"] = _openai_calls(chunk.tool_calls, self.calls)
            self.calls += len(chunk.tool_calls)
        if self.first:
            delta["role"], self.first = "assistant", False
        return self._event(chunk.model, delta, None)

    def end(self, result: TaskResult) -> bytes:
        tail = self._event(result.model or "", {}, self._finish(result))
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
        return {"id": self.id, "object": "chat.completion", "created": self.created,
                "model": result.model or self.requested,
                "choices": [{"index": 0, "message": message, "finish_reason": self._finish(result)}],
                "usage": _usage(result)}

    def error(self, status: int, message: str) -> dict[str, Any]:
        kind = "service_unavailable" if status == 503 else "server_error" if status >= 500 else "invalid_request_error"
        return openai_error(status, message, kind)


class OpenAIRoutes:
    def __init__(self, service: GatewayService, tracker: Tracker) -> None:
        self.service = service
        self.tracker = tracker

    async def models(self, request: Request) -> Response:
        data = [{"id": name, "object": "model", "created": 0, "owned_by": "hydra"} for name in self.service.models()]
        return JSONResponse({"object": "list", "data": data})

    async def chat_completions(self, request: Request) -> Response:
        api, started = "openai_chat", time.monotonic()
        incoming = Incoming()
        try:
            routing, body, model = await incoming.read(self.service, request)
            messages = _messages(body.get("messages"))
            limit = body.get("max_completion_tokens", body.get("max_tokens"))
            if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
                raise GatewayError(400, f"max_tokens must be a positive integer, got {limit!r}")
            options = {o: body[f] for f, o in _OPTION_FIELDS.items() if body.get(f) is not None}
            think = None
            effort = body.get("reasoning_effort")
            if isinstance(effort, str):
                think = False if effort == "none" else effort
            answer_format = _response_format(body.get("response_format"))
            tools = _tools(body)
            stream_options = body.get("stream_options") or {}
            include_usage = isinstance(stream_options, dict) and bool(stream_options.get("include_usage"))
            handle = await submit(self.service, self.tracker, messages=messages, model=model, mode=routing.mode,
                                  priority=routing.priority, task_type=routing.task_type, max_tokens=limit,
                                  options=options, think=think, format=answer_format, tools=tools)
        except GatewayError as exc:
            incoming.refused(self.tracker, api, exc)
            return error_response(exc)
        renderer = OpenAIRenderer(handle.id, model, limit, include_usage)
        return TaskResponse(handle, renderer, stream=body.get("stream") is True,  # type: ignore[return-value]
                            on_finish=lambda h, r: self.tracker.finished(api, h, r, started))
