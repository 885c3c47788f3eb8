"""The OpenAI API of the gateway: GET /v1/models and POST /v1/chat/completions (SSE and not).

Thinking goes out as ``reasoning`` (as Ollama's own OpenAI layer names it) next
to ``content``; clients that do not know the field ignore it. A failover restart
is a bracketed note in the content, as on the Ollama side.
"""
from __future__ import annotations

import json
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hydra.gateway_ollama import restart_note
from hydra.gateway_stream import (GatewayError, Routing, TaskResponse, Tracker, done_reason, read_json, resolve_model,
                                  submit)
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
    """OpenAI messages as Ollama's: content parts of type text are joined."""
    if not isinstance(raw, list) or not raw:
        raise GatewayError(400, "messages must be a non-empty list")
    out = []
    for m in raw:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise GatewayError(400, "each message needs a role and content")
        content = m.get("content") or ""
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
        if not isinstance(content, str):
            raise GatewayError(400, "message content must be a string or a list of text parts")
        role = "system" if m["role"] == "developer" else m["role"]
        out.append({"role": role, "content": content})
    return out


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

    def _event(self, model: str, delta: dict[str, Any], finish: str | None, **extra: Any) -> bytes:
        body = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": model or self.requested,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
        return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"

    def chunk(self, chunk: Chunk) -> bytes | None:
        text = restart_note(chunk) if chunk.restart else chunk.text
        if not text and not chunk.thinking:
            return None
        delta: dict[str, Any] = {"content": text}
        if chunk.thinking:
            delta["reasoning"] = chunk.thinking
        if self.first:
            delta["role"], self.first = "assistant", False
        return self._event(chunk.model, delta, None)

    def end(self, result: TaskResult) -> bytes:
        tail = self._event(result.model or "", {}, done_reason(result, self.max_tokens))
        if self.include_usage:
            usage = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                     "model": result.model or self.requested, "choices": [], "usage": _usage(result)}
            tail += b"data: " + json.dumps(usage).encode() + b"\n\n"
        return tail + b"data: [DONE]\n\n"

    def stream_error(self, message: str) -> bytes:
        return b"data: " + json.dumps(openai_error(502, message, "server_error")).encode() + b"\n\ndata: [DONE]\n\n"

    def whole(self, result: TaskResult) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": result.text}
        if result.thinking:
            message["reasoning"] = result.thinking
        return {"id": self.id, "object": "chat.completion", "created": self.created,
                "model": result.model or self.requested,
                "choices": [{"index": 0, "message": message, "finish_reason": done_reason(result, self.max_tokens)}],
                "usage": _usage(result)}

    def error(self, status: int, message: str) -> dict[str, Any]:
        return openai_error(status, message, "service_unavailable" if status == 503 else "server_error")


class OpenAIRoutes:
    def __init__(self, hydra: Any, tracker: Tracker) -> None:
        self.hydra = hydra
        self.tracker = tracker

    async def models(self, request: Request) -> Response:
        data = [{"id": name, "object": "model", "created": 0, "owned_by": "hydra"} for name in self.hydra.models()]
        return JSONResponse({"object": "list", "data": data})

    async def chat_completions(self, request: Request) -> Response:
        api, started = "openai_chat", time.monotonic()
        routing: Routing | None = None
        requested = None
        try:
            routing = Routing.from_headers(request)
            body = await read_json(request)
            requested = body.get("model")
            model = resolve_model(self.hydra, requested)
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
            stream_options = body.get("stream_options") or {}
            include_usage = isinstance(stream_options, dict) and bool(stream_options.get("include_usage"))
            handle = await submit(self.hydra, self.tracker, messages=messages, model=model, mode=routing.mode,
                                  priority=routing.priority, task_type=routing.task_type, max_tokens=limit,
                                  options=options, think=think, format=answer_format)
        except GatewayError as exc:
            self.tracker.refused(api, requested, routing.mode if routing else None, exc.status)
            return error_response(exc)
        renderer = OpenAIRenderer(handle.id, model, limit, include_usage)
        return TaskResponse(handle, renderer, stream=body.get("stream") is True,  # type: ignore[return-value]
                            on_finish=lambda h, r: self.tracker.finished(api, h, r, started))
