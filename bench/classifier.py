"""The task classifier's cost per prompt: the fast one (hydra.tiers) against the one-regex-per-rule
classifier it replaced (kept as tests/unit/classifier_reference.py), interleaved.

    python -m bench.classifier [--rounds N]

It runs on every submit, on the gateway's event loop, before the task is routed, so it is on the
time to first token of every request. Prompts: short ("hi"), typical (234 characters of a code
request), long (a pasted log of about 50,000 characters, of which SCAN_CHARS are read), and a
mixed set of requests. Each round times a batch of each arm in turn (the order alternating), and
the median over rounds is printed per prompt, with the ratio fast / reference. Both arms' answers
are compared first: a bench of a classifier that answers differently would measure nothing.
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from hydra.tiers import Classification, classify_task
from tests.unit.classifier_reference import reference_classify_task

Classifier = Callable[[str], Classification]

TYPICAL = "Write a Python function that parses a CSV file and returns the rows as dicts. " * 3
LONG = ("Here is the server log; why does the request time out after the deploy? "
        "2026-12-01 12:00:01 GET /api/items 200 12ms user=42 region=eu\n" * 370)
# The kinds of request a gateway sees, one of each task type and some of none.
EXAMPLES = [
    "Generate a Python function that merges two sorted lists",
    "Fix this bug: TypeError: 'NoneType' object is not subscriptable",
    "What is the capital of France?",
    "Solve 3x + 5 = 20",
    "Why does ice float? Explain step by step",
    "Compare the pros and cons of microservices versus monoliths",
    "Summarize the plot of Hamlet in three sentences.",
    "SELECT * FROM users WHERE age > 30; why is this query slow?",
    "What is the probability of rolling two sixes with two dice?",
    "Write a haiku about autumn",
    "Translate 'good morning' into Spanish",
    "hello, how are you today?",
]
PROMPTS: dict[str, list[str]] = {
    "short (2 chars)": ["hi"],
    f"typical ({len(TYPICAL)} chars)": [TYPICAL],
    f"long ({len(LONG):,} chars)": [LONG],
    f"mixed requests ({len(EXAMPLES)})": EXAMPLES,
}


def seconds_per_prompt(classifier: Classifier, prompts: list[str], repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        for prompt in prompts:
            classifier(prompt)
    return (time.perf_counter() - start) / (repeat * len(prompts))


def measure(prompts: list[str], rounds: int) -> tuple[float, float]:
    """Median seconds per prompt, fast and reference, over interleaved rounds of about 20 ms each."""
    once = seconds_per_prompt(reference_classify_task, prompts, 1) * len(prompts)
    repeat = max(1, int(0.02 / max(once, 1e-9)))
    fast: list[float] = []
    reference: list[float] = []
    for i in range(rounds):
        arms = [(classify_task, fast), (reference_classify_task, reference)]
        for classifier, times in arms if i % 2 == 0 else arms[::-1]:
            times.append(seconds_per_prompt(classifier, prompts, repeat))
    return statistics.median(fast), statistics.median(reference)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args()
    for prompts in PROMPTS.values():
        for prompt in prompts:
            if classify_task(prompt) != reference_classify_task(prompt):
                raise SystemExit(f"the two classifiers disagree on {prompt[:80]!r}")
    print(f"{'prompt':<28} {'fast':>10} {'reference':>10} {'fast/ref':>9}")
    for name, prompts in PROMPTS.items():
        fast, reference = measure(prompts, args.rounds)
        print(f"{name:<28} {fast * 1e6:8.1f}us {reference * 1e6:8.1f}us {fast / reference:9.3f}", flush=True)


if __name__ == "__main__":
    main()
