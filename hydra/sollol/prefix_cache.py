"""What each node has in its KV cache, as far as the router can tell: the record behind
prefix-aware placement (issue 15).

An Ollama node (llama.cpp) keeps, per slot, the tokens of the last sequence it evaluated (the
prompt and the answer it generated), and a new request reuses the longest common prefix with what
is cached. A slot taken for another prompt saves what it held to llama-server's host-memory prompt
cache (current Ollama's runner; ``--cache-ram``, 8 GiB by default), from which a later prompt sharing
a prefix restores it. So for each node and model the router keeps the sequences it sent there, least
recently used first, each the set of its block hashes (``prompt_blocks.py``: no prompt text is
kept, only keyed hashes): a conversation's next turn replaces the sequence it extends; the others
stay while the node's cache can hold them. How many that is, the router learns per node: it starts
from ``MAX_SEQUENCES`` and halves (down to the node's slots) each time a prompt it thought cached
was evaluated whole (an older Ollama keeps only its slots), growing back on each confirmed hit.
``lookup`` estimates for a prompt how many of its tokens each (node, model) holds already; routing
turns that into prefill seconds saved at the node's measured prefill speed
(``scoring.affine_prefill``), so a warm node wins only when it finishes sooner.

The record forgets what the node has lost, as seen from outside: a model no longer in ``/api/ps``
(evicted, unloaded, or the node restarted), a node that stops answering its poll or changes
version, an attempt that failed there, a removed node. What it cannot see (a restart that reloads
the model between two polls) costs one slower prefill, after which the record is right again.

Bounded: at most ``MAX_SEQUENCES`` sequences per (node, model), ``MAX_MODELS`` models per node,
``MEMO_KEPT`` remembered task chains; each sequence at most ``prompt_blocks.MAX_BLOCKS`` hashes.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .model_names import model_key
from .prompt_blocks import EMPTY, PromptBlocks, common_blocks, prompt_blocks

if TYPE_CHECKING:
    from .node import NodeView

MAX_SEQUENCES = 64         # sequences tracked per (node, model): slots plus what its host-memory cache holds
MAX_TOKENS = 160_000       # and their tokens: about llama-server's 8 GiB host cache for a 7B model
MISS_FRACTION = 0.25       # a prompt thought mostly cached that evaluated more than this share of itself: a miss
MAX_MODELS = 8             # models per node with a record (a node keeps few loaded at once)
MEMO_KEPT = 4096           # tasks whose chain is remembered between routing rounds
SPEED_SAMPLES = 20
POLL_GRACE_S = 1.0         # a sequence recorded this recently may postdate the /api/ps a poll just read

Key = tuple[str, str]      # (node, model_key(model))


@dataclass(frozen=True)
class NodeCacheStats:
    """What prefix-aware placement saved on one node (estimates: tokens as the router counts them)."""

    node: str
    requests: int              # finished attempts there
    hits: int                  # of which some prompt prefix was cached there
    prompt_tokens: int
    cached_tokens: int
    prefill_saved_s: float     # cached tokens at the node's measured prefill speed
    prefill_tps: float | None  # its measured prefill speed (mean over its models), None before a sample


@dataclass(frozen=True)
class PrefixCacheSnapshot:
    """Prefix-aware placement (KV-cache affinity) across the cluster: ``hydra/sollol/prefix_cache.py``."""

    enabled: bool
    requests: int
    hits: int
    prompt_tokens: int
    cached_tokens: int
    prefill_saved_s: float
    nodes: tuple[NodeCacheStats, ...] = ()

    @property
    def hit_rate(self) -> float | None:
        """Share of finished attempts that found part of their prompt cached where they ran."""
        return self.hits / self.requests if self.requests else None

    @property
    def token_hit_rate(self) -> float | None:
        """Share of prompt tokens that were already cached where they ran."""
        return self.cached_tokens / self.prompt_tokens if self.prompt_tokens else None


@dataclass
class _Sequence:
    hashes: frozenset[int]
    blocks: PromptBlocks
    used: float            # monotonic: the least recently used is replaced first


@dataclass(frozen=True)
class Affinity:
    """One prompt against the record, frozen for one route: cached tokens where there are any, and the
    measured prefill speeds. Pure data: routing reads it without a lock."""

    prompt_tokens: int
    hits: Mapping[Key, int] = field(default_factory=dict)        # (node, model key) -> cached tokens
    speeds: Mapping[Key, float] = field(default_factory=dict)    # (node, model key) -> prompt tokens/s

    def cached(self, node: str, key: str) -> int:
        return self.hits.get((node, key), 0)


@dataclass
class _NodeTally:
    requests: int = 0
    hits: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    saved_s: float = 0.0


class PrefixCache:
    """The router's record of every node's KV cache. Thread-safe: workers record, the dispatcher looks up,
    monitors make it forget; one lock, never held across I/O."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[Key, list[_Sequence]] = {}
        self._samples: dict[Key, deque[float]] = {}
        self._speeds: dict[Key, float] = {}   # replaced, never mutated: lookups hand it out as is
        self._memo: OrderedDict[str, PromptBlocks] = OrderedDict()
        self._tally: dict[str, _NodeTally] = {}
        self._capacity: dict[Key, int] = {}    # sequences each (node, model) is thought to keep
        # Every hash of a key's sequences in one set: a chain is prefix-closed, so the union is too, and
        # the longest cached prefix is one binary search over it, however many sequences there are.
        self._union: dict[Key, frozenset[int]] = {}
        self._version = 0                      # bumped on every change: a task's lookup is reused until then
        self._looked: dict[str, tuple[int, Affinity]] = {}

    # --- a task's chain ---

    def blocks_for(self, task_id: str, messages: Callable[[], Iterable[Mapping[str, Any]]]) -> PromptBlocks:
        """The chain of a task's prompt (``messages()``: as sent), hashed once and remembered while the
        task may be routed again (``release`` when it ends)."""
        with self._lock:
            memo = self._memo.get(task_id)
        if memo is not None:
            return memo
        blocks = prompt_blocks(messages())
        with self._lock:
            self._memo[task_id] = blocks
            while len(self._memo) > MEMO_KEPT:
                self._memo.popitem(last=False)
        return blocks

    def release(self, task_id: str) -> None:
        with self._lock:
            self._memo.pop(task_id, None)
            self._looked.pop(task_id, None)

    def lookup(self, blocks: PromptBlocks, task_id: str | None = None) -> Affinity:
        """How many of the prompt's tokens each (node, model) holds (at most all but the last: a node
        always evaluates at least one token). With ``task_id``, the answer is kept until the record
        changes: a queued task is routed again at every dispatch round."""
        with self._lock:
            if task_id is not None:
                looked = self._looked.get(task_id)
                if looked is not None and looked[0] == self._version:
                    return looked[1]
            hits: dict[Key, int] = {}
            for key, union in self._union.items():
                tokens = self._cached_locked(blocks, union)
                if tokens:
                    hits[key] = tokens
            found = Affinity(blocks.tokens, hits, self._speeds)
            if task_id is not None:
                self._looked[task_id] = (self._version, found)
                while len(self._looked) > MEMO_KEPT:
                    self._looked.pop(next(iter(self._looked)))
        return found

    @staticmethod
    def _cached_locked(blocks: PromptBlocks, union: frozenset[int] | None) -> int:
        if not union:
            return 0
        return min(blocks.prefix_tokens(common_blocks(blocks, union)), max(0, blocks.tokens - 1))

    def _set_locked(self, key: Key, sequences: list[_Sequence] | None) -> None:
        """Replace (None: drop) a key's sequences, keeping the union and the version in step."""
        if sequences:
            self._records[key] = sequences
            self._union[key] = frozenset().union(*(s.hashes for s in sequences))
        else:
            self._records.pop(key, None)
            self._union.pop(key, None)
        self._version += 1

    # --- what a node evaluated (a worker's thread) ---

    def evaluated(self, node: str, model: str, slots: int, prompt: PromptBlocks, sequence: PromptBlocks,
                  prompt_eval_count: int | None, prompt_eval_ns: int | None) -> int:
        """An attempt finished on ``node``: see what it found cached, learn the node's prefill speed from a
        prompt it evaluated whole, and record the sequence its slot now holds (``sequence``: the prompt
        and the answer). Returns the prompt tokens that were cached there (measured when the node's
        prefill speed is known: its prompt_eval_duration says how much it evaluated)."""
        key = (node, model_key(model))
        now = time.monotonic()
        with self._lock:
            sequences = self._records.get(key, [])
            expected = self._cached_locked(prompt, self._union.get(key)) if prompt.tokens else 0
            speed = self._speeds.get(key)
            cached = expected
            if expected and speed and prompt_eval_count and prompt_eval_ns is not None:
                cached = self._measured_locked(key, slots, prompt, expected, speed, prompt_eval_count, prompt_eval_ns)
            elif not expected and prompt_eval_count and prompt_eval_ns and prompt_eval_ns > 0:
                self._sample_locked(key, prompt_eval_count / (prompt_eval_ns / 1e9))
            self._tally_locked(node, prompt.tokens, cached, self._speeds.get(key))
            if sequence.hashes:
                self._store_locked(key, sequences, _Sequence(frozenset(sequence.hashes), sequence, now))
        return cached

    def _measured_locked(self, key: Key, slots: int, prompt: PromptBlocks, expected: int, speed: float,
                         count: int, ns: int) -> int:
        """What the node really had cached, from the time it took; a miss shrinks what the router thinks
        the node keeps (never below its slots), a hit lets it grow back."""
        evaluated = min(1.0, ns / 1e9 * speed / count)          # the share of the prompt it evaluated
        cached = max(0, round(prompt.tokens * (1.0 - evaluated)))
        capacity = self._capacity.get(key, MAX_SEQUENCES)
        if expected >= prompt.tokens / 2:  # only a prompt thought mostly cached says much of the node's cache
            missed = evaluated > 1.0 - expected / prompt.tokens + MISS_FRACTION
            self._capacity[key] = max(slots, capacity // 2) if missed else min(MAX_SEQUENCES, capacity + 1)
        return min(cached, expected)

    def _tally_locked(self, node: str, prompt_tokens: int, cached: int, speed: float | None) -> None:
        tally = self._tally.setdefault(node, _NodeTally())
        tally.requests += 1
        tally.prompt_tokens += prompt_tokens
        if cached:
            tally.hits += 1
            tally.cached_tokens += cached
            tally.saved_s += cached / speed if speed else 0.0

    def _sample_locked(self, key: Key, tokens_per_s: float) -> None:
        samples = self._samples.setdefault(key, deque(maxlen=SPEED_SAMPLES))
        samples.append(tokens_per_s)
        self._speeds = {**self._speeds, key: sum(samples) / len(samples)}
        self._version += 1

    def _store_locked(self, key: Key, sequences: list[_Sequence], new: _Sequence) -> None:
        """A sequence that extends a recorded one's whole content replaces it (a conversation's next turn,
        in the slot it had); any other is added. Least recently used first; the oldest go beyond what
        the node is thought to keep (``_capacity``) or beyond ``MAX_TOKENS``."""
        kept = [s for s in sequences if not _covers(new.blocks, s.blocks)]
        kept.append(new)
        capacity = self._capacity.get(key, MAX_SEQUENCES)
        while len(kept) > capacity or (len(kept) > 1 and sum(s.blocks.tokens for s in kept) > MAX_TOKENS):
            kept.pop(0)
        self._set_locked(key, kept)
        models = [k for k in self._records if k[0] == key[0]]
        if len(models) > MAX_MODELS:
            self._set_locked(min(models, key=lambda k: self._records[k][-1].used), None)

    # --- forgetting ---

    def forget(self, node: str, model: str | None = None) -> None:
        """The node lost its cache (of ``model``, or of every model)."""
        with self._lock:
            for key in [k for k in self._records if k[0] == node and (model is None or k[1] == model_key(model))]:
                self._set_locked(key, None)

    def forget_node(self, node: str) -> None:
        """The node left the cluster: its record, speeds and tallies go too."""
        with self._lock:
            for key in [k for k in self._records if k[0] == node]:
                self._set_locked(key, None)
            self._samples = {k: v for k, v in self._samples.items() if k[0] != node}
            self._speeds = {k: v for k, v in self._speeds.items() if k[0] != node}
            self._version += 1
            self._capacity = {k: v for k, v in self._capacity.items() if k[0] != node}
            self._tally.pop(node, None)

    def observe(self, view: NodeView) -> None:
        """After each poll: forget what ``view`` shows the node has lost (see the module's docstring)."""
        node = view.name
        with self._lock:
            keys = [k for k in self._records if k[0] == node]
        if not keys:
            return
        if not view.healthy:
            self.forget(node)
            return
        loaded = {model_key(m) for m in view.loaded}
        grace = time.monotonic() - POLL_GRACE_S
        with self._lock:
            for key in keys:
                sequences = self._records.get(key)
                if sequences is not None and key[1] not in loaded and max(s.used for s in sequences) < grace:
                    self._set_locked(key, None)

    # --- reading ---

    def snapshot(self, enabled: bool) -> PrefixCacheSnapshot:
        with self._lock:
            tallies = {n: _NodeTally(**vars(t)) for n, t in self._tally.items()}
            speeds = dict(self._speeds)
        nodes = []
        for name in sorted(tallies):
            t = tallies[name]
            own = [v for k, v in speeds.items() if k[0] == name]
            nodes.append(NodeCacheStats(name, t.requests, t.hits, t.prompt_tokens, t.cached_tokens, t.saved_s,
                                        sum(own) / len(own) if own else None))
        return PrefixCacheSnapshot(
            enabled=enabled, requests=sum(n.requests for n in nodes), hits=sum(n.hits for n in nodes),
            prompt_tokens=sum(n.prompt_tokens for n in nodes), cached_tokens=sum(n.cached_tokens for n in nodes),
            prefill_saved_s=sum(n.prefill_saved_s for n in nodes), nodes=tuple(nodes))

    def held_hashes(self) -> int:
        """How many block hashes the record holds (tests: bounded; and nothing else is held)."""
        with self._lock:
            return sum(len(s.hashes) for seqs in self._records.values() for s in seqs)


def _covers(longer: PromptBlocks, shorter: PromptBlocks) -> bool:
    """Whether ``longer`` starts with all of ``shorter``: since each hash chains the ones before it, one
    comparison at ``shorter``'s last block says so (a search per recorded sequence cost 2 % of the
    gateway's CPU under load, each answer scanning up to 64 of them)."""
    size = len(shorter.hashes)
    return size == 0 or (size <= len(longer.hashes) and longer.hashes[size - 1] == shorter.hashes[-1])


NO_AFFINITY = Affinity(0)
__all__ = ["EMPTY", "NO_AFFINITY", "Affinity", "PrefixCache"]
