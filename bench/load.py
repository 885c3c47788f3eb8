"""Load on a gateway: many streamed OpenAI chat completions from a raw aiohttp client, and what they cost.

    rounds = await load(url, requests=1000, clients=200, tokens=16, model=MODEL, pid=served.pid)

Every request is ``POST /v1/chat/completions`` with ``stream: true``, read as server-sent events:
its time to the first content delta (TTFT) and to ``data: [DONE]`` (end to end) are kept; a request
that answers with another status, or ends without content or ``[DONE]``, is an error. The gateway's
CPU is its process's user + system time (children included: a proxy may fork workers) over the run.

The client is as thin as it can be (bytes, not JSON, after the first delta): it shares the machine's
cores with the gateway, and whatever it spends is spent alike against every gateway it measures.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
from dataclasses import dataclass, field

import aiohttp
import psutil

DONE = b"data: [DONE]"


@dataclass
class LoadRun:
    """One run of ``requests`` streams through one gateway."""

    requests: int
    seconds: float
    cpu_s: float
    ttft_s: list[float] = field(default_factory=list)
    e2e_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def completed(self) -> int:
        return len(self.e2e_s)


@dataclass
class LoadFigures:
    """Runs of one gateway, merged: what the benchmark prints."""

    runs: list[LoadRun]

    @property
    def completed(self) -> int:
        return sum(r.completed for r in self.runs)

    @property
    def errors(self) -> int:
        return sum(len(r.errors) for r in self.runs)

    @property
    def cpu_per_1k_s(self) -> float:
        return sum(r.cpu_s for r in self.runs) * 1000 / max(1, self.completed)

    @property
    def requests_per_s(self) -> float:
        return self.completed / sum(r.seconds for r in self.runs)

    @property
    def ttft_p50_ms(self) -> float:
        return statistics.median(t for r in self.runs for t in r.ttft_s) * 1000

    @property
    def e2e_p50_ms(self) -> float:
        return statistics.median(t for r in self.runs for t in r.e2e_s) * 1000

    @property
    def ttft_p95_ms(self) -> float:
        ordered = sorted(t for r in self.runs for t in r.ttft_s)
        return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] * 1000


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its live children so far."""
    process = psutil.Process(pid)
    total = 0.0
    for p in [process, *process.children(recursive=True)]:
        try:
            times = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


async def _one(session: aiohttp.ClientSession, url: str, body: bytes, run: LoadRun) -> None:
    start = time.perf_counter()
    first = None
    done = False
    try:
        async with session.post(url, data=body, headers={"content-type": "application/json"}) as response:
            if response.status != 200:
                run.errors.append(f"HTTP {response.status}: {(await response.text())[:200]}")
                return
            async for line in response.content:
                if first is None and line.startswith(b"data: {") and _has_content(line):
                    first = time.perf_counter()
                elif line.startswith(DONE):
                    done = True
    except (TimeoutError, aiohttp.ClientError) as exc:
        run.errors.append(f"{type(exc).__name__}: {exc}")
        return
    if first is None or not done:
        run.errors.append("stream ended without content" if first is None else "stream ended without [DONE]")
        return
    run.ttft_s.append(first - start)
    run.e2e_s.append(time.perf_counter() - start)


def _has_content(line: bytes) -> bool:
    choices = json.loads(line[6:]).get("choices") or [{}]
    return bool((choices[0].get("delta") or {}).get("content"))


async def load(base_url: str, *, requests: int, clients: int, tokens: int, model: str, pid: int,
               api_key: str | None = None) -> LoadRun:
    """``requests`` streams, ``clients`` at a time, through the gateway at ``base_url`` (process ``pid``)."""
    url = base_url.rstrip("/") + "/v1/chat/completions"
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    left = iter(range(requests))
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout,
                                     headers=headers) as session:
        cpu_before = cpu_seconds(pid)
        run = LoadRun(requests=requests, seconds=0.0, cpu_s=0.0)

        async def client() -> None:
            for i in left:
                body = json.dumps({"model": model, "stream": True, "max_tokens": tokens,
                                   "messages": [{"role": "user", "content": f"Stream an answer about routing {i}."}]})
                await _one(session, url, body.encode(), run)

        start = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        run.seconds = time.perf_counter() - start
        run.cpu_s = cpu_seconds(pid) - cpu_before
    return run


@dataclass
class HoldFigures:
    """``streams`` held open at once through one gateway: how many got going, and what holding them cost."""

    streams: int
    open_at_once: int
    errors: list[str]
    cpu_percent: float      # of one core, while every stream was open
    tokens_per_s: float     # through the gateway meanwhile
    rss_mib: float
    threads: int


async def hold(base_url: str, *, streams: int, model: str, pid: int, api_key: str | None = None,
               seconds: float = 10.0) -> HoldFigures:
    """Open ``streams`` long streams at once; once all have their first token (30 s at most), measure
    for ``seconds`` how many are open and what the gateway spends on them."""
    url = base_url.rstrip("/") + "/v1/chat/completions"
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    started = 0
    tokens = 0
    errors: list[str] = []
    everyone = asyncio.Event()
    stop = asyncio.Event()

    async def one(session: aiohttp.ClientSession, i: int) -> None:
        nonlocal started, tokens
        body = json.dumps({"model": model, "stream": True, "max_tokens": 100_000,
                           "messages": [{"role": "user", "content": f"Hold a long answer open {i}."}]})
        first = True
        try:
            async with session.post(url, data=body, headers={"content-type": "application/json"}) as response:
                if response.status != 200:
                    errors.append(f"HTTP {response.status}")
                    return
                async for line in response.content:
                    if line.startswith(b"data: {"):
                        tokens += 1
                        if first:
                            first = False
                            started += 1
                            if started == streams:
                                everyone.set()
                    if stop.is_set():
                        return
        except (TimeoutError, aiohttp.ClientError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), headers=headers,
                                     timeout=aiohttp.ClientTimeout(total=None)) as session:
        tasks = [asyncio.ensure_future(one(session, i)) for i in range(streams)]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(everyone.wait(), 30)   # those not open by then are counted as not held
        process = psutil.Process(pid)
        cpu, tokens_before, begin = cpu_seconds(pid), tokens, time.perf_counter()
        await asyncio.sleep(seconds)
        elapsed = time.perf_counter() - begin
        figures = HoldFigures(streams, started, errors, (cpu_seconds(pid) - cpu) / elapsed * 100,
                              (tokens - tokens_before) / elapsed, process.memory_info().rss / 2**20,
                              process.num_threads())
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return figures
