"""The Ollama API of the gateway: /api/version, /api/tags, /api/ps, /api/show, /api/chat, /api/generate.

Answers keep Ollama's shapes so the official clients, the ollama CLI and Open
WebUI work unchanged. A failover mid-answer continues the answer on another node
(the engine's doing), so the content is one answer; the final object says what
happened in a field of its own, ``"hydra": {"nodes": [...], "notice": "..."}``
(every node that served, in order; the notice only after a failover), which
Ollama's clients ignore. A failure that cannot be continued (after a tool call)
ends the stream with Ollama's ``{"error": ...}`` line.
"""
from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hydra.gateway.admission import GatewayError, Incoming, Tracker, invalid_request, read_json, resolve_model, submit
from hydra.gateway.load_api import PS_REFRESH_TIMEOUT_S, ModelLoads
from hydra.gateway.model_listing import holders_of, ps_body, tags_body
from hydra.gateway.service_api import GatewayService
from hydra.gateway.stream import TaskResponse, done_reason
from hydra.gateway.validate import ollama_request
from hydra.sollol import Chunk, TaskResult
from hydra.sollol.client import shared_ssl_context
from hydra.sollol.validation import FieldError

FALLBACK_VERSION = "0.6.0"


def created_at() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def hydra_field(result: TaskResult) -> dict[str, Any]:
    """What the final object says of Hydra's part: every node that served, and a failover's notice."""
    out: dict[str, Any] = {"nodes": list(result.nodes) or ([result.node] if result.node else [])}
    if result.notice:
        out["notice"] = result.notice
    return out


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def _stats(result: TaskResult) -> dict[str, Any]:
    """Ollama's timing fields (nanoseconds) from what the engine measured."""
    eval_count = result.eval_count or 0
    eval_ns = int(eval_count / result.tokens_per_s * 1e9) if result.tokens_per_s and eval_count else 0
    prompt_ns = max(0, int((result.ttft_s or 0.0) * 1e9))
    total_ns = int((result.duration_s or 0.0) * 1e9)
    total_ns = max(total_ns, prompt_ns + eval_ns)
    return {"total_duration": total_ns, "load_duration": 0, "prompt_eval_count": result.prompt_eval_count or 0,
            "prompt_eval_duration": prompt_ns, "eval_count": eval_count, "eval_duration": eval_ns}


