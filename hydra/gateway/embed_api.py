"""Embeddings through the cluster: Ollama's /api/embed and legacy /api/embeddings, OpenAI's /v1/embeddings.

Each request becomes one embedding task (``Hydra.embed``): routed to a healthy node that has the model,
load-aware, failed over when a node fails, recorded in history and metrics with task type "embedding".
The answer is one JSON object (never a stream), in the shape of the API that was called; a task that
fails answers with the HTTP status of its failure (a node's 400, "does not support embedding", comes
back as the node said it).

Every field a client sends is honoured or refused with a 400 naming it: ``input`` (a string or a list of
strings; OpenAI's token arrays are refused, Hydra has no tokenizer of the model), ``truncate``,
``dimensions``, ``keep_alive``, ``options``, OpenAI's ``encoding_format`` ("float" or "base64": little-endian
float32, as the OpenAI SDKs decode it). OpenAI's ``user`` names the end user for abuse tracking: it
changes no answer and is not sent on. Fields neither API defines are ignored, as Ollama ignores them.
"""
from __future__ import annotations

import asyncio
import base64
import struct
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hydra.gateway.admission import GatewayError, Incoming, Tracker, invalid_request, refusal_as_http_error
from hydra.gateway.openai_api import openai_error
from hydra.gateway.service_api import GatewayService
from hydra.gateway.stream import TaskResponse
from hydra.sollol import Chunk, HydraError, TaskHandle, TaskResult
from hydra.sollol.embedding import MAX_DIMENSIONS, check_inputs
from hydra.sollol.validation import FieldError, check_bool, check_integer, check_keep_alive, check_options, kind

TOKEN_ARRAYS = ("input as token arrays is not supported: send the texts as strings (LangChain's OpenAIEmbeddings: "
                "set check_embedding_ctx_length=False)")


@dataclass(frozen=True)
class EmbedRequest:
    """What one request asks of ``Hydra.embed``, checked."""

    texts: list[str]
    fields: dict[str, Any]           # truncate, dimensions, keep_alive, options: only those given
    encoding: str = "float"          # OpenAI's encoding_format


def _common(body: dict[str, Any], *, dimensions: bool = True) -> dict[str, Any]:
    """truncate, dimensions, keep_alive and options, each checked; only those the body has."""
    fields: dict[str, Any] = {}
    if body.get("truncate") is not None:
        fields["truncate"] = check_bool(body["truncate"], "truncate")
    if dimensions and body.get("dimensions") is not None:
        fields["dimensions"] = check_integer(body["dimensions"], "dimensions", 1, MAX_DIMENSIONS)
    if body.get("keep_alive") is not None:
        check_keep_alive(body["keep_alive"])
        fields["keep_alive"] = body["keep_alive"]
    if body.get("options") is not None:
        fields["options"] = check_options(body["options"])
    return fields


def ollama_embed_request(body: dict[str, Any]) -> EmbedRequest:
    """/api/embed: ``input`` a string or a list of strings (empty or absent: the model only loads)."""
    value = body.get("input")
    texts = [] if value is None or value == "" else check_inputs(value)
    return EmbedRequest(texts, _common(body))


def ollama_embeddings_request(body: dict[str, Any]) -> EmbedRequest:
    """/api/embeddings (legacy): one ``prompt`` (empty or absent: the model only loads)."""
    prompt = body.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise FieldError("prompt", f"must be a string, got {kind(prompt)}")
    return EmbedRequest([prompt] if prompt else [], _common(body, dimensions=False))


def openai_embed_request(body: dict[str, Any]) -> EmbedRequest:
    """/v1/embeddings: ``input`` a string or a list of strings, none empty; dimensions; encoding_format."""
    value = body.get("input")
    if value is None:
        raise FieldError("input", "is required: a string or a list of strings")
    if isinstance(value, list) and value and all(isinstance(v, (int, list)) for v in value):
        raise FieldError("input", "", text=TOKEN_ARRAYS)
    texts = check_inputs(value)
    if not texts or any(not text for text in texts):
        raise FieldError("input", "must hold at least one text, and no empty string")
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise FieldError("encoding_format", f'must be "float" or "base64", got {encoding!r}'[:200])
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise FieldError("user", f"must be a string, got {kind(user)}")
    fields: dict[str, Any] = {}
    if body.get("dimensions") is not None:
        fields["dimensions"] = check_integer(body["dimensions"], "dimensions", 1, MAX_DIMENSIONS)
    return EmbedRequest(texts, fields, encoding)


def _vectors(result: TaskResult) -> list[list[float]]:
    return [list(vector) for vector in result.embeddings]


