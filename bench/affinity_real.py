"""The real-model arm of ``bench.affinity``: two embedded nodes (two processes of ``python -m hydra.node``,
SmolLM2-135M over llama.cpp, one thread each on this 2-core machine) and a six-turn conversation.

    python -m bench.affinity --real-only

Arm "affinity": one router over both nodes; each turn resends the whole conversation and the router
places it. Arm "forced": every turn goes straight to the node the previous turn did not use (the ollama
client, no router: so this arm is spared the router's own cost), so each follow-up pays the whole
history's prefill. Both nodes answer one short request first (llama.cpp's first call is slow). The arms alternate turn by turn over
the same questions (their own answers: greedy, so nearly alike). Printed: each arm's follow-up TTFT
(turns 2-6, median) and the ratio. Then whether llama.cpp really reused its prompt cache: the same
conversation replayed straight to one node, with the final line's prompt_eval_count (the whole prompt,
as Ollama counts it) and prompt_eval_duration (the part llama.cpp evaluated), against a turn that finds
nothing cached.
"""
from __future__ import annotations

import contextlib
import random
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import ollama

from hydra.node import EmbeddedNode
from hydra.sollol import NodeSpec, Router, RoutingMode, SollolConfig, Task, TaskStatus

TURNS = 6
QUESTION_WORDS, ANSWER_TOKENS = 110, 32
OPTIONS = {"temperature": 0, "seed": 7}


def question(rng: random.Random) -> str:
    topics = ("queues", "caches", "threads", "sockets", "parsers", "schedulers", "indexes", "buffers")
    return "Explain, in one short paragraph, how " + " and ".join(rng.choice(topics) for _ in range(3)) + \
        " interact. Context: " + " ".join(rng.choice(topics) for _ in range(QUESTION_WORDS))


@contextlib.contextmanager
def two_nodes(workdir: Path) -> Iterator[list[EmbeddedNode]]:
    with EmbeddedNode(port=0, threads=1, log_path=workdir / "n1.log") as one, \
            EmbeddedNode(port=0, threads=1, log_path=workdir / "n2.log") as two:
        yield [one, two]


def router_over(nodes: list[EmbeddedNode]) -> Router:
    specs = tuple(NodeSpec(n.url, name=f"n{i + 1}", slots=1) for i, n in enumerate(nodes))
    config = SollolConfig(nodes=specs, discover_localhost=False, default_mode=RoutingMode.FAST, poll_interval_s=0.5,
                          first_token_timeout_s=300.0)
    return Router(config=config).start(wait_for_nodes_s=10.0)


def direct_turn(url: str, model: str, messages: list[dict[str, str]]) -> tuple[float, str]:
    start = time.perf_counter()
    first = None
    parts = []
    for part in ollama.Client(host=url, timeout=300).chat(model=model, messages=messages, stream=True,
                                                           options={**OPTIONS, "num_predict": ANSWER_TOKENS}):
        first = first or time.perf_counter()
        parts.append(part.message.content or "")
    return (first or time.perf_counter()) - start, "".join(parts)


def timed_turn(router: Router, model: str, messages: list[dict[str, str]]) -> tuple[float, str, str]:
    start = time.perf_counter()
    handle = router.submit(Task(messages=list(messages), model=model, max_tokens=ANSWER_TOKENS, options=dict(OPTIONS)))
    first = None
    for _ in handle.stream(timeout=300):
        first = first or time.perf_counter()
    result = handle.result(timeout=300)
    if result.status is not TaskStatus.DONE:
        raise RuntimeError(f"turn failed: {result.error}")
    return (first or time.perf_counter()) - start, result.node or "", result.text


def real_model_arm() -> bool:
    with tempfile.TemporaryDirectory() as tmp, two_nodes(Path(tmp)) as nodes:
        model = nodes[0].model_name
        for embedded in nodes:
            direct_turn(embedded.url, model, [{"role": "user", "content": "hello"}])
        urls = {f"n{i + 1}": n.url for i, n in enumerate(nodes)}
        both = router_over(nodes)
        # One short task on each node through the router (one slot each: two at once take both), so its
        # first-token deadlines rest on measured times, not on the 10 s floor a busy 2-core box can exceed.
        for handle in [both.submit(Task(prompt="hello", model=model, max_tokens=4)) for _ in nodes]:
            handle.result(timeout=300)
        try:
            rng = random.Random(3)
            questions = [question(rng) for _ in range(TURNS)]
            talks: dict[str, list[dict[str, str]]] = {"affinity": [], "forced": []}
            ttft: dict[str, list[float]] = {"affinity": [], "forced": []}
            last_forced = "n2"
            for turn, text in enumerate(questions, start=1):
                for arm in (("affinity", "forced") if turn % 2 else ("forced", "affinity")):
                    talk = talks[arm]
                    talk.append({"role": "user", "content": text})
                    if arm == "affinity":
                        seconds, node, answer = timed_turn(both, model, talk)
                    else:
                        node = last_forced = "n1" if last_forced == "n2" else "n2"
                        seconds, answer = direct_turn(urls[node], model, talk)
                    talk.append({"role": "assistant", "content": answer})
                    if turn > 1:
                        ttft[arm].append(seconds)
                    print(f"  turn {turn} {arm:<8} on {node}: TTFT {seconds:5.2f} s", flush=True)
            with_affinity, forced = statistics.median(ttft["affinity"]), statistics.median(ttft["forced"])
            print(f"real model ({model}, two embedded nodes): follow-up TTFT median with affinity "
                  f"{with_affinity:.2f} s, forced to the other node {forced:.2f} s: {with_affinity / forced:.2f} x")
        finally:
            both.close()
        return prompt_cache_evidence(nodes[0].url, model, talks["affinity"])


def prompt_cache_evidence(url: str, model: str, talk: list[dict[str, str]]) -> bool:
    """Replay the conversation straight to one node: what its final lines say llama.cpp evaluated."""
    client = ollama.Client(host=url, timeout=300)
    client.chat(model=model, messages=[{"role": "user", "content": "reset the slot with something else"}],
                options={**OPTIONS, "num_predict": 1})
    rates = []
    for end in range(2, len(talk) + 1, 2):
        reply = client.chat(model=model, messages=talk[:end - 1], options={**OPTIONS, "num_predict": ANSWER_TOKENS})
        count, ns = reply.prompt_eval_count or 0, reply.prompt_eval_duration or 0
        rates.append((count, ns))
        print(f"  replay turn {end // 2}: prompt_eval_count {count:5d}, prompt_eval_duration {ns / 1e6:7.1f} ms",
              flush=True)
    cold_count, cold_ns = rates[0]
    speed = cold_count / (cold_ns / 1e9) if cold_ns else None
    # Without reuse the prefill time grows with the whole prompt (the last turn's would be about six
    # times the first's); with it, it follows the new message only. The last turn says it most clearly
    # (a loaded machine makes the speed of any one turn noisy).
    count, ns = rates[-1]
    evaluated = ns / 1e9 * speed if speed else float(count)
    reused = evaluated < 0.5 * count
    print(f"  llama.cpp reused its prompt cache: {'yes' if reused else 'NO'} (last turn: about {evaluated:,.0f} of "
          f"{count:,} prompt tokens evaluated, at the first turn's {speed or 0:,.0f} tokens/s)")
    return reused
