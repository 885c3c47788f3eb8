"""OpenAI's legacy text completions, POST /v1/completions, in OpenAI's shapes (SSE and not).

``prompt`` is a string or a list of strings: each prompt gets ``n`` choices (choice ``i * n + j`` is
prompt ``i``'s ``j``-th), each a task of its own (choices.py); token arrays are refused. A ``suffix``
makes it a fill-in-the-middle task on the node's ``/api/generate`` (Task.suffix); a plain prompt
goes as the model's prompt. ``echo`` puts the prompt before the completion in each choice's text.
``logprobs`` (0..5) asks the node for Ollama's logprobs and answers them in this API's own shape
(tokens, token_logprobs, top_logprobs, text_offset). Every other field: openai_fields.py.
"""
from __future__ import annotations

import json
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from hydra.gateway.admission import GatewayError, Incoming, Tracker, invalid_request
from hydra.gateway.choices import ChoicesResponse, submit_choices
from hydra.gateway.ollama_api import hydra_field
from hydra.gateway.openai_api import error_response, openai_error
from hydra.gateway.openai_fields import COMPLETION_FIELDS, refuse_unsupported
from hydra.gateway.service_api import GatewayService
from hydra.gateway.stream import TaskResponse, done_reason
from hydra.gateway.validate import (
    MAX_CHOICES,
    Generation,
    include_usage,
    openai_n,
    openai_options,
    optional_limit,
    stream_flag,
)
from hydra.sollol import Chunk, TaskHandle, TaskResult
from hydra.sollol.validation import FieldError, check_bool, check_integer, check_text, wrong

MAX_LOGPROBS = 5  # OpenAI's limit for this API


def _prompts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [check_text(value, "prompt")]
    if isinstance(value, list) and value and all(isinstance(p, str) for p in value):
        return [check_text(p, f"prompt[{i}]") for i, p in enumerate(value)]
    if isinstance(value, list) and value and all(isinstance(p, (int, list)) for p in value):
        raise FieldError("prompt", "", text="prompt as token ids is not supported: Hydra's nodes take text; "
                                            "send a string or a list of strings")
    raise wrong("prompt", "a string or a non-empty list of strings", value)


def completion_request(body: dict[str, Any]) -> tuple[list[str], Generation, bool, int | None]:
    """/v1/completions, checked: the prompts, the arguments of ``submit`` (without the prompt), echo,
    and the logprobs asked for (None: none)."""
    prompts = _prompts(body.get("prompt"))
    limit = optional_limit(body.get("max_tokens"), "max_tokens")
    options = openai_options(body)
    refuse_unsupported(body, COMPLETION_FIELDS)
    stream = stream_flag(body, False)
    n = openai_n(body, stream)
    if len(prompts) * n > MAX_CHOICES:
        raise FieldError("n", "", text=f"{len(prompts)} prompts x n={n} is more than {MAX_CHOICES} choices")
    if stream and len(prompts) > 1:
        raise FieldError("prompt", "", text="several prompts with stream are not supported: Hydra streams one "
                                            'choice; send "stream": false')
    echo = False if body.get("echo") is None else check_bool(body["echo"], "echo")
    logprobs = None if body.get("logprobs") is None else check_integer(body["logprobs"], "logprobs", 0, MAX_LOGPROBS)
    if logprobs is not None and (stream or echo):
        raise FieldError("logprobs", "", text="logprobs with stream or echo are not supported (Hydra has no "
                                              "logprobs of the prompt, and streams none)")
    fields: dict[str, Any] = {"max_tokens": limit, "options": options}
    if body.get("suffix") is not None:
        fields["suffix"] = check_text(body["suffix"], "suffix")
    if logprobs is not None:
        fields["logprobs"] = True
        if logprobs:
            fields["top_logprobs"] = logprobs
    return prompts, Generation(fields, stream, limit, include_usage(body), n=n), echo, logprobs


def completion_logprobs(entries: tuple[dict[str, Any], ...], start: int) -> dict[str, Any]:
    """Ollama's per-token logprobs in this API's shape; ``start``: the text offset of the first token."""
    tokens, token_logprobs, top, offsets = [], [], [], []
    offset = start
    for entry in entries:
        token = str(entry.get("token", ""))
        tokens.append(token)
        token_logprobs.append(float(entry.get("logprob", 0.0)))
        top.append({str(t.get("token", "")): float(t.get("logprob", 0.0)) for t in entry.get("top_logprobs") or ()})
        offsets.append(offset)
        offset += len(token)
    return {"tokens": tokens, "token_logprobs": token_logprobs, "top_logprobs": top, "text_offset": offsets}


