"""Prefix-aware placement (issue 15): follow-up TTFT and makespan with and without it.

    python -m bench.affinity [--presets seed,cluster8] [--rounds 2] [--time-scale S] [--real-model]
                             [--host-cache-tokens 0,preset] [--conversations 20]

Simulated arm: 20 concurrent conversations x 8 turns on a preset (its nodes in a process of their
own, the model loaded beforehand), each turn resending the whole history (system prompt, every
question and answer), as gateway clients do: about 500 prompt tokens at turn 1, 4,000 at turn 8.
A conversation sends its next turn when the answer to the last one has arrived. Both arms run on
a fresh cluster each (empty caches), interleaved in rounds (order alternating): "with" is the
default router, "without" sets ``prefix_affinity=False`` (SOLLOL_PREFIX_AFFINITY=false). TTFT is
the client's: from submit to the first chunk, router queueing included. Figures: p50 and p95 of
turns 2-8 and the makespan, medians over rounds, and their ratios. Targets: follow-up TTFT p50 at
most 0.5 x without, makespan at most 1.05 x without. Each preset runs under two cache models of
the simulated node: the KV cache per slot only (what the target was set for), and per slot plus
llama-server's host-memory prompt cache behind the slots (today's Ollama default, which keeps
conversations warm whichever node they land on, and so leaves placement less to win).

Real-model arm (``--real-model``): two embedded nodes (two processes of ``python -m hydra.node``,
SmolLM2 over llama.cpp) and one six-turn conversation; follow-up TTFT with affinity against every
turn forced to the other node than the last (a router per turn over that node only), and whether
llama.cpp reused its prompt cache: the final line's prompt_eval_count and its prompt_eval_duration
(tokens evaluated = duration x the node's measured prefill speed).
"""
from __future__ import annotations

import argparse
import random
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import ollama

from bench.processes import preset_process
from hydra.sim import PRESETS
from hydra.sim.prefix_cache import HOST_CACHE_TOKENS
from hydra.sollol import Router, RoutingMode, SollolConfig, Task, TaskStatus
from hydra.sollol.config import parse_nodes

MODEL = "qwen2.5-coder:7b"          # on both seed nodes and seven of cluster8's
CONVERSATIONS, TURNS = 20, 8
FIRST_WORDS, NEXT_WORDS, ANSWER_TOKENS = 380, 300, 100
DEFAULT_SCALES = {"seed": 0.05, "cluster8": 0.1}
SYSTEM = "You are a senior engineer reviewing code. Answer precisely."


