"""Tokens/s of the embedded node over HTTP vs llama.cpp called directly.

    python -m bench.embedded [--n 128] [--repeats 5] [--threads 2] [--budget 180]

Both sides run the same GGUF, threads, prompt (through the same chat
template), sampling (greedy, fixed seed) and token budget; the HTTP side is
the official `ollama` client streaming from `python -m hydra.node` in its own
process, the direct side is `xllamacpp.Server` in this process. Runs are
interleaved in rounds (one run per side, order rotating); the ratio is the
median over rounds of HTTP / direct within the round. Rounds during which
other processes took more than 10% of the CPU are set aside (marked *) and
replaced, within --budget seconds: on a 2-core box one busy neighbour halves
a run.

Tokens/s here is end to end: generated tokens / (final chunk received -
request sent), so it includes prompt evaluation, queueing, HTTP and JSON.
The decode rate (first to last token) and llama.cpp's own eval rate are
printed beside it.

`measure_http(url, model, prompt, n)` works against anything that speaks
Ollama's API; the third line, through the Router, is `measure_router`.
Exit status 1 when a ratio is below 0.95.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import ollama

from hydra.node import DEFAULT_MODEL_NAME, EmbeddedNode, bundled_model_path
from hydra.node.engine import DEFAULT_CTX, default_threads, sampling_request
from hydra.sollol import NodeSpec, Router, SollolConfig, Task, TaskStatus
from hydra.tiers import SEED_TIERS, classify

PROMPT = "Write a very long story about a dragon who learns to paint."
SYSTEM = "You are a helpful assistant."
# Greedy with a fixed seed: both sides generate the very same tokens.
OPTIONS: dict[str, Any] = {"temperature": 0, "seed": 42}


@dataclass
class Measurement:
    tokens: int  # generated tokens (llama.cpp's count)
    wall_s: float  # request sent -> final chunk received
    ttft_s: float  # request sent -> first token received
    decode_s: float  # first token -> last token received
    eval_rate: float  # llama.cpp's own predicted_n / predicted_ms

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.wall_s

    @property
    def decode_rate(self) -> float:
        return (self.tokens - 1) / self.decode_s if self.decode_s > 0 else float("nan")


def _messages(prompt: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]


def measure_http(url: str, model: str, prompt: str, n: int,
                 options: dict[str, Any] | None = None,
                 client: ollama.Client | None = None) -> Measurement:
    """Stream one chat through the official ollama client and time it."""
    own = client is None
    client = client or ollama.Client(host=url, timeout=300)
    try:
        first: float | None = None
        last = end = 0.0
        final = None
        t0 = time.perf_counter()
        for chunk in client.chat(model=model, messages=_messages(prompt), stream=True,
                                 options={**OPTIONS, **(options or {}), "num_predict": n}):
            now = time.perf_counter()
            if chunk.done:
                final, end = chunk, now
            elif chunk.message.content:
                first = first if first is not None else now
                last = now
        if final is None or first is None:
            raise RuntimeError(f"{url}: stream ended without tokens or a final chunk")
        tokens = final.eval_count or 0
        eval_rate = tokens / (final.eval_duration / 1e9) if final.eval_duration else 0.0
        return Measurement(tokens=tokens, wall_s=end - t0, ttft_s=first - t0,
                           decode_s=last - first, eval_rate=eval_rate)
    finally:
        if own:
            client.close()


def measure_router(router: Router, prompt: str, n: int) -> Measurement:
    """The same chat submitted to the Router (explicit model: one node serves it) and streamed back."""
    t0 = time.perf_counter()
    handle = router.submit(Task(messages=_messages(prompt), model=DEFAULT_MODEL_NAME, max_tokens=n,
                                options=dict(OPTIONS)))
    first: float | None = None
    last = 0.0
    for chunk in handle.stream(timeout=300):
        if chunk.text:
            now = time.perf_counter()
            first = first if first is not None else now
            last = now
    result = handle.result(timeout=300)
    end = time.perf_counter()
    if result.status is not TaskStatus.DONE or first is None:
        raise RuntimeError(f"router run failed: {result.status.value} {result.error}")
    return Measurement(tokens=result.eval_count or 0, wall_s=end - t0, ttft_s=first - t0,
                       decode_s=last - first, eval_rate=result.tokens_per_s or 0.0)


def direct_server(model_path: str, threads: int, n_ctx: int = DEFAULT_CTX) -> Any:
    """xllamacpp.Server with the parameters the node uses."""
    import xllamacpp as xlc

    params = xlc.CommonParams()
    params.model.path = model_path
    params.n_ctx = n_ctx
    params.n_parallel = 1
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.verbosity = 1
    params.hostnames = ["127.0.0.1"]  # its unused HTTP listener, locked like the node's
    params.port = 0
    params.api_keys = [secrets.token_hex(16)]
    return xlc.Server(params)


def measure_direct(server: Any, prompt: str, n: int,
                   options: dict[str, Any] | None = None) -> Measurement:
    """The same chat straight through xllamacpp's streaming callback."""
    # The node's own translation of Ollama options, so sampling is identical.
    request = sampling_request({**OPTIONS, **(options or {}), "num_predict": n})
    request.update(messages=_messages(prompt), stream=True)
    marks: dict[str, Any] = {"first": None, "last": None, "timings": None}

    def on_chunk(chunk: dict[str, Any]) -> None:
        now = time.perf_counter()
        for choice in chunk.get("choices") or ():
            if (choice.get("delta") or {}).get("content"):
                marks["first"] = marks["first"] or now
                marks["last"] = now
        if "timings" in chunk:
            marks["timings"], marks["end"] = chunk["timings"], now

    t0 = time.perf_counter()
    server.handle_chat_completions(request, on_chunk)
    timings = marks["timings"]
    if timings is None or marks["first"] is None:
        raise RuntimeError("direct generation produced no tokens or no timings")
    predicted_ms = float(timings["predicted_ms"])
    return Measurement(tokens=int(timings["predicted_n"]), wall_s=marks["end"] - t0,
                       ttft_s=marks["first"] - t0, decode_s=marks["last"] - marks["first"],
                       eval_rate=timings["predicted_n"] / (predicted_ms / 1e3) if predicted_ms else 0)


