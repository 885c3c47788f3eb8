"""The OpenAI Batch API on the gateway, over hydra/batch: the official ``openai`` client's batch flow.

    POST   /v1/files                  multipart: purpose=batch, file=<JSON Lines of requests>
    GET    /v1/files/{id}             the file object;  DELETE: gone
    GET    /v1/files/{id}/content     the bytes: an upload as sent, or a batch's output or error file
    POST   /v1/batches                {"input_file_id", "endpoint": "/v1/chat/completions", "completion_window"}
    GET    /v1/batches[?limit&after]  newest first;  GET /v1/batches/{id};  POST /v1/batches/{id}/cancel

Every line of an upload is checked when it arrives (UTF-8, JSON objects, a unique ``custom_id``,
``method`` POST, the ``url`` of chat completions, a ``body`` the chat completions route would take):
a bad file is a 400 naming the line, and nothing is stored. An upload over the input limit is a
413 before anything is parsed. A batch's rows run as any batch's do (priority 2 by default, or
``X-Hydra-Priority``; async mode, or ``X-Hydra-Mode``), behind interactive work. Output lines are
OpenAI's: ``{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}``; the body
is a ``chat.completion`` with the answer and its usage (thinking and tool calls are not kept).
"""
from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Any

from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from hydra.batch import BatchInputError, BatchOptions
from hydra.batch.input import MAX_INPUT_BYTES, MAX_ROWS, decode
from hydra.batch.rows import BatchInfo
from hydra.gateway.admission import GatewayError, Routing, read_json
from hydra.gateway.openai_api import openai_error, openai_request
from hydra.gateway.service_api import GatewayService
from hydra.sollol.validation import FieldError

ENDPOINT = "/v1/chat/completions"
WINDOW_S = 24 * 3600
MULTIPART_SLACK = 64 * 1024          # the form's boundaries and headers around the file
MAX_UPLOAD_BYTES = MAX_INPUT_BYTES + MULTIPART_SLACK
DRAIN_LIMIT = 256 * 2**20            # a refused upload is read to its end (so the client sees the 413) up to this
MAX_METADATA = 16
LIST_LIMIT = 100


def _refuse(exc: GatewayError) -> JSONResponse:
    return JSONResponse(openai_error(exc.status, exc.message, exc.kind, exc.param), status_code=exc.status)


# --- checking an upload ---

def parse_requests(content: bytes) -> tuple[list[dict[str, str]], list[dict[str, Any]], list[str]]:
    """The lines of a batch input file as (keys, task fields, shown prompts); GatewayError 400 naming
    the first bad line. Runs in a worker thread (a 20 MB file is a few hundred milliseconds)."""
    try:
        text = decode(content)
    except BatchInputError as exc:
        raise GatewayError(400, str(exc)) from None
    keys: list[dict[str, str]] = []
    requests: list[dict[str, Any]] = []
    prompts: list[str] = []
    seen: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        custom_id, fields, prompt = _request_line(line, number)
        if custom_id in seen:
            raise GatewayError(400, f"line {number}: custom_id {custom_id!r} is used twice; each must be unique")
        seen.add(custom_id)
        keys.append({"custom_id": custom_id})
        requests.append(fields)
        prompts.append(prompt)
        if len(keys) > MAX_ROWS:
            raise GatewayError(400, f"the file has more than {MAX_ROWS:,} requests; split it into several batches")
    if not keys:
        raise GatewayError(400, "the file has no requests: one JSON object a line, "
                                '{"custom_id": ..., "method": "POST", "url": "/v1/chat/completions", "body": {...}}')
    return keys, requests, prompts