def words(rng: random.Random, n: int) -> str:
    """Four-letter words: the simulator's 1.3 tokens a word and the router's 4 characters a token agree."""
    return " ".join("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(4)) for _ in range(n))


@dataclass
class Turn:
    conversation: int
    turn: int
    ttft_s: float
    node: str
    prompt_tokens: int


def conversation(router: Router, index: int, turns: list[Turn], lock: threading.Lock) -> None:
    rng = random.Random(index)
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": words(rng, FIRST_WORDS)}]
    for turn in range(1, TURNS + 1):
        start = time.perf_counter()
        handle = router.submit(Task(messages=list(messages), model=MODEL, max_tokens=ANSWER_TOKENS))
        first = None
        for _chunk in handle.stream(timeout=600):
            first = first or time.perf_counter()
        result = handle.result(timeout=600)
        if result.status is not TaskStatus.DONE:
            raise RuntimeError(f"conversation {index} turn {turn}: {result.error}")
        with lock:
            turns.append(Turn(index, turn, (first or time.perf_counter()) - start, result.node or "",
                              result.prompt_eval_count or 0))
        messages += [{"role": "assistant", "content": result.text}, {"role": "user", "content": words(rng, NEXT_WORDS)}]


@dataclass
class ArmResult:
    p50: float
    p95: float
    makespan: float
    hit_rate: float | None
    saved_s: float
    first_prompt: int
    last_prompt: int
    by_node: dict[str, int]
    stayed: float              # share of follow-ups that ran where the turn before ran


@dataclass(frozen=True)
class Setup:
    preset: str
    scale: float
    mode: RoutingMode
    host_cache: int | None      # tokens of host-memory prompt cache per node; None: the preset's
    conversations: int = CONVERSATIONS


def run_arm(setup: Setup, affinity: bool) -> ArmResult:
    preset, mode = setup.preset, setup.mode
    profiles = PRESETS[preset]
    with preset_process(preset, setup.scale, setup.host_cache) as cluster:
        for node in cluster.nodes:
            if any(m.name == MODEL for m in node.profile.models):
                ollama.Client(host=node.url).chat(model=MODEL, messages=[{"role": "user", "content": "warm"}],
                                                  options={"num_predict": 1}, keep_alive=-1)
        config = SollolConfig(nodes=tuple(parse_nodes(cluster.sollol_nodes())), discover_localhost=False,
                              max_concurrent_requests=sum(p.slots for p in profiles), default_mode=mode,
                              poll_interval_s=0.5, prefix_affinity=affinity, first_token_timeout_s=600.0)
        turns: list[Turn] = []
        lock = threading.Lock()
        with Router(config=config) as router:
            start = time.perf_counter()
            threads = [threading.Thread(target=conversation, args=(router, i, turns, lock)) for i in range(setup.conversations)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            makespan = time.perf_counter() - start
            cache = router.snapshot().prefix_cache
    if len(turns) != setup.conversations * TURNS:
        raise RuntimeError(f"only {len(turns)} of {setup.conversations * TURNS} turns finished")
    follow = sorted(t.ttft_s for t in turns if t.turn > 1)
    return ArmResult(statistics.median(follow), follow[int(0.95 * (len(follow) - 1))], makespan,
                     cache.token_hit_rate if cache else None, cache.prefill_saved_s if cache else 0.0,
                     round(statistics.mean(t.prompt_tokens for t in turns if t.turn == 1)),
                     round(statistics.mean(t.prompt_tokens for t in turns if t.turn == TURNS)),
                     {n: sum(t.node == n for t in turns) for n in sorted({t.node for t in turns})},
                     _stayed(turns))


def _stayed(turns: list[Turn]) -> float:
    node = {(t.conversation, t.turn): t.node for t in turns}
    follow = [t for t in turns if t.turn > 1]
    return sum(node[(t.conversation, t.turn - 1)] == t.node for t in follow) / len(follow)


def bench_preset(setup: Setup, rounds: int) -> bool:
    arms: dict[bool, list[ArmResult]] = {True: [], False: []}
    for round_index in range(rounds):
        for affinity in ((True, False) if round_index % 2 == 0 else (False, True)):
            result = run_arm(setup, affinity)
            arms[affinity].append(result)
            print(f"  round {round_index + 1} {'with   ' if affinity else 'without'}: follow-up TTFT p50 "
                  f"{result.p50:6.2f} s  p95 {result.p95:6.2f} s  makespan {result.makespan:6.2f} s  "
                  f"token hit rate {_percent(result.hit_rate)}  follow-ups where the last turn ran "
                  f"{_percent(result.stayed)}", flush=True)
            print(f"    turns by node: {result.by_node}", flush=True)

    def median(affinity: bool, field: str) -> float:
        return statistics.median(getattr(r, field) for r in arms[affinity])

    p50, p95, makespan = (median(True, f) / median(False, f) for f in ("p50", "p95", "makespan"))
    sample = arms[True][0]
    print(f"{setup.preset}, {setup.mode.value} mode: {setup.conversations} conversations x {TURNS} turns, {MODEL}, "
          f"prompts {sample.first_prompt:,} -> {sample.last_prompt:,} tokens, time scale {setup.scale}, {rounds} rounds "
          f"(medians), node cache: {_cache_model(setup.host_cache)}")
    print(f"  with / without: follow-up TTFT p50 {p50:.2f} x  p95 {p95:.2f} x  makespan {makespan:.2f} x; "
          f"prefill saved {median(True, 'saved_s'):,.0f} simulated s")
    ok = p50 <= 0.5 and makespan <= 1.05
    print(f"  targets: TTFT p50 <= 0.50 x and makespan <= 1.05 x: {'OK' if ok else 'MISSED'}", flush=True)
    return ok


def _cache_model(host_cache: int | None) -> str:
    if host_cache == 0:
        return "per slot only"
    return f"per slot + host-memory prompt cache of {host_cache or HOST_CACHE_TOKENS:,} tokens (llama-server)"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="seed,cluster8")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--mode", default="async", choices=[m.value for m in RoutingMode],
                        help="the router's default mode the conversations run in (default: async, Hydra's default)")
    parser.add_argument("--time-scale", type=float, default=None,
                        help="simulated time multiplier (default: seed 0.05, cluster8 0.1)")
    parser.add_argument("--host-cache-tokens", default="0,preset",
                        help="each simulated node's host-memory prompt cache behind its slots, in tokens: 0 = the "
                             "per-slot cache only (Ollama before llama-server, or LLAMA_ARG_CACHE_RAM=0); 'preset' = "
                             "the preset's, llama-server's 8 GiB default; several, comma-separated, run one after the "
                             "other (default: 0,preset)")
    parser.add_argument("--conversations", default=str(CONVERSATIONS),
                        help=f"concurrent conversations; several, comma-separated, run one after the other "
                             f"(default: {CONVERSATIONS})")
    parser.add_argument("--real-model", action="store_true", help="also run the real-model arm (two embedded nodes)")
    parser.add_argument("--real-only", action="store_true", help="run only the real-model arm")
    args = parser.parse_args(argv)
    ok = True
    if not args.real_only:
        caches = [None if c.strip() == "preset" else int(c) for c in args.host_cache_tokens.split(",") if c.strip()]
        counts = [int(c) for c in args.conversations.split(",") if c.strip()]
        for host_cache in caches:
            for preset in (p.strip() for p in args.presets.split(",") if p.strip()):
                for count in counts:
                    setup = Setup(preset, args.time_scale or DEFAULT_SCALES.get(preset, 0.1), RoutingMode(args.mode),
                                  host_cache, count)
                    ok = bench_preset(setup, args.rounds) and ok
    if args.real_model or args.real_only:
        from bench.affinity_real import real_model_arm
        ok = real_model_arm() and ok
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
