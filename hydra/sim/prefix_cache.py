"""The simulated node's KV cache: per slot the last sequence it evaluated, and a host-memory prompt
cache behind the slots (issue 15).

What llama.cpp (under Ollama) does, reduced to its rule: each of a loaded model's ``slots`` keeps the
tokens of its last request, the prompt and the answer it generated. A request reuses the longest
common prefix its prompt has with what is cached, and only the tokens after it are evaluated:
prefill is charged for the uncached part alone, at the model's prefill speed (at least one token:
the last one is always evaluated). The request takes the free slot whose whole content it extends
(a conversation's next turn), else the least recently used free slot.

A slot taken for a different prompt does not simply lose what it held: llama-server (the runner
current Ollama starts) saves it to its host-memory prompt cache (``--cache-ram``, 8 GiB by default) and restores
it into a slot when a later prompt shares a prefix with it. So a node keeps more conversations warm
than it has slots, within ``NodeProfile.host_cache_tokens`` (0: slots only, as older Ollama). A
restore copies the state back instead of computing it: charged at ``RESTORE_SPEEDUP`` times the
prefill speed.

The cache belongs to one load of the model: an evicted, unloaded or reloaded model, or a restarted
node, starts empty (``SimEngine.kv_cache`` hands out the cache of the resident load). Prefixes are
compared by whole messages: the simulator counts tokens per message (``textgen.prompt_token_count``),
so a message is its unit.
"""
from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass

from hydra.sim import textgen

# One message of a sequence: (hash of its role and text, its tokens).
Message = tuple[bytes, int]
HOST_CACHE_TOKENS = 131_072   # ~8 GiB of KV for a 7B model with grouped-query attention
RESTORE_SPEEDUP = 20.0        # restoring cached state from host memory vs evaluating the tokens


def sequence_of(body: object, chat: bool) -> tuple[Message, ...]:
    """The messages of a generate/chat request body as the cache compares them (already parsed: valid)."""
    if not isinstance(body, dict):
        return ()
    if chat:
        items = [(str(m.get("role", "user")), str(m.get("content") or "")) for m in body.get("messages") or []
                 if isinstance(m, dict)]
    else:
        items = [("system", str(body.get("system") or "")), ("user", str(body.get("prompt") or ""))]
    return tuple(message(role, text) for role, text in items)


def message(role: str, text: str) -> Message:
    digest = hashlib.blake2b(f"{role}\x00{text}".encode("utf-8", "surrogatepass"), digest_size=16).digest()
    return digest, textgen.prompt_token_count([text], 1)


def common_tokens(a: tuple[Message, ...], b: tuple[Message, ...]) -> int:
    """Tokens of the messages ``a`` and ``b`` share from the start."""
    tokens = 0
    for (left, count), (right, _) in zip(a, b, strict=False):
        if left != right:
            break
        tokens += count
    return tokens


def _tokens(sequence: tuple[Message, ...]) -> int:
    return sum(count for _, count in sequence)


@dataclass
class _Slot:
    sequence: tuple[Message, ...] = ()
    busy: bool = False
    used: float = 0.0


class SlotCache:
    """The slots (and host-memory prompt cache) of one loaded model on one node."""

    def __init__(self, host_tokens: int = HOST_CACHE_TOKENS) -> None:
        self._lock = threading.Lock()
        self._slots: list[_Slot] = []
        self._host: list[tuple[Message, ...]] = []   # saved sequences, least recently used first
        self._host_tokens = host_tokens

    def take(self, prompt: tuple[Message, ...], slots: int, prompt_tokens: int) -> tuple[int, int, int]:
        """A free slot for ``prompt``: (its index, prompt tokens cached, of which restored from host memory).
        The longest common prefix with any slot or saved sequence is reused (copied when it is another
        slot's, restored when it is a saved one)."""
        with self._lock:
            while len(self._slots) < slots:
                self._slots.append(_Slot())
            in_slots = max((common_tokens(prompt, s.sequence) for s in self._slots), default=0)
            saved = max(((common_tokens(prompt, h), i) for i, h in enumerate(self._host)), default=(0, -1))
            free = [i for i, s in enumerate(self._slots) if not s.busy]
            if not free:  # more requests than slots (the engine prevents it): an extra slot
                self._slots.append(_Slot())
                free = [len(self._slots) - 1]
            extended = [i for i in free if self._slots[i].sequence
                        and common_tokens(prompt, self._slots[i].sequence) == _tokens(self._slots[i].sequence)]
            index = extended[0] if extended else min(free, key=lambda i: self._slots[i].used)
            slot = self._slots[index]
            restored = saved[0] if saved[0] > in_slots else 0
            if restored:
                self._host.append(self._host.pop(saved[1]))  # used: most recent now
            if not extended and slot.sequence:
                self._save_locked(slot.sequence)  # the slot is taken for another prompt: keep what it held
            slot.busy = True
        cap = max(0, prompt_tokens - 1)
        cached = min(max(in_slots, restored), cap)
        return index, cached, min(restored, cached)

    def _save_locked(self, sequence: tuple[Message, ...]) -> None:
        if self._host_tokens <= 0 or sequence in self._host:
            return
        self._host.append(sequence)
        while self._host and sum(_tokens(h) for h in self._host) > self._host_tokens:
            self._host.pop(0)

    def put(self, index: int, sequence: tuple[Message, ...] | None) -> None:
        """The request on slot ``index`` ended; the slot now holds ``sequence`` (None: it ended without
        finishing, and what it holds is not known: empty)."""
        with self._lock:
            slot = self._slots[index]
            slot.sequence = sequence or ()
            slot.busy = False
            slot.used = time.monotonic()

    def sequences(self) -> list[tuple[Message, ...]]:
        """What the slots hold (tests)."""
        with self._lock:
            return [s.sequence for s in self._slots]