class CompletionRenderer:
    """Text completions: ``text_completion`` objects, streamed as SSE or whole."""

    media_type = "text/event-stream"

    def __init__(self, task_id: str, model: str | None, max_tokens: int | None, include_usage: bool,
                 echo: str = "") -> None:
        self.id = f"cmpl-{task_id}"
        self.created = int(time.time())
        self.requested = model or "auto"
        self.max_tokens = max_tokens
        self.include_usage = include_usage
        self.echo = echo  # the prompt, written before the first text (then "")

    def _body(self, model: str, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {"id": self.id, "object": "text_completion", "created": self.created,
                "model": model or self.requested, "choices": choices, **extra}

    def _event(self, body: dict[str, Any]) -> bytes:
        return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"

    def chunk(self, chunk: Chunk) -> bytes | None:
        if not chunk.text:
            return None  # thinking has no place in a text completion's stream
        text, self.echo = self.echo + chunk.text, ""
        return self._event(self._body(chunk.model, [{"text": text, "index": 0, "logprobs": None,
                                                     "finish_reason": None}]))

    def end(self, result: TaskResult) -> bytes:
        tail = self._event(self._body(result.model or "", [{"text": self.echo, "index": 0, "logprobs": None,
                                                            "finish_reason": done_reason(result, self.max_tokens)}],
                                      hydra=hydra_field(result)))
        if self.include_usage:
            tail += self._event(self._body(result.model or "", [], usage=_usage(result)))
        return tail + b"data: [DONE]\n\n"

    def stream_error(self, message: str) -> bytes:
        return self._event(openai_error(502, message, "server_error")) + b"data: [DONE]\n\n"

    def whole(self, result: TaskResult) -> dict[str, Any]:
        choice: dict[str, Any] = {"text": self.echo + result.text, "index": 0, "logprobs": None,
                                  "finish_reason": done_reason(result, self.max_tokens)}
        if result.logprobs:
            choice["logprobs"] = completion_logprobs(result.logprobs, len(self.echo))
        if result.thinking:
            choice["reasoning"] = result.thinking  # as chat's message.reasoning: clients that do not know it ignore it
        return self._body(result.model or "", [choice], usage=_usage(result), hydra=hydra_field(result))

    def error(self, status: int, message: str) -> dict[str, Any]:
        kind = "service_unavailable" if status == 503 else "server_error" if status >= 500 else "invalid_request_error"
        return openai_error(status, message, kind)


def _usage(result: TaskResult) -> dict[str, int]:
    prompt, completion = result.prompt_eval_count or 0, result.eval_count or 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class CompletionRoutes:
    def __init__(self, service: GatewayService, tracker: Tracker) -> None:
        self.service = service
        self.tracker = tracker

    async def completions(self, request: Request) -> Response:
        api, started = "openai_completions", time.monotonic()
        incoming = Incoming()
        handles: list[TaskHandle] = []
        try:
            routing, body, model = await incoming.read(self.service, request)
            prompts, checked, echo, _ = completion_request(body)  # every field, before a task exists
            for prompt in prompts:
                handles += await submit_choices(self.service, self.tracker, checked.n, prompt=prompt, model=model,
                                                mode=routing.mode, priority=routing.priority,
                                                task_type=routing.task_type, **checked.fields)
        except (GatewayError, FieldError) as refused:
            for handle in handles:  # a later prompt refused: one request, one answer
                handle.cancel()
            exc = invalid_request(refused)
            incoming.refused(self.tracker, api, exc)
            return error_response(exc)
        # choice k is prompt k // n's (its echo)
        renderers = [CompletionRenderer(handles[0].id, model, checked.max_tokens, checked.include_usage,
                                        echo=prompt if echo else "")
                     for prompt in prompts for _ in range(checked.n)]

        def on_finish(handle: TaskHandle, result: TaskResult | None) -> None:
            self.tracker.finished(api, handle, result, started)
        if len(handles) > 1:
            return ChoicesResponse(handles, renderers, on_finish=on_finish)  # type: ignore[return-value]
        return TaskResponse(handles[0], renderers[0], stream=checked.stream,  # type: ignore[return-value]
                            on_finish=on_finish)
