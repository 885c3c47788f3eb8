"""``/api/generate`` and ``/api/chat``: the token loop (request parsing: ``hydra.sim.request``).

Timing model (document of record for benchmarks):
  queue wait (real) -> load (cold models only) -> prefill -> one chunk per
  token at the node's decode speed. Every simulated delay is multiplied by
  the node's ``time_scale`` before sleeping, but the durations reported in
  the final chunk are *simulated* (unscaled) nanoseconds:
      eval_duration        = eval_count / decode_tps * 1e9
      prompt_eval_duration = (prompt_eval_count - cached + restored / RESTORE_SPEEDUP) / prefill_tps * 1e9
      load_duration        = load seconds of a cold model * 1e9
  where ``cached`` is what the KV cache already held of the prompt, ``restored`` the part of it brought
  back from host memory (hydra.sim.prefix_cache; ``cached`` is reported as ``prompt_eval_cached_count``
  when not 0, as newer Ollama does).
  so ``eval_count / eval_duration * 1e9`` equals the configured speed at any
  time_scale, while wall-clock time shrinks with it.

Token counts: ``options.num_predict`` (>= 0) caps thinking + content tokens
together, as in Ollama, and the simulator always uses the whole budget
(``eval_count == num_predict``, done_reason "length"). Without it the length
is deterministic from the prompt (20-120 content tokens) and done_reason is
"stop". ``options.sim_think_tokens`` sets the number of thinking tokens.

Generate: ``suffix``, ``template``, ``raw``, ``context`` and ``images`` shape the text (another
value, another answer) and the final line of /api/generate carries ``context``: the request's
context, then the prompt's and the answer's tokens (``textgen.token_ids``). With ``logprobs`` every
chunk carries Ollama's ``logprobs`` list (``textgen.logprobs``: plausible, deterministic values).

Tools: a chat with ``tools`` whose last message is the user's is answered, as Ollama does, with one
chunk calling the first tool (``message.tool_calls``, empty content; arguments from
``textgen.tool_call``), then the final chunk, done_reason "stop". After a ``tool`` message it answers text.
"""
from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator

from hydra.sim import prefix_cache, textgen
from hydra.sim.engine import Busy, OutOfMemory, SimEngine, Stats, Stopped
from hydra.sim.faults import BUSY_MESSAGE, MIDSTREAM_ERROR, Fault
from hydra.sim.request import GenRequest, RequestError, parse  # parsing lives there, this module runs
from hydra.sim.wire import Wire, dumps, now_rfc3339

_MIDSTREAM_KINDS = ("error_midstream", "drop_midstream", "reset_midstream", "malformed_json")


