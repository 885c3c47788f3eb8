"""The simulated node's KV cache: per slot, the last sequence it evaluated (issue 15).

What llama.cpp (under Ollama) does, reduced to its rule: each of a loaded model's ``slots`` keeps the
tokens of its last request, the prompt and the answer it generated. A new request takes the free slot
sharing the longest common prefix with its prompt (the least recently used when none shares any),
and only the tokens after that prefix are evaluated: prefill is charged for the uncached part alone
(at least one token: the last one is always evaluated). The cache belongs to one load of the model:
an evicted, unloaded or reloaded model, or a restarted node, starts with empty slots
(``SimEngine.kv_cache`` hands out the cache of the resident load).

Prefixes are compared by whole messages: the simulator counts tokens per message
(``textgen.prompt_token_count``), so a message is its unit. The router's estimate
(``hydra/sollol/prompt_blocks.py``) is finer and is tested against this rule.
"""
from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass

from hydra.sim import textgen

# One message of a sequence: (hash of its role and text, its tokens).
Message = tuple[bytes, int]


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
    """The slots of one loaded model on one node."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: list[_Slot] = []

    def take(self, prompt: tuple[Message, ...], slots: int, prompt_tokens: int) -> tuple[int, int]:
        """A free slot for ``prompt`` and how many of its ``prompt_tokens`` are cached. As Ollama's
        multi-user cache: the longest common prefix with any slot is reused (copied when it is another
        slot's); the request takes the slot whose whole content it extends when that one is free, else the
        least recently used free slot, so another conversation's slot is not overwritten."""
        with self._lock:
            while len(self._slots) < slots:
                self._slots.append(_Slot())
            cached = max((common_tokens(prompt, s.sequence) for s in self._slots), default=0)
            free = [i for i, s in enumerate(self._slots) if not s.busy]
            if not free:  # more requests than slots (the engine prevents it): an extra slot
                self._slots.append(_Slot())
                free = [len(self._slots) - 1]
            extended = [i for i in free if self._slots[i].sequence
                        and common_tokens(prompt, self._slots[i].sequence) == _tokens(self._slots[i].sequence)]
            index = extended[0] if extended else min(free, key=lambda i: self._slots[i].used)
            self._slots[index].busy = True
        return index, max(0, min(cached, prompt_tokens - 1))

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