def _request_line(line: str, number: int) -> tuple[str, dict[str, Any], str]:
    try:
        value = json.loads(line)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise GatewayError(400, f"line {number} is not JSON ({getattr(exc, 'msg', exc)})") from None
    if not isinstance(value, dict):
        raise GatewayError(400, f"line {number} must be a JSON object")
    custom_id = value.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id or len(custom_id) > 512:
        raise GatewayError(400, f"line {number}: custom_id must be a non-empty string", param="custom_id")
    if value.get("method") != "POST":
        raise GatewayError(400, f"line {number}: method must be POST", param="method")
    if value.get("url") != ENDPOINT:
        raise GatewayError(400, f"line {number}: url must be {ENDPOINT} (the only endpoint batches run)",
                           param="url")
    body = value.get("body")
    if not isinstance(body, dict):
        raise GatewayError(400, f"line {number}: body must be a chat completions request object", param="body")
    try:
        checked = openai_request(body)
    except FieldError as exc:
        raise GatewayError(400, f"line {number}: {exc}", param=f"body.{exc.field}") from None
    except GatewayError as exc:
        raise GatewayError(exc.status, f"line {number}: {exc.message}", exc.kind, exc.param) from None
    if checked.n != 1:
        raise GatewayError(400, f"line {number}: n must be 1 in a batch (one answer per request)", param="body.n")
    fields = dict(checked.fields)
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise GatewayError(400, f"line {number}: body.model must be a string", param="body.model")
    name = (model or "").strip()
    fields["model"] = None if name.lower() in ("", "auto") else name
    last_user = next((m.get("content") or "" for m in reversed(fields["messages"]) if m.get("role") == "user"), "")
    return custom_id, fields, last_user


# --- the shapes ---

def file_object(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "object": "file", "bytes": row["bytes"], "created_at": int(row["created_at"]),
            "filename": row["filename"], "purpose": row["purpose"], "status": "processed", "status_details": None}


def _stamp(value: float | None) -> int | None:
    return int(value) if value is not None else None


def _status(info: BatchInfo, counts: dict[str, int]) -> str:
    if info.status == "done":
        return "completed"
    if info.status == "cancelled":
        return "cancelling" if counts.get("running") else "cancelled"
    return "in_progress"


def batch_object(info: BatchInfo, counts: dict[str, int]) -> dict[str, Any]:
    openai = info.meta.get("openai", {})
    status = _status(info, counts)
    ended = status in ("completed", "cancelled")
    failed = counts.get("failed", 0) + counts.get("cancelled", 0)
    created = int(info.created_at)
    return {
        "id": info.id, "object": "batch", "endpoint": openai.get("endpoint", ENDPOINT), "errors": None,
        "input_file_id": openai.get("input_file_id", ""), "completion_window": openai.get("completion_window", "24h"),
        "status": status, "created_at": created, "expires_at": created + WINDOW_S,
        "in_progress_at": _stamp(info.started_at),
        "finalizing_at": _stamp(info.finished_at) if status == "completed" else None,
        "completed_at": _stamp(info.finished_at) if status == "completed" else None,
        "cancelling_at": _stamp(info.finished_at) if info.status == "cancelled" else None,
        "cancelled_at": _stamp(info.finished_at) if status == "cancelled" else None,
        "failed_at": None, "expired_at": None,
        "output_file_id": f"file-{info.id}-output" if ended and counts.get("done") else None,
        "error_file_id": f"file-{info.id}-errors" if ended and failed else None,
        "request_counts": {"total": info.total, "completed": counts.get("done", 0), "failed": failed},
        "metadata": openai.get("metadata"),
    }