class CpuWatch:
    """Share of the machine's CPU used by *other* processes (Linux /proc)."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self._start = self._sample()

    def _sample(self) -> tuple[int, int, int] | None:
        try:
            with open("/proc/stat") as f:
                fields = [int(x) for x in f.readline().split()[1:]]
            total, idle = sum(fields[:8]), fields[3] + fields[4]
            ours = 0
            for pid in self.pids:
                with open(f"/proc/{pid}/stat") as f:
                    stat = f.read().rsplit(")", 1)[1].split()
                ours += int(stat[11]) + int(stat[12])  # utime + stime, all threads
            return total, total - idle, ours
        except (OSError, ValueError, IndexError):
            return None

    def others(self) -> float | None:
        end = self._sample()
        if self._start is None or end is None or end[0] == self._start[0]:
            return None
        total, busy, ours = (e - s for e, s in zip(end, self._start))
        return max(0.0, (busy - ours) / total)


def _median(ms: list[Measurement], attr: str) -> float:
    return statistics.median(getattr(m, attr) for m in ms)


def _line(label: str, ms: list[Measurement]) -> str:
    return (f"  {label:<38} {_median(ms, 'tokens_per_s'):7.1f} tok/s   "
            f"(decode {_median(ms, 'decode_rate'):6.1f} tok/s, llama.cpp eval "
            f"{_median(ms, 'eval_rate'):6.1f} tok/s, first token "
            f"{_median(ms, 'ttft_s') * 1e3:5.0f} ms, {int(_median(ms, 'tokens'))} tokens)")


@dataclass
class Round:
    runs: dict[str, Measurement]
    other_cpu: float | None  # share of the CPU other processes took meanwhile

    @property
    def clean(self) -> bool:
        return self.other_cpu is None or self.other_cpu <= MAX_OTHER_CPU


MAX_OTHER_CPU = 0.10


def run_rounds(sides: dict[str, Callable[[], Measurement]], repeats: int, pids: list[int],
               budget_s: float) -> list[Round]:
    """Rounds of one run per side, order rotating, until `repeats` clean rounds.

    On a shared machine another process's burst can halve one run; a round
    during which other processes took more than MAX_OTHER_CPU of the CPU is
    kept but not counted, and more rounds run, within `budget_s`.
    """
    rounds: list[Round] = []
    names = list(sides)
    deadline = time.monotonic() + budget_s
    while sum(r.clean for r in rounds) < repeats:
        if len(rounds) >= repeats and time.monotonic() > deadline:
            break
        k = len(rounds) % len(names)
        order = names[k:] + names[:k]
        watch = CpuWatch(pids)
        runs = {name: sides[name]() for name in order}
        rounds.append(Round(runs, watch.others()))
    return rounds


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.embedded", description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=128, help="tokens to generate (num_predict)")
    p.add_argument("--repeats", type=int, default=5, help="rounds (one run per side) to keep")
    p.add_argument("--threads", type=int, default=default_threads())
    p.add_argument("--prompt", default=PROMPT)
    p.add_argument("--budget", type=float, default=180.0,
                   help="seconds to keep trying for rounds the rest of the machine left alone")
    p.add_argument("--log", default=os.path.join(tempfile.gettempdir(), "bench-embedded-node.log"),
                   help="the node's log file")
    return p.parse_args(argv)


LABELS = {"direct": "llama.cpp direct (xllamacpp)",
          "http": "HTTP (ollama client -> hydra.node)",
          "router": "through the Router (hydra.sollol)"}


def _measure(args: argparse.Namespace, model_path: str) -> list[Round]:
    """Warm each side up, then run the rounds: llama.cpp direct, the node over HTTP, the Router."""
    with EmbeddedNode(port=0, log_path=args.log, threads=args.threads) as node, \
            ollama.Client(host=node.url, timeout=300) as client:
        server = direct_server(model_path, args.threads)
        # Through the Router: in this process, over the same node (monitor, dispatcher, worker, stream).
        router = Router(config=SollolConfig(nodes=(NodeSpec(url=node.url, name="embedded", slots=1),),
                                            discover_localhost=False), tiers=SEED_TIERS, classify=classify).start()
        sides: dict[str, Callable[[], Measurement]] = {
            "direct": partial(measure_direct, server, args.prompt, args.n),
            "http": partial(measure_http, node.url, DEFAULT_MODEL_NAME, args.prompt, args.n, client=client),
            "router": partial(measure_router, router, args.prompt, args.n),
        }
        pids = [os.getpid(), node.pid or 0]
        for side in sides.values():  # warm-up: first-run allocations, prompt cache
            side()
        rounds = run_rounds(sides, args.repeats, pids, args.budget)
        router.close()
        sides.clear()
        del server  # frees the direct model before the node stops
    return rounds


def _ratio_line(name: str, kept: list[Round]) -> tuple[str, bool]:
    """The ratio of ``name`` to direct, and whether it meets the target."""
    # Each run against the direct run of its own round: a slow stretch of
    # the machine then skews one pair, not the median.
    pairs = [r.runs[name].tokens_per_s / r.runs["direct"].tokens_per_s for r in kept]
    ratio = statistics.median(pairs)
    verdict = "ok" if ratio >= 0.95 else "BELOW TARGET"
    of_medians = (_median([r.runs[name] for r in kept], "tokens_per_s")
                  / _median([r.runs["direct"] for r in kept], "tokens_per_s"))
    return (f"  ratio {name} / direct: {ratio:.3f}  (median of the per-round ratios "
            f"{', '.join(f'{x:.3f}' for x in pairs)}; ratio of the medians above "
            f"{of_medians:.3f}; target >= 0.95: {verdict})"), ratio >= 0.95


def _report(rounds: list[Round]) -> int:
    """Print the medians, each run and the ratios; 1 when a ratio is below target."""
    kept = [r for r in rounds if r.clean] or rounds
    for name, label in LABELS.items():
        print(_line(label, [r.runs[name] for r in kept]))
    for name in LABELS:
        print(f"    {name:>6} runs: " + ", ".join(
            f"{r.runs[name].tokens_per_s:.1f}" + ("" if r.clean else "*") for r in rounds))
    status = 0
    for name in LABELS:
        if name != "direct":
            line, ok = _ratio_line(name, kept)
            print(line)
            status |= not ok
    noisy = [r for r in rounds if not r.clean]
    if noisy:
        others = ", ".join(f"{r.other_cpu:.0%}" for r in noisy)
        print(f"  * {len(noisy)} round(s) left out: other processes took {others} of the CPU"
              + ("" if len(kept) < len(rounds) else "; no quiet round: figures are noisy"))
    return int(status)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    model_path = bundled_model_path()
    print(f"embedded node benchmark: {DEFAULT_MODEL_NAME} ({os.path.basename(model_path)}), "
          f"{args.threads} threads, num_predict {args.n}, greedy; median of {args.repeats} "
          f"interleaved rounds")
    return _report(_measure(args, model_path))


if __name__ == "__main__":
    sys.exit(main())
