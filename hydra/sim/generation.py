"""``/api/generate`` and ``/api/chat``: request parsing and the token loop.

Timing model (document of record for benchmarks):
  queue wait (real) -> load (cold models only) -> prefill -> one chunk per
  token at the node's decode speed. Every simulated delay is multiplied by
  the node's ``time_scale`` before sleeping, but the durations reported in
  the final chunk are *simulated* (unscaled) nanoseconds:
      eval_duration        = eval_count / decode_tps * 1e9
      prompt_eval_duration = prompt_eval_count / prefill_tps * 1e9
      load_duration        = load seconds of a cold model * 1e9
  so ``eval_count / eval_duration * 1e9`` equals the configured speed at any
  time_scale, while wall-clock time shrinks with it.

Token counts: ``options.num_predict`` (>= 0) caps thinking + content tokens
together, as in Ollama, and the simulator always uses the whole budget
(``eval_count == num_predict``, done_reason "length"). Without it the length
is deterministic from the prompt (20-120 content tokens) and done_reason is
"stop". ``options.sim_think_tokens`` sets the number of thinking tokens.
"""
from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from hydra.sim import textgen
from hydra.sim.engine import Busy, Engine, OutOfMemory, Stats, Stopped
from hydra.sim.faults import BUSY_MESSAGE, MIDSTREAM_ERROR, Fault
from hydra.sim.models import NodeProfile, SimModel
from hydra.sim.wire import Wire, dumps, now_rfc3339

DEFAULT_KEEP_ALIVE_S = 300.0  # Ollama's 5m
THINK_LEVELS = ("low", "medium", "high")
_GO_DURATION = re.compile(r"^([+-]?)((?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h))+$")
_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


_MIDSTREAM_KINDS = ("error_midstream", "drop_midstream", "reset_midstream", "malformed_json")


class RequestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def parse_keep_alive(value: object) -> float | None:
    """Seconds to stay loaded; None = forever (negative values, like Ollama)."""
    if value is None:
        return DEFAULT_KEEP_ALIVE_S
    if isinstance(value, bool):
        raise RequestError(400, f"invalid keep_alive value: {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            if not _GO_DURATION.match(text):
                raise RequestError(400, f'time: invalid duration "{value}"') from None
            seconds = sum(float(n) * _GO_UNITS[u] for n, u in _GO_PART.findall(text))
            if text.startswith("-"):
                seconds = -seconds
    else:
        raise RequestError(400, f"invalid keep_alive value: {value!r}")
    return None if seconds < 0 else seconds


@dataclass
class GenRequest:
    chat: bool
    label: str  # the model name as requested; Ollama echoes it back
    model: SimModel
    stream: bool
    think: bool
    key: str  # what the deterministic text is derived from
    prompt_tokens: int
    keep_alive_s: float | None
    empty: bool
    num_predict: int | None = None
    think_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    json_key: str | None = None  # with format: the answer is the JSON object {json_key: "<text>"}


def parse(chat: bool, body: object, profile: NodeProfile) -> GenRequest:
    if not isinstance(body, dict):
        raise RequestError(400, "invalid request body: expected a JSON object")
    label = body.get("model")
    if not isinstance(label, str) or not label.strip():
        raise RequestError(400, "model is required")
    model = profile.model(label)
    if model is None:
        raise RequestError(404, f'model "{label}" not found, try pulling it first')
    think_value = body.get("think")
    if think_value is None or think_value is False:
        think = False
    elif think_value is True or think_value in THINK_LEVELS:
        think = True
    else:
        raise RequestError(400, f"invalid think value: {think_value!r} (expected true, false, low, medium or high)")
    if think and not model.thinking:
        raise RequestError(400, f'"{label}" does not support thinking')
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise RequestError(400, "options must be a JSON object")

    if chat:
        messages = body.get("messages") or []
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise RequestError(400, "messages must be a list of objects")
        texts = [str(m.get("content") or "") for m in messages]
        key = "\n".join(f"{m.get('role', 'user')}: {t}" for m, t in zip(messages, texts))
        empty, n_messages = not messages, len(messages)
    else:
        prompt = body.get("prompt") or ""
        if not isinstance(prompt, str):
            raise RequestError(400, "prompt must be a string")
        system = body.get("system") or ""
        texts = [str(system), prompt]
        key, empty, n_messages = prompt, not prompt, 0

    req = GenRequest(
        chat=chat,
        label=label,
        model=model,
        stream=body.get("stream", True) is not False,
        think=think,
        key=key,
        prompt_tokens=textgen.prompt_token_count(texts, n_messages),
        keep_alive_s=parse_keep_alive(body.get("keep_alive")),
        empty=empty,
    )
    num_predict = options.get("num_predict")
    if num_predict is not None:
        if not isinstance(num_predict, int) or isinstance(num_predict, bool):
            raise RequestError(400, f"option num_predict must be an integer, got {num_predict!r}")
        req.num_predict = num_predict if num_predict >= 0 else None  # -1/-2: unlimited
    think_tokens = options.get("sim_think_tokens")
    if think_tokens is not None:
        if not isinstance(think_tokens, int) or think_tokens < 0:
            raise RequestError(400, f"option sim_think_tokens must be an integer >= 0, got {think_tokens!r}")
        req.think_tokens = think_tokens
    stop = options.get("stop") or []
    req.stop = [stop] if isinstance(stop, str) else [s for s in stop if isinstance(s, str) and s]
    req.json_key = _json_key(body.get("format"))
    return req


def _json_key(fmt: object) -> str | None:
    """Ollama constrains the answer to JSON ("json") or to a schema: the sim answers one object,
    keyed by the schema's first property (or "answer")."""
    if fmt is None or fmt == "":
        return None
    if fmt == "json":
        return "answer"
    if isinstance(fmt, dict):
        properties = fmt.get("properties")
        return next(iter(properties), "answer") if isinstance(properties, dict) and properties else "answer"
    raise RequestError(400, f"invalid format: {fmt!r} (expected \"json\" or a JSON schema object)")


class _Run:
    """One generation: plan, timing, chunks and injected faults."""

    def __init__(self, req: GenRequest, engine: Engine, wire: Wire, faults: dict[str, Fault], stats: Stats, node: str):
        self.req, self.engine, self.wire, self.stats, self.node = req, engine, wire, stats, node
        self.profile = engine.profile
        self.slow = faults.get("slow_first_token")
        self.mid = next((faults[k] for k in _MIDSTREAM_KINDS if k in faults), None)
        self.sent = 0  # content/thinking chunks delivered (or accumulated)
        self.content: list[str] = []
        self.thinking: list[str] = []

    # -- chunk shapes --------------------------------------------------------

    def _base(self) -> dict:
        return {"model": self.req.label, "created_at": now_rfc3339()}

    def _piece(self, text: str, thinking: bool) -> dict:
        obj = self._base()
        if self.req.chat:
            msg = {"role": "assistant", "content": "" if thinking else text}
            if thinking:
                msg["thinking"] = text
            obj["message"] = msg
        else:
            obj["response"] = "" if thinking else text
            if thinking:
                obj["thinking"] = text
        obj["done"] = False
        return obj

    def _final(self, done_reason: str, stats: dict) -> dict:
        obj = self._base()
        content = "" if self.req.stream else "".join(self.content)
        thinking = "" if self.req.stream else "".join(self.thinking)
        if self.req.chat:
            obj["message"] = {"role": "assistant", "content": content}
            if thinking:
                obj["message"]["thinking"] = thinking
        else:
            obj["response"] = content
            if thinking:
                obj["thinking"] = thinking
        obj["done"] = True
        obj["done_reason"] = done_reason
        obj.update(stats)
        return obj

    # -- faults --------------------------------------------------------------

    def _inject(self) -> None:
        """Apply the armed mid-stream fault now; the response ends here."""
        kind = self.mid.kind
        self.stats.bump("faults_applied", kind)
        self.stats.add("failed")
        if kind == "drop_midstream":
            self.wire.drop()
        elif kind == "reset_midstream":
            self.wire.reset()
        elif kind == "error_midstream":
            if self.req.stream:
                self.wire.line(dumps({"error": MIDSTREAM_ERROR}))
                self.wire.end_stream()
            else:
                self.wire.error(500, MIDSTREAM_ERROR)
        else:  # malformed_json: a line cut in half, as from a broken proxy
            line = dumps(self._piece("broken", False))
            half = line[: len(line) // 2]
            if self.req.stream:
                self.wire.line(half)
                self.wire.end_stream()
            else:
                self.wire.send_body(200, "application/json; charset=utf-8", half.encode())

    def _emit(self, text: str, thinking: bool) -> bool:
        """Deliver one token; False when a fault ended the response instead."""
        if self.mid is not None and self.sent == self.mid.after_chunks:
            self._inject()
            return False
        (self.thinking if thinking else self.content).append(text)
        if self.req.stream:
            self.wire.chunk(self._piece(text, thinking))
        self.sent += 1
        return True

    # -- the run -------------------------------------------------------------

    def _plan(self) -> tuple[int, int, str]:
        req, name = self.req, self.req.model.name
        n_think = 0
        if req.think:
            n_think = req.think_tokens
            if n_think is None:
                n_think = req.model.think_tokens or textgen.default_think_length(name, req.key)
        if req.num_predict is not None:
            n_think = min(n_think, req.num_predict)
            return n_think, req.num_predict - n_think, "length"
        return n_think, textgen.default_content_length(name, self.node, req.key), "stop"

    def _tokens(self, n_think: int, n_content: int) -> Iterator[tuple[str, bool]]:
        name = self.req.model.name
        think_src = textgen.thinking_tokens(name, self.req.key)
        for _ in range(n_think):
            yield next(think_src), True
        content_src = textgen.content_tokens(name, self.node, self.req.key)
        if self.req.json_key is not None and n_content >= 2:
            # {"key": "words..."}: opened by the first token, closed by the last, so a whole answer parses
            yield "{" + json.dumps(self.req.json_key) + ': "', False
            for _ in range(n_content - 2):
                yield json.dumps(next(content_src))[1:-1], False
            yield '"}', False
            return
        for _ in range(n_content):
            yield next(content_src), False

    def _stop_cut(self, token: str) -> str | None:
        """Text of ``token`` to keep if a stop sequence completes in it."""
        if not self.req.stop:
            return None
        # Every token has >= 1 character, so the last len(longest) tokens hold
        # any stop sequence that could complete now; avoids O(n^2) joins.
        before = "".join(self.content[-max(map(len, self.req.stop)):])
        joined = before + token
        hits = [i for i in (joined.find(s) for s in self.req.stop) if i >= 0]
        if not hits:
            return None
        # Loose: a stop sequence straddling earlier tokens is not taken back.
        return joined[len(before):max(min(hits), len(before))]

    def run(self, queue_wait_real: float) -> None:
        req, engine, profile = self.req, self.engine, self.profile
        load_s = engine.acquire_model(req.model, req.keep_alive_s)
        try:
            prefill_s = req.prompt_tokens / profile.prefill_tps(req.model)
            engine.sleep(prefill_s)
            fault_delay = 0.0
            if self.slow is not None:
                self.stats.bump("faults_applied", "slow_first_token")
                fault_delay = self.slow.delay_s or 0.0
                engine.sleep_until(time.monotonic() + fault_delay)
            decode_tps = profile.decode_tps(req.model)
            step = engine.time_scale / decode_tps
            n_think, n_content, done_reason = self._plan()
            t0 = time.monotonic()
            for i, (token, thinking) in enumerate(self._tokens(n_think, n_content)):
                # Due times from one origin so timer slack never accumulates.
                engine.sleep_until(t0 + (i + 1) * step)
                if not thinking:
                    cut = self._stop_cut(token)
                    if cut is not None:
                        if cut and not self._emit(cut, False):
                            return
                        done_reason = "stop"
                        break
                if not self._emit(token, thinking):
                    return
            if self.mid is not None:
                self._inject()  # the generation was shorter than after_chunks
                return
            eval_count = self.sent
            queue_sim = queue_wait_real / engine.time_scale
            stats = {
                "total_duration": int((queue_sim + load_s + prefill_s + eval_count / decode_tps + fault_delay) * 1e9),
                "load_duration": int(load_s * 1e9),
                "prompt_eval_count": req.prompt_tokens,
                "prompt_eval_duration": int(prefill_s * 1e9),
                "eval_count": eval_count,
                "eval_duration": int(eval_count / decode_tps * 1e9),
            }
            final = self._final(done_reason, stats)
            if req.stream:
                self.wire.chunk(final)
                self.wire.end_stream()
            else:
                self.wire.send_json(200, final)
            with self.stats.lock:
                self.stats.generations += 1
        finally:
            engine.release_model(req.model, req.keep_alive_s)


def _load_only(req: GenRequest, engine: Engine, wire: Wire) -> None:
    """Empty prompt: load (or with keep_alive 0, unload) and answer at once."""
    if req.keep_alive_s == 0:
        engine.unload(req.model)
        reason = "unload"
    else:
        engine.acquire_model(req.model, req.keep_alive_s)
        engine.release_model(req.model, req.keep_alive_s)
        reason = "load"
    obj: dict = {"model": req.label, "created_at": now_rfc3339()}
    if req.chat:
        obj["message"] = {"role": "assistant", "content": ""}
    else:
        obj["response"] = ""
    obj.update(done=True, done_reason=reason)
    wire.send_json(200, obj)


def handle(chat: bool, raw_body: bytes, engine: Engine, wire: Wire, faults: dict[str, Fault], stats: Stats, node: str) -> None:
    """Serve one generate/chat request; never raises for request problems."""
    try:
        try:
            body = json.loads(raw_body) if raw_body.strip() else None
        except ValueError as exc:
            raise RequestError(400, f"invalid JSON in request body: {exc}") from None
        if body is None:
            raise RequestError(400, "missing request body")
        req = parse(chat, body, engine.profile)
        if req.empty:
            _load_only(req, engine, wire)
            return
        queue_wait = engine.acquire_slot()
        try:
            _Run(req, engine, wire, faults, stats, node).run(queue_wait)
        finally:
            engine.release_slot()
    except RequestError as exc:
        wire.error(exc.status, exc.message)
    except Busy:
        wire.error(503, BUSY_MESSAGE)
    except OutOfMemory as exc:
        if not wire.headers_sent:
            wire.error(500, str(exc))
    except Stopped:
        wire.abort()
    else:
        return
    stats.add("failed")