def result_line(row: dict[str, Any]) -> dict[str, Any]:
    """One row as a line of the output file (done) or of the error file (failed, cancelled)."""
    task_id = row["task_id"] or ""
    head = {"id": f"batch_req_{task_id or row['idx']}", "custom_id": row["data"].get("custom_id", "")}
    if row["status"] == "done":
        prompt, completion = row.get("prompt_tokens") or 0, row.get("tokens") or 0
        body = {"id": f"chatcmpl-{task_id}", "object": "chat.completion", "created": int(row["finished_at"] or 0),
                "model": row["model"] or "", "choices": [{"index": 0, "finish_reason": "stop",
                                                          "message": {"role": "assistant", "content": row["answer"]}}],
                "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                          "total_tokens": prompt + completion}}
        return {**head, "response": {"status_code": 200, "request_id": task_id, "body": body}, "error": None}
    if row["status"] == "cancelled":
        return {**head, "response": None, "error": {"code": "batch_cancelled", "message": row["error"] or "cancelled"}}
    body = openai_error(500, row["error"] or "the task failed", "server_error")
    return {**head, "response": {"status_code": 500, "request_id": task_id, "body": body}, "error": None}


class BatchRoutes:
    def __init__(self, service: GatewayService) -> None:
        self.service = service

    # --- files ---

    async def upload(self, request: Request) -> Response:
        try:
            form_body = await _bounded_body(request)
            purpose, filename, content = await _form(request, form_body)
            keys, _, _ = await run_in_threadpool(parse_requests, content)
        except GatewayError as exc:
            return _refuse(exc)
        stored = await run_in_threadpool(self.service.batches.store.add_file, filename, purpose, content)
        return JSONResponse({**file_object(stored), "hydra": {"requests": len(keys)}})

    async def file(self, request: Request) -> Response:
        file_id = request.path_params["file_id"]
        if _generated(file_id) is not None:
            return await self._generated_object(file_id)
        row = await run_in_threadpool(self.service.batches.store.file, file_id)
        return JSONResponse(file_object(row)) if row else _refuse(_no_file(file_id))

    async def delete_file(self, request: Request) -> Response:
        file_id = request.path_params["file_id"]
        if not await run_in_threadpool(self.service.batches.store.delete_file, file_id):
            return _refuse(_no_file(file_id))
        return JSONResponse({"id": file_id, "object": "file", "deleted": True})

    async def file_content(self, request: Request) -> Response:
        file_id = request.path_params["file_id"]
        generated = _generated(file_id)
        if generated is not None:
            batch_id, kind = generated
            if await run_in_threadpool(self.service.batches.get, batch_id) is None:
                return _refuse(_no_file(file_id))
            lines = self._result_lines(batch_id, kind == "output")
            return StreamingResponse(iterate_in_threadpool(lines), media_type="application/jsonl")
        row = await run_in_threadpool(self.service.batches.store.file, file_id, content=True)
        if row is None:
            return _refuse(_no_file(file_id))
        return Response(row["content"], media_type="application/jsonl")

    async def _generated_object(self, file_id: str) -> Response:
        batch_id, kind = _generated(file_id) or ("", "")
        info = await run_in_threadpool(self.service.batches.get, batch_id)
        if info is None:
            return _refuse(_no_file(file_id))
        size = sum(len(line) for line in await run_in_threadpool(lambda: list(self._result_lines(batch_id,
                                                                                                   kind == "output"))))
        return JSONResponse(file_object({"id": file_id, "bytes": size, "created_at": info.finished_at or time.time(),
                                         "filename": f"{batch_id}_{kind}.jsonl", "purpose": "batch_output"}))

    def _result_lines(self, batch_id: str, output: bool) -> Iterator[bytes]:
        for row in self.service.batches.store.iter_rows(batch_id):
            if (row["status"] == "done") == output and row["status"] in ("done", "failed", "cancelled"):
                yield json.dumps(result_line(row), ensure_ascii=False).encode() + b"\n"

    # --- batches ---

    async def create(self, request: Request) -> Response:
        try:
            routing = Routing.from_headers(request)
            body = await read_json(request)
            input_file_id, metadata = _create_fields(body)
            row = await run_in_threadpool(self.service.batches.store.file, input_file_id, content=True)
            if row is None:
                raise GatewayError(404, f"no file {input_file_id}: upload it with POST /v1/files (purpose batch)",
                                   param="input_file_id")
            keys, requests, prompts = await run_in_threadpool(parse_requests, row["content"])
            options = BatchOptions(mode=routing.mode or "async",
                                   priority=routing.priority if request.headers.get("x-hydra-priority") else 2)
            meta = {"openai": {"input_file_id": input_file_id, "endpoint": ENDPOINT, "completion_window": "24h",
                               "metadata": metadata}}
            batch_id = await run_in_threadpool(
                lambda: self.service.batches.create_requests(keys, requests, prompts, options,
                                                             name=row["filename"], meta=meta))
        except GatewayError as exc:
            return _refuse(exc)
        except BatchInputError as exc:
            return _refuse(GatewayError(400, str(exc)))
        return await self._object(batch_id)

    async def retrieve(self, request: Request) -> Response:
        return await self._object(request.path_params["batch_id"])

    async def list_batches(self, request: Request) -> Response:
        try:
            limit = int(request.query_params.get("limit", "20"))
        except ValueError:
            return _refuse(GatewayError(400, "limit must be an integer", param="limit"))
        limit = max(1, min(LIST_LIMIT, limit))
        after = request.query_params.get("after")
        infos = [i for i in await run_in_threadpool(self.service.batches.batches, 10_000) if i.source == "api"]
        if after:
            ids = [i.id for i in infos]
            infos = infos[ids.index(after) + 1:] if after in ids else []
        page = infos[:limit]
        data = [batch_object(i, await self._counts(i.id)) for i in page]
        return JSONResponse({"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                             "last_id": data[-1]["id"] if data else None, "has_more": len(infos) > limit})

    async def cancel(self, request: Request) -> Response:
        batch_id = request.path_params["batch_id"]
        info = await run_in_threadpool(self.service.batches.get, batch_id)
        if info is None:
            return _refuse(_no_batch(batch_id))
        if info.status == "done":
            return _refuse(GatewayError(409, f"batch {batch_id} is completed: there is nothing to cancel"))
        await run_in_threadpool(self.service.batches.cancel, batch_id)
        return await self._object(batch_id)

    async def _counts(self, batch_id: str) -> dict[str, int]:
        progress = await run_in_threadpool(self.service.batches.progress, batch_id)
        return progress.counts if progress is not None else {}

    async def _object(self, batch_id: str) -> Response:
        progress = await run_in_threadpool(self.service.batches.progress, batch_id)
        if progress is None:
            return _refuse(_no_batch(batch_id))
        return JSONResponse(batch_object(progress.batch, progress.counts))


def _create_fields(body: dict[str, Any]) -> tuple[str, dict[str, str] | None]:
    input_file_id = body.get("input_file_id")
    if not isinstance(input_file_id, str) or not input_file_id:
        raise GatewayError(400, "input_file_id must be the id of an uploaded file", param="input_file_id")
    if body.get("endpoint") != ENDPOINT:
        raise GatewayError(400, f"endpoint must be {ENDPOINT} (the only endpoint batches run)", param="endpoint")
    if body.get("completion_window", "24h") != "24h":
        raise GatewayError(400, 'completion_window must be "24h"', param="completion_window")
    metadata = body.get("metadata")
    if metadata is not None and (not isinstance(metadata, dict) or len(metadata) > MAX_METADATA or not all(
            isinstance(k, str) and isinstance(v, str) and len(k) <= 64 and len(v) <= 512 for k, v in metadata.items())):
        raise GatewayError(400, f"metadata must be an object of at most {MAX_METADATA} string values", param="metadata")
    return input_file_id, metadata


def _generated(file_id: str) -> tuple[str, str] | None:
    """A batch's output or error file: (batch id, "output" | "errors"); None for an uploaded file."""
    for kind in ("output", "errors"):
        if file_id.startswith("file-batch_") and file_id.endswith(f"-{kind}"):
            return file_id[len("file-"):-len(kind) - 1], kind
    return None


def _no_file(file_id: str) -> GatewayError:
    return GatewayError(404, f"no file {file_id}", param="file_id")


def _no_batch(batch_id: str) -> GatewayError:
    return GatewayError(404, f"no batch {batch_id}", param="batch_id")


async def _bounded_body(request: Request) -> bytes:
    """The whole body, or 413 past MAX_UPLOAD_BYTES (the rest read and dropped, up to DRAIN_LIMIT, so the
    client gets the answer rather than a broken pipe); nothing is kept of a refused upload."""
    declared = request.headers.get("content-length")
    too_big = GatewayError(413, f"the upload is over {MAX_INPUT_BYTES // 2**20} MB, the most a batch file may be: "
                                "split it into several batches")
    if declared is not None and declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES:
        await _drain(request.stream(), int(declared))
        raise too_big
    body = bytearray()
    stream = request.stream()
    async for piece in stream:
        body += piece
        if len(body) > MAX_UPLOAD_BYTES:
            del body[:]
            await _drain(stream, DRAIN_LIMIT)
            raise too_big
    return bytes(body)


async def _drain(stream: AsyncIterator[bytes], declared: int) -> None:
    if declared > DRAIN_LIMIT:
        return
    async for _ in stream:
        pass


async def _form(request: Request, body: bytes) -> tuple[str, str, bytes]:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise GatewayError(400, "POST /v1/files takes multipart/form-data with the fields purpose and file")

    async def once() -> AsyncGenerator[bytes, None]:
        yield body

    try:
        form = await MultiPartParser(request.headers, once(), max_files=1, max_fields=8,
                                     max_part_size=MULTIPART_SLACK).parse()
    except MultiPartException as exc:
        raise GatewayError(400, f"the form cannot be read: {exc.message}") from None
    purpose, upload = form.get("purpose"), form.get("file")
    if purpose != "batch":
        raise GatewayError(400, 'purpose must be "batch" (the only files this gateway keeps)', param="purpose")
    if not isinstance(upload, UploadFile):
        raise GatewayError(400, "the form has no file field", param="file")
    content = await upload.read()
    await upload.close()
    return "batch", upload.filename or "upload.jsonl", content