class OllamaRenderer:
    """NDJSON in Ollama's chat (``message``) or generate (``response``) shape."""

    media_type = "application/x-ndjson"

    def __init__(self, chat: bool, model: str | None, max_tokens: int | None) -> None:
        self.chat = chat
        self.requested = model or "auto"
        self.max_tokens = max_tokens

    def _body(self, model: str, text: str, thinking: str, done: bool,
              tool_calls: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model or self.requested, "created_at": created_at()}
        if self.chat:
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if thinking:
                message["thinking"] = thinking
            if tool_calls:  # Ollama's shape as the node sent it: [{"function": {"name", "arguments": {...}}}]
                message["tool_calls"] = list(tool_calls)
            body["message"] = message
        else:
            body["response"] = text
            if thinking:
                body["thinking"] = thinking
        body["done"] = done
        return body

    def chunk(self, chunk: Chunk) -> bytes | None:
        if not chunk.text and not chunk.thinking and not chunk.tool_calls:
            return None
        return _line(self._body(chunk.model, chunk.text, chunk.thinking, False, chunk.tool_calls))

    def _final(self, result: TaskResult, text: str, thinking: str,
               tool_calls: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
        body = self._body(result.model or "", text, thinking, True, tool_calls)
        body["done_reason"] = done_reason(result, self.max_tokens)
        body.update(_stats(result))
        if not self.chat:  # the node's /api/generate gave it (validate.py sends even a plain prompt there)
            body["context"] = list(result.context) if result.context is not None else []
        if result.logprobs:
            body["logprobs"] = list(result.logprobs)
        body["hydra"] = hydra_field(result)
        return body

    def end(self, result: TaskResult) -> bytes:
        return _line(self._final(result, "", ""))

    def stream_error(self, message: str) -> bytes:
        return _line({"error": message})

    def whole(self, result: TaskResult) -> dict[str, Any]:
        return self._final(result, result.text, result.thinking, result.tool_calls)

    def error(self, status: int, message: str) -> dict[str, Any]:
        return {"error": message}


def error_response(exc: GatewayError) -> JSONResponse:
    return JSONResponse({"error": exc.message}, status_code=exc.status)


class OllamaRoutes:
    def __init__(self, service: GatewayService, tracker: Tracker) -> None:
        self.service = service
        self.tracker = tracker
        self._http: httpx.AsyncClient | None = None  # made on first use, inside the server's event loop
        self._loads = ModelLoads(service)  # an empty prompt or messages: load or unload (load_api.py)

    async def aclose(self) -> None:
        await self._loads.aclose()
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def root(self, request: Request) -> Response:
        return Response("Ollama is running", media_type="text/plain")

    async def version(self, request: Request) -> Response:
        versions = [n.version for n in self.service.snapshot().healthy_nodes if n.version]
        return JSONResponse({"version": max(versions, default=FALLBACK_VERSION)})

    async def tags(self, request: Request) -> Response:
        return JSONResponse(tags_body(self.service.snapshot()))

    async def ps(self, request: Request) -> Response:
        snapshot = self.service.snapshot()
        # A model a task has just loaded is known before the node's /api/ps gave its expiry; ask now.
        unsure = [n.name for n in snapshot.healthy_nodes if any(not m.expires_at for m in n.loaded)]
        if unsure:
            await asyncio.to_thread(self.service.poll_nodes, unsure, PS_REFRESH_TIMEOUT_S)
            snapshot = self.service.snapshot()
        return JSONResponse(ps_body(snapshot))

    async def show(self, request: Request) -> Response:
        try:
            body = await read_json(request)
            name = body.get("model") or body.get("name")
            model = resolve_model(self.service, name)
            if model is None:
                raise GatewayError(400, "model is required (a name from /api/tags)")
        except GatewayError as exc:
            return error_response(exc)
        snapshot = self.service.snapshot()
        by_name = {n.name: n for n in snapshot.healthy_nodes}
        nodes = [by_name[name] for name in holders_of(snapshot, model)]
        last = "no healthy node has it"
        if self._http is None:
            # one per gateway; the shared SSL context spares it the ~55 ms of loading the CA bundle
            self._http = httpx.AsyncClient(timeout=10.0, verify=shared_ssl_context())
        client = self._http
        for node in nodes:
            try:
                reply = await client.post(f"{node.url}/api/show", json={**body, "model": model})
            except httpx.HTTPError as exc:
                last = f"{node.name}: {exc}"
                continue
            if reply.status_code < 500:
                return Response(reply.content, status_code=reply.status_code, media_type="application/json",
                                headers={"X-Hydra-Node": node.name, "X-Hydra-Model": model})
            last = f"{node.name}: HTTP {reply.status_code}"
        return JSONResponse({"error": f"model {model!r}: no node answered /api/show ({last})"}, status_code=503)

    async def chat(self, request: Request) -> Response:
        return await self._generate(request, chat=True)

    async def generate(self, request: Request) -> Response:
        return await self._generate(request, chat=False)

    async def _generate(self, request: Request, *, chat: bool) -> Response:
        api = "ollama_chat" if chat else "ollama_generate"
        started = time.monotonic()
        incoming = Incoming()
        try:
            routing, body, model = await incoming.read(self.service, request)
            checked = ollama_request(body, chat=chat)  # every field, before a task exists (validate.py)
            if checked.load is not None:
                return await self._loads.answer(model, checked, chat=chat)
            handle = await submit(self.service, self.tracker, model=model, mode=routing.mode, priority=routing.priority,
                                  task_type=routing.task_type, **checked.fields)
        except (GatewayError, FieldError) as refused:
            exc = invalid_request(refused)
            incoming.refused(self.tracker, api, exc)
            return error_response(exc)
        renderer = OllamaRenderer(chat, model, checked.max_tokens)
        return TaskResponse(handle, renderer, stream=checked.stream,  # type: ignore[return-value]
                            on_finish=lambda h, r: self.tracker.finished(api, h, r, started))