class _Run:
    """One generation: plan, timing, chunks and injected faults."""

    def __init__(self, req: GenRequest, engine: SimEngine, wire: Wire, faults: dict[str, Fault], stats: Stats, node: str,
                 sequence: tuple[prefix_cache.Message, ...] = ()):
        self.req, self.engine, self.wire, self.stats, self.node = req, engine, wire, stats, node
        self.sequence = sequence  # the prompt's messages, as the KV cache compares them
        self.profile = engine.profile
        self.slow = faults.get("slow_first_token")
        self.mid = next((faults[k] for k in _MIDSTREAM_KINDS if k in faults), None)
        self.sent = 0  # content/thinking chunks delivered (or accumulated)
        self.content: list[str] = []
        self.thinking: list[str] = []
        self.calls: list[dict] = []

    # -- chunk shapes --------------------------------------------------------

    def _base(self) -> dict:
        return {"model": self.req.label, "created_at": now_rfc3339()}

    def _piece(self, text: str, thinking: bool, calls: list[dict] | None = None) -> dict:
        obj = self._base()
        if self.req.chat:
            msg: dict[str, object] = {"role": "assistant", "content": "" if thinking else text}
            if thinking:
                msg["thinking"] = text
            if calls:
                msg["tool_calls"] = calls
            obj["message"] = msg
        else:
            obj["response"] = "" if thinking else text
            if thinking:
                obj["thinking"] = text
        if self.req.top_logprobs is not None and text and not thinking:
            obj["logprobs"] = [textgen.logprob(text, self.req.top_logprobs, self.sent)]
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
            if self.calls and not self.req.stream:
                obj["message"]["tool_calls"] = self.calls
        else:
            obj["response"] = content
            if thinking:
                obj["thinking"] = thinking
            obj["context"] = self.req.context + textgen.token_ids(self.req.key) + textgen.token_ids(
                "".join(self.content))
        if self.req.top_logprobs is not None and not self.req.stream:
            obj["logprobs"] = [textgen.logprob(t, self.req.top_logprobs, i) for i, t in enumerate(self.content)]
        obj["done"] = True
        obj["done_reason"] = done_reason
        obj.update(stats)
        return obj

    # -- faults --------------------------------------------------------------

    def _inject(self, kind: str) -> None:
        """Apply the armed mid-stream fault ``kind`` now; the response ends here."""
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

    def _emit(self, text: str | None, thinking: bool) -> bool:
        """Deliver one token (None: the tool call); False when a fault ended the response instead."""
        if self.mid is not None and self.sent == self.mid.after_chunks:
            self._inject(self.mid.kind)
            return False
        call = self.req.tool_call
        if text is None and call is not None:
            self.calls.append(call)
            if self.req.stream:
                self.wire.chunk(self._piece("", False, [call]))
        elif text is not None:
            (self.thinking if thinking else self.content).append(text)
            if self.req.stream:
                self.wire.chunk(self._piece(text, thinking))
        self.sent += 1
        return True

    # -- the run -------------------------------------------------------------

    def _plan(self) -> tuple[int, int, str]:
        req, name = self.req, self.req.model.name
        n_think = 0
        if req.think and req.think_tokens is not None:
            n_think = req.think_tokens
        elif req.think:
            n_think = req.model.think_tokens or textgen.default_think_length(name, req.key)
        if req.tool_call is not None:  # thinking (within num_predict), then the call
            return min(n_think, req.num_predict if req.num_predict is not None else n_think), 0, "stop"
        if req.num_predict is not None:
            n_think = min(n_think, req.num_predict)
            return n_think, req.num_predict - n_think, "length"
        total = textgen.default_content_length(name, self.node, req.key)
        return n_think, max(1, total - req.continued), "stop"

    def _tokens(self, n_think: int, n_content: int) -> Iterator[tuple[str | None, bool]]:
        name = self.req.model.name
        think_src = textgen.thinking_tokens(name, self.req.key)
        for _ in range(n_think):
            yield next(think_src), True
        if self.req.tool_call is not None:
            yield None, False  # the whole call in one chunk, as Ollama sends a parsed call
            return
        content_src = textgen.content_tokens(name, self.node, self.req.key)
        if self.req.continued:  # a continuation: the answer's tokens after those it already holds
            yield from itertools.islice(self._content(content_src, self.req.continued + n_content),
                                        self.req.continued, None)
            return
        yield from self._content(content_src, n_content)

    def _content(self, content_src: Iterator[str], n_content: int) -> Iterator[tuple[str | None, bool]]:
        if self.req.json_key is not None and n_content >= 2:
            # {"key": "words..."}: opened by the first token, closed by the last, so a whole answer parses
            yield "{" + json.dumps(self.req.json_key) + ': "', False
            for _ in range(n_content - 2):
                yield json.dumps(next(content_src))[1:-1], False
            rest = "".join(f", {json.dumps(k)}: {json.dumps(v)}" for k, v in self.req.json_rest.items())
            yield '"' + rest + "}", False
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
        kv = engine.kv_cache(req.model)  # prefill only what the cache does not hold (prefix_cache.py)
        slot, cached, restored = kv.take(self.sequence, profile.slots, req.prompt_tokens)
        finished: tuple[prefix_cache.Message, ...] | None = None
        try:
            prefill_s = (req.prompt_tokens - cached + restored / prefix_cache.RESTORE_SPEEDUP) \
                / profile.prefill_tps(req.model)
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
                if token is not None and not thinking:
                    cut = self._stop_cut(token)
                    if cut is not None:
                        if cut and not self._emit(cut, False):
                            return
                        done_reason = "stop"
                        break
                if not self._emit(token, thinking):
                    return
            if self.mid is not None:
                self._inject(self.mid.kind)  # the generation was shorter than after_chunks
                return
            eval_count = self.sent
            queue_sim = queue_wait_real / engine.time_scale
            stats = {
                "total_duration": int((queue_sim + load_s + prefill_s + eval_count / decode_tps + fault_delay) * 1e9),
                "load_duration": int(load_s * 1e9),
                "prompt_eval_count": req.prompt_tokens,  # cached tokens included, as Ollama counts them
                "prompt_eval_duration": int(prefill_s * 1e9),
                **({"prompt_eval_cached_count": cached} if cached else {}),
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
            finished = (*self.sequence, prefix_cache.message("assistant", "".join(self.content)))
        finally:
            kv.put(slot, finished)
            engine.release_model(req.model, req.keep_alive_s)


def _load_only(req: GenRequest, engine: SimEngine, wire: Wire) -> None:
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


def _extras(req: GenRequest) -> dict:
    """What a request carried beyond a plain chat, for the node's stats (only what it did carry)."""
    extras: dict = {}
    if not req.chat:
        extras["route"] = "generate"
    if req.generate_fields:
        extras["generate"] = req.generate_fields
    if req.images:
        extras["images"] = req.images
    if req.top_logprobs is not None:
        extras["logprobs"] = req.top_logprobs
    return extras


def handle(chat: bool, raw_body: bytes, engine: SimEngine, wire: Wire, faults: dict[str, Fault], stats: Stats, node: str) -> None:
    """Serve one generate/chat request; never raises for request problems."""
    try:
        try:
            body = json.loads(raw_body) if raw_body.strip() else None
        except ValueError as exc:
            raise RequestError(400, f"invalid JSON in request body: {exc}") from None
        if body is None:
            raise RequestError(400, "missing request body")
        req = parse(chat, body, engine.profile)
        with stats.lock:
            stats.received.append({"num_predict": req.num_predict, "continued": req.continued, "think": req.think,
                                   **_extras(req)})
        if req.empty:
            _load_only(req, engine, wire)
            return
        queue_wait = engine.acquire_slot()
        try:
            _Run(req, engine, wire, faults, stats, node, prefix_cache.sequence_of(body, chat)).run(queue_wait)
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