def _base64(vector: tuple[float, ...]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


class _Renderer:
    """One API's shape of an embedding answer; never streamed (TaskResponse with stream=False)."""

    media_type = "application/json"

    def __init__(self, model: str, whole: Callable[[str, TaskResult], dict[str, Any]],
                 error: Callable[[int, str], dict[str, Any]]) -> None:
        self.model = model
        self._whole = whole
        self._error = error

    def chunk(self, chunk: Chunk) -> bytes | None:
        return None  # an embedding task streams no chunks: its vectors come whole with the result

    def end(self, result: TaskResult) -> bytes:
        raise RuntimeError("embedding answers are never streamed")

    def stream_error(self, message: str) -> bytes:
        raise RuntimeError("embedding answers are never streamed")

    def whole(self, result: TaskResult) -> dict[str, Any]:
        return self._whole(self.model, result)

    def error(self, status: int, message: str) -> dict[str, Any]:
        return self._error(status, message)


def _ollama_embed(model: str, result: TaskResult) -> dict[str, Any]:
    return {"model": model, "embeddings": _vectors(result),
            "total_duration": int((result.duration_s or 0.0) * 1e9), "load_duration": 0,
            "prompt_eval_count": result.prompt_eval_count or 0,
            "hydra": {"nodes": list(result.nodes) or ([result.node] if result.node else [])}}


def _ollama_embeddings(model: str, result: TaskResult) -> dict[str, Any]:
    vectors = _vectors(result)
    return {"embedding": vectors[0] if vectors else []}


def _ollama_error(status: int, message: str) -> dict[str, Any]:
    return {"error": message}


def _openai_whole(encoding: str) -> Callable[[str, TaskResult], dict[str, Any]]:
    def whole(model: str, result: TaskResult) -> dict[str, Any]:
        data = [{"object": "embedding", "index": i,
                 "embedding": _base64(vector) if encoding == "base64" else list(vector)}
                for i, vector in enumerate(result.embeddings)]
        tokens = result.prompt_eval_count or 0
        return {"object": "list", "data": data, "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
    return whole


class EmbedRoutes:
    """The three embedding routes, over the gateway's service and tracker."""

    def __init__(self, service: GatewayService, tracker: Tracker) -> None:
        self.service = service
        self.tracker = tracker

    async def embed(self, request: Request) -> Response:
        return await self._serve(request, "ollama_embed", ollama_embed_request,
                                 lambda model, req: _Renderer(model, _ollama_embed, _ollama_error))

    async def embeddings(self, request: Request) -> Response:
        return await self._serve(request, "ollama_embeddings", ollama_embeddings_request,
                                 lambda model, req: _Renderer(model, _ollama_embeddings, _ollama_error))

    async def openai_embeddings(self, request: Request) -> Response:
        return await self._serve(request, "openai_embeddings", openai_embed_request,
                                 lambda model, req: _Renderer(model, _openai_whole(req.encoding), openai_error))

    async def _serve(self, request: Request, api: str, parse: Callable[[dict[str, Any]], EmbedRequest],
                     renderer: Callable[[str, EmbedRequest], _Renderer]) -> Response:
        started = time.monotonic()
        incoming = Incoming()
        openai = api.startswith("openai")
        try:
            routing, body, model = await incoming.read(self.service, request)
            if model is None:
                raise GatewayError(400, "model is required: name an embedding model (e.g. nomic-embed-text)",
                                   param="model")
            asked = parse(body)
            handle = await self._submit(asked, model, routing.mode, routing.priority)
        except (GatewayError, FieldError) as refused:
            exc = invalid_request(refused)
            incoming.refused(self.tracker, api, exc)
            shape = (openai_error(exc.status, exc.message, exc.kind, exc.param) if openai
                     else _ollama_error(exc.status, exc.message))
            return JSONResponse(shape, status_code=exc.status)
        label = str(body.get("model") or model)  # Ollama and OpenAI echo the name as it was asked for
        return TaskResponse(handle, renderer(label, asked), stream=False,  # type: ignore[return-value]
                            on_finish=lambda h, r: self.tracker.finished(api, h, r, started))

    async def _submit(self, asked: EmbedRequest, model: str, mode: str | None, priority: int) -> TaskHandle:
        """``service.embed`` on the gateway's submit pool (it writes history); refusals become HTTP errors."""
        def run() -> TaskHandle:
            handle = self.service.embed(asked.texts, model=model, mode=mode, priority=priority, source="gateway",
                                        **asked.fields)
            self.tracker.started(handle)
            return handle

        future = self.tracker.submits.submit(run)
        try:
            return await asyncio.wrap_future(future)
        except (HydraError, ValueError) as exc:
            raise refusal_as_http_error(exc) from None
        except asyncio.CancelledError:  # the client left while it was submitted: its task has no reader
            future.add_done_callback(_cancel_orphan)
            raise


def _cancel_orphan(future: Future[TaskHandle]) -> None:
    """A task submitted for a client that has left: nobody will read it, so it frees its node now."""
    if not future.cancelled() and future.exception() is None:
        future.result().cancel()
