"""llama.cpp through xllamacpp: load a GGUF once, stream tokens, stop on demand.

xllamacpp's `Server` embeds llama.cpp's C++ server. Its `handle_*` calls block
the calling thread (with the GIL released) and invoke our callback on that
same thread for every streamed chunk; returning True from the callback
cancels the task inside llama.cpp. Two of its habits shape this module:

* an exception raised in the callback is swallowed (the task is cancelled and
  the call returns None), so the callback catches everything itself and the
  error is re-raised here once the call returns;
* request errors arrive either as a raised ValueError, or as an
  `{"error": {...}}` dict, returned or streamed as a chunk.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .fifo import Abandoned, FairLock

log = logging.getLogger(__name__)

DEFAULT_CTX = 4096

# Ollama's defaults (api/types.go DefaultOptions) where llama.cpp's differ, so
# an unconfigured request samples the way it would on Ollama.
OLLAMA_DEFAULTS: dict[str, Any] = {
    "temperature": 0.8, "top_k": 40, "top_p": 0.9, "min_p": 0.0,
    "repeat_penalty": 1.1, "repeat_last_n": 64,
}

# Ollama option -> llama.cpp request field, for numeric sampling options.
_NUMERIC_OPTIONS = {
    "temperature": "temperature", "top_k": "top_k", "top_p": "top_p", "min_p": "min_p",
    "typical_p": "typical_p", "repeat_penalty": "repeat_penalty",
    "repeat_last_n": "repeat_last_n", "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty", "mirostat": "mirostat",
    "mirostat_tau": "mirostat_tau", "mirostat_eta": "mirostat_eta", "num_keep": "n_keep",
}
# Accepted and ignored: fixed when the model is loaded, or without meaning here.
_LOAD_TIME_OPTIONS = {
    "num_ctx", "num_batch", "num_gpu", "main_gpu", "low_vram", "num_thread", "numa",
    "use_mmap", "use_mlock", "vocab_only", "logits_all", "embedding_only", "f16_kv",
    "tfs_z", "penalize_newline",
}


class EngineError(Exception):
    """llama.cpp refused or failed a request; `status` is the HTTP status to report."""

    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.status = status


def default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def sampling_request(options: Mapping[str, Any] | None, fmt: Any = None) -> dict[str, Any]:
    """Translate Ollama `options` (+ `format`) into llama.cpp request fields.

    Raises EngineError(400) for values Ollama would also refuse.
    """
    opts = dict(OLLAMA_DEFAULTS)
    opts.update(options or {})
    req: dict[str, Any] = {}
    for key, value in opts.items():
        if value is not None and key not in _LOAD_TIME_OPTIONS:
            req.update(_option_fields(key, value))
    req.update(_format_fields(fmt))
    return req


def _option_fields(key: str, value: Any) -> dict[str, Any]:
    if key in _NUMERIC_OPTIONS:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise EngineError(f'option "{key}" must be a number, got {value!r}', 400)
        return {_NUMERIC_OPTIONS[key]: value}
    if key == "num_predict":
        # Ollama: -1 = no limit, -2 = fill the context; llama.cpp stops at
        # the context end either way.
        n = _integer_option(key, value)
        return {"max_tokens": n if n >= 0 else -1}
    if key == "seed":
        n = _integer_option(key, value)
        return {"seed": n & 0xFFFFFFFF} if n >= 0 else {}  # negative = random, llama.cpp's default
    if key == "stop":
        stops = [value] if isinstance(value, str) else value
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise EngineError('option "stop" must be a list of strings', 400)
        return {"stop": stops}
    log.debug("ignoring unknown option %r", key)
    return {}


def _integer_option(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise EngineError(f'option "{key}" must be an integer, got {value!r}', 400)
    return value


def _format_fields(fmt: Any) -> dict[str, Any]:
    if fmt == "json":
        return {"response_format": {"type": "json_object"}}
    if isinstance(fmt, dict):
        return {"json_schema": fmt}
    if fmt not in (None, ""):
        raise EngineError(f"invalid format {fmt!r}: use \"json\" or a JSON schema", 400)
    return {}


@dataclass
class Generation:
    """What one request produced, with llama.cpp's own timings."""

    text: str
    done_reason: str  # "stop", "length", or "cancelled" when we stopped it
    prompt_eval_count: int
    prompt_eval_ns: int
    eval_count: int
    eval_ns: int
    load_ns: int  # model load time on the first generation, else 0
    queue_ns: int  # time spent waiting for the engine
    streamed: int  # chunks handed to on_token

    @property
    def cancelled(self) -> bool:
        return self.done_reason == "cancelled"


class LlamaEngine:
    """One loaded model; generations run one at a time, in arrival order."""

    def __init__(self, model_path: str, *, threads: int | None = None,
                 n_ctx: int = DEFAULT_CTX, verbosity: int = 2) -> None:
        import xllamacpp as xlc  # deferred: the .so is ~100 MB

        self.model_path = model_path
        self.threads = threads or default_threads()
        self.n_ctx = n_ctx
        params = xlc.CommonParams()
        params.model.path = model_path
        params.n_ctx = n_ctx
        params.n_parallel = 1
        params.cpuparams.n_threads = self.threads
        params.cpuparams_batch.n_threads = self.threads
        params.verbosity = verbosity
        # xllamacpp always starts llama.cpp's own HTTP listener. We never use
        # it: keep it on loopback, on an ephemeral port, behind a random key
        # nobody knows (direct handle_* calls do not need it).
        params.hostnames = ["127.0.0.1"]
        params.port = 0
        params.api_keys = [secrets.token_hex(16)]
        params.endpoint_slots = False
        params.ui = False
        t0 = time.monotonic_ns()
        try:
            self._server = xlc.Server(params)
        except Exception as e:  # llama.cpp reports load failures as RuntimeError/ValueError
            raise EngineError(f"llama.cpp could not load {model_path}: {e}") from e
        self.load_ns = time.monotonic_ns() - t0
        self._load_reported = False
        self._turns = FairLock()
        self._closed = False
        self._state_lock = threading.Lock()
        self.generations = 0  # generations run (cancelled ones included)
        self.last: Generation | None = None  # the latest one, for tests and logs
        self.last_used = time.time()

    def generate(self, *, messages: Sequence[Mapping[str, str]] | None = None,
                 prompt: str | None = None, request: Mapping[str, Any] | None = None,
                 on_token: Callable[[str], Any] | None = None,
                 abandoned: Callable[[], bool] | None = None) -> Generation:
        """Run one generation; `messages` use the GGUF chat template, `prompt` is raw.

        `on_token(piece)` is called for each streamed piece; returning True
        (or raising) stops the generation. `abandoned()` is polled while the
        request waits its turn, and a True result gives up with `Abandoned`.
        """
        if (messages is None) == (prompt is None):
            raise ValueError("give exactly one of messages or prompt")
        body = dict(request or {})
        body["stream"] = True
        if messages is not None:
            body["messages"] = [dict(m) for m in messages]
        else:
            body["prompt"] = prompt
        if body.get("max_tokens") == 0:
            # llama.cpp would still produce one token for n_predict=0.
            return Generation(text="", done_reason="length", prompt_eval_count=0,
                              prompt_eval_ns=0, eval_count=0, eval_ns=0, load_ns=0,
                              queue_ns=0, streamed=0)
        t_queue = time.monotonic_ns()
        with self._turns.turn(abandoned):
            queue_ns = time.monotonic_ns() - t_queue
            if self._closed:
                raise EngineError("the node is shutting down", 503)
            result = self._run(body, messages is not None, on_token)
            with self._state_lock:
                self.last = result
                self.generations += 1
                self.last_used = time.time()
                load_ns = 0 if self._load_reported else self.load_ns
                self._load_reported = True
        result.load_ns, result.queue_ns = load_ns, queue_ns
        return result

    def _run(self, body: dict[str, Any], chat: bool,
             on_token: Callable[[str], Any] | None) -> Generation:
        pieces: list[str] = []
        state: dict[str, Any] = {"finish": None, "timings": None, "error": None,
                                 "raised": None, "stopped": False}

        def callback(chunk: Any) -> bool:
            try:
                if self._closed:
                    state["stopped"] = True
                    return True
                if isinstance(chunk, (str, bytes)):
                    chunk = json.loads(chunk)
                if not isinstance(chunk, dict):
                    return False
                if "error" in chunk:
                    state["error"] = chunk["error"]
                    return True
                if "timings" in chunk:
                    state["timings"] = chunk["timings"]
                for choice in chunk.get("choices") or ():
                    piece = (choice.get("delta") or {}).get("content") if chat else choice.get("text")
                    if choice.get("finish_reason"):
                        state["finish"] = choice["finish_reason"]
                    if piece:
                        pieces.append(piece)
                        if on_token is not None and on_token(piece):
                            state["stopped"] = True
                            return True
                return False
            except BaseException as e:  # noqa: BLE001 - re-raised once handle() returns; xllamacpp would swallow it
                state["raised"] = e
                return True

        t0 = time.monotonic_ns()
        try:
            handle = self._server.handle_chat_completions if chat else self._server.handle_completions
            # A JSON string in gets JSON strings back: json.loads here costs
            # ~100 us/token less than xllamacpp's own conversion to dicts.
            ret = handle(json.dumps(body), callback)
            if isinstance(ret, (str, bytes)):
                ret = json.loads(ret)
        except ValueError as e:
            raise EngineError(str(e), 400) from e
        wall_ns = time.monotonic_ns() - t0
        if state["raised"] is not None:
            raise state["raised"]
        error = state["error"] or (ret.get("error") if isinstance(ret, dict) else None)
        if error is not None:
            if isinstance(error, dict):
                raise EngineError(str(error.get("message", error)), int(error.get("code") or 500))
            raise EngineError(str(error))
        timings = state["timings"]
        if not state["stopped"] and not timings:
            raise EngineError("llama.cpp ended the generation without its final chunk")
        if state["stopped"]:
            # Cancelled: llama.cpp sends no final chunk, so no timings.
            return Generation(text="".join(pieces), done_reason="cancelled",
                              prompt_eval_count=0, prompt_eval_ns=0,
                              eval_count=len(pieces), eval_ns=wall_ns, load_ns=0,
                              queue_ns=0, streamed=len(pieces))
        reason = "length" if state["finish"] == "length" else "stop"
        return Generation(
            text="".join(pieces), done_reason=reason,
            # Ollama counts the whole prompt, cached prefix included.
            prompt_eval_count=int(timings.get("prompt_n", 0)) + int(timings.get("cache_n", 0)),
            prompt_eval_ns=int(float(timings.get("prompt_ms", 0.0)) * 1e6),
            eval_count=int(timings.get("predicted_n", 0)),
            eval_ns=int(float(timings.get("predicted_ms", 0.0)) * 1e6),
            load_ns=0, queue_ns=0, streamed=len(pieces))

    def waiting(self) -> int:
        return self._turns.waiting()

    def busy(self) -> bool:
        return self._turns.busy()

    def close(self) -> None:
        """Stop the running generation, refuse queued ones, free the model."""
        self._closed = True
        with self._turns.turn():
            server, self._server = self._server, None
        del server  # ~Server joins llama.cpp's loop thread


__all__ = [
    "OLLAMA_DEFAULTS",
    "Abandoned",
    "EngineError",
    "Generation",
    "LlamaEngine",
    "default_threads",
    "sampling_request",
]
