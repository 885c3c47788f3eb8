"""Model tiers (the seed's lists) and the task-type classifier."""
from __future__ import annotations

import sys

import pytest

from hydra.sollol.types import TASK_TYPES, Placement, TierEntry
from hydra.tiers import (
    DEFAULT_TIERS,
    EMBEDDED_MODEL,
    GENERAL_BASELINE,
    SEED_TIERS,
    TIE_ORDER,
    build_tiers,
    classify,
    classify_task,
    model_key,
)

POWERFUL, ANY, LIGHT, MOST = Placement.POWERFUL, Placement.ANY, Placement.LIGHT, Placement.MOST_CAPABLE_ONLY

# --- seed lists -----------------------------------------------------------------

SEED_EXPECTED = {
    "code": [("qwen2.5-coder:7b", POWERFUL), ("deepseek-coder-v2:latest", POWERFUL), ("codellama:13b", POWERFUL),
             ("qwen2.5-coder:3b", ANY), ("deepseek-coder:6.7b", ANY), ("qwen2.5-coder:1.5b", LIGHT)],
    "reasoning": [("qwen3:14b", POWERFUL), ("qwen3:1.7b", LIGHT)],
    "math": [("qwen3:14b", POWERFUL), ("qwen3:1.7b", LIGHT)],
    "general": [("llama3.1:70b", MOST), ("mistral:latest", ANY), ("llama3.2:3b", ANY), ("qwen3:8b", ANY)],
}


def pairs(entries: tuple[TierEntry, ...]) -> list[tuple[str, Placement]]:
    return [(e.model, e.placement) for e in entries]


def test_seed_tiers_cover_exactly_the_task_types() -> None:
    assert tuple(SEED_TIERS) == TASK_TYPES


@pytest.mark.parametrize("task_type", list(SEED_EXPECTED), ids=list(SEED_EXPECTED))
def test_seed_tiers_content_and_order(task_type: str) -> None:
    assert pairs(SEED_TIERS[task_type]) == SEED_EXPECTED[task_type]
    assert all(isinstance(e, TierEntry) for e in SEED_TIERS[task_type])


# --- build_tiers ---------------------------------------------------------------

def test_build_tiers_default_is_seed_plus_embedded_fallback() -> None:
    tiers = build_tiers()
    for task_type in TASK_TYPES:
        assert pairs(tiers[task_type]) == SEED_EXPECTED[task_type] + [(EMBEDDED_MODEL, LIGHT)]
    assert DEFAULT_TIERS == tiers


def test_build_tiers_without_fallback_is_the_seed() -> None:
    assert build_tiers(fallback=None) == SEED_TIERS


BUILD_CASES = [
    # (kwargs, task type, expected models in order)
    ({"reasoning_model": "deepseek-r1:14b"}, "reasoning",
     ["deepseek-r1:14b", "qwen3:14b", "qwen3:1.7b", EMBEDDED_MODEL]),
    ({"reasoning_model": "deepseek-r1:14b"}, "math",
     ["deepseek-r1:14b", "qwen3:14b", "qwen3:1.7b", EMBEDDED_MODEL]),
    ({"reasoning_model": "deepseek-r1:14b"}, "code", [m for m, _ in SEED_EXPECTED["code"]] + [EMBEDDED_MODEL]),
    ({"reasoning_model": "deepseek-r1:14b"}, "general",
     [m for m, _ in SEED_EXPECTED["general"]] + [EMBEDDED_MODEL]),
    # the light model promoted: moved to the front, not listed twice
    ({"reasoning_model": "qwen3:1.7b"}, "reasoning", ["qwen3:1.7b", "qwen3:14b", EMBEDDED_MODEL]),
    ({"reasoning_model": "deepseek-r1:14b", "use_reasoning_model": False}, "reasoning",
     ["qwen3:14b", "qwen3:1.7b", EMBEDDED_MODEL]),
    ({"reasoning_model": "deepseek-r1:14b", "use_reasoning_model": False}, "math",
     ["qwen3:14b", "qwen3:1.7b", EMBEDDED_MODEL]),
    ({"use_reasoning_model": False, "fallback": None}, "reasoning", ["qwen3:14b", "qwen3:1.7b"]),
    # a fallback already in the list is not appended again ("mistral" is "mistral:latest")
    ({"fallback": "mistral"}, "general", ["llama3.1:70b", "mistral:latest", "llama3.2:3b", "qwen3:8b"]),
    ({"fallback": "mistral"}, "code", [m for m, _ in SEED_EXPECTED["code"]] + ["mistral"]),
    ({"fallback": "qwen3:1.7b"}, "math", ["qwen3:14b", "qwen3:1.7b"]),
    ({"reasoning_model": "smollm2:135m"}, "reasoning", ["smollm2:135m", "qwen3:14b", "qwen3:1.7b"]),
]


@pytest.mark.parametrize(("kwargs", "task_type", "expected"), BUILD_CASES,
                         ids=[f"{'-'.join(f'{k}={v}' for k, v in kw.items())}-{t}" for kw, t, _ in BUILD_CASES])
def test_build_tiers(kwargs: dict, task_type: str, expected: list[str]) -> None:
    assert [e.model for e in build_tiers(**kwargs)[task_type]] == expected


def test_reasoning_model_is_placed_on_the_powerful_node_and_fallback_on_the_light() -> None:
    tiers = build_tiers(reasoning_model="qwen3:1.7b")
    assert tiers["reasoning"][0] == TierEntry("qwen3:1.7b", POWERFUL)
    assert tiers["reasoning"][-1] == TierEntry(EMBEDDED_MODEL, LIGHT, last_resort=True)
    # Only the appended fallback is the last resort (fast mode never trades down to it).
    assert [e.last_resort for e in tiers["reasoning"]] == [False] * (len(tiers["reasoning"]) - 1) + [True]


def test_build_tiers_does_not_touch_the_seed() -> None:
    before = {k: tuple(v) for k, v in SEED_TIERS.items()}
    build_tiers(reasoning_model="deepseek-r1:14b", fallback="x:1b")
    assert SEED_TIERS == before


def test_build_tiers_refuses_a_blank_reasoning_model() -> None:
    with pytest.raises(ValueError, match="reasoning_model"):
        build_tiers(reasoning_model="  ")
    # ...unless it is not used
    assert build_tiers(reasoning_model="", use_reasoning_model=False, fallback=None) == SEED_TIERS


@pytest.mark.parametrize(("a", "b", "same"), [
    ("mistral", "mistral:latest", True),
    ("Mistral:Latest", "mistral:latest", True),
    ("qwen3:14b", "qwen3:1.7b", False),
    ("hf.co/org/model", "hf.co/org/model:latest", True),
    ("localhost:5000/model", "localhost:5000/model:latest", True),
], ids=["no-tag", "case", "different-tags", "namespaced", "registry-port"])
def test_model_key(a: str, b: str, same: bool) -> None:
    assert (model_key(a) == model_key(b)) is same


# --- classifier ---------------------------------------------------------------------

SEED_EXAMPLES = [
    ("Generate a Python function that ...", "code"),
    ("Analyze the time complexity of this code: ...", "code"),
    ("Create unit tests for ...", "code"),
    ("What is the capital of France?", "general"),
    ("Solve 3x + 5 = 20", "math"),
    ("Why does ice float? Explain step by step", "reasoning"),
    # the seed's "Testing the Configuration" tasks, as written there
    ("Generate Python function", "code"),
    ("Analyze code complexity", "code"),
    ("Create unit tests", "code"),
]

MORE_EXAMPLES = [
    ("Write a regex that matches email addresses", "code"),
    ("Fix this bug: TypeError: 'NoneType' object is not subscriptable", "code"),
    ("Refactor this class to use dependency injection", "code"),
    ("How do I reverse a linked list in Rust?", "code"),
    ("Explain why this Python function is slow", "code"),
    ("Explain what a closure is in JavaScript", "code"),
    ("My build fails with ModuleNotFoundError in main.py", "code"),
    ("SELECT * FROM users WHERE age > 30; why is this query slow?", "code"),
    ("```\nfor i in range(10):\n    print(i)\n```\nWhat does this print?", "code"),
    ("Integrate Stripe payments into my Django app", "code"),
    ("What is 2+2?", "math"),
    ("Find the derivative of the function f(x) = x^3 + 2x", "math"),
    ("Prove that the square root of 2 is irrational", "math"),
    ("What is the probability of rolling two sixes with two dice?", "math"),
    ("What's the integral of x^2 from 0 to 3?", "math"),
    ("Calculate 15% of 240", "math"),
    ("What is the sum of the first 100 positive integers?", "math"),
    ("Evaluate $\\int_0^1 x^2 dx$", "math"),
    ("What is log(1000) in base 10?", "math"),
    ("Why does iron rust?", "reasoning"),
    ("Compare the pros and cons of microservices versus monoliths", "reasoning"),
    ("Explain the trade-offs between consistency and availability in distributed databases", "reasoning"),
    ("A farmer has 17 sheep; all but 9 run away. How many are left? It is a logic puzzle.", "reasoning"),
    ("Should we migrate our monolith to microservices? Weigh the implications.", "reasoning"),
    ("Plan a 3-day trip to Rome", "reasoning"),
    ("Write a haiku about autumn", "general"),
    ("Translate 'good morning' into Spanish", "general"),
    ("Summarize the plot of Hamlet", "general"),
    ("Who wrote Pride and Prejudice?", "general"),
    ("hi", "general"),
    ("", "general"),
    # everyday uses of words that are also code or math words
    ("What class of drugs is aspirin?", "general"),
    ("What is the function of the liver?", "general"),
    ("Select the best option from the list", "general"),
    ("Go to the store and buy milk", "general"),
    ("What happened on 2024-01-05?", "general"),
    ("What does serendipity mean?", "general"),
    ("Summarise the server logs from last night", "general"),
    ("Write a cover letter for a marketing job", "general"),
]


@pytest.mark.parametrize(("prompt", "expected"), SEED_EXAMPLES + MORE_EXAMPLES,
                         ids=[p[:40] or "empty" for p, _ in SEED_EXAMPLES + MORE_EXAMPLES])
def test_classify(prompt: str, expected: str) -> None:
    result = classify_task(prompt)
    assert result.task_type == expected, result
    assert classify(prompt) == expected


@pytest.mark.parametrize(("prompt", "tied", "winner"), [
    ("Why does iron rust? Use Python.", ("code", "reasoning"), "code"),
    ("Why is 2+2 equal to 4?", ("math", "reasoning"), "math"),
    ("Plan my week", ("reasoning", "general"), "reasoning"),
], ids=["code-over-reasoning", "math-over-reasoning", "reasoning-over-general"])
def test_ties_follow_the_fixed_order(prompt: str, tied: tuple[str, str], winner: str) -> None:
    result = classify_task(prompt)
    assert result.scores[tied[0]] == result.scores[tied[1]] == max(result.scores.values())
    assert result.task_type == winner
    assert TIE_ORDER.index(tied[0]) < TIE_ORDER.index(tied[1])


def test_classification_carries_scores_and_reasons() -> None:
    result = classify_task("Write a Python function that solves a quadratic equation")
    assert set(result.scores) == set(TASK_TYPES)
    assert result.scores["general"] == GENERAL_BASELINE
    assert result.task_type == max(TIE_ORDER, key=lambda t: (result.scores[t], -TIE_ORDER.index(t)))
    assert any(r.startswith("code: language") for r in result.reasons)
    assert any(r.startswith("math: equation") for r in result.reasons)


def test_general_says_why() -> None:
    result = classify_task("Tell me a joke")
    assert result.task_type == "general"
    assert result.reasons == (f"general: no other type reached {GENERAL_BASELINE:g}",)


def test_repeating_a_word_does_not_outvote() -> None:
    # each rule counts once: ten "why"s weigh what one does
    assert classify_task("why " * 10).scores["reasoning"] == classify_task("why").scores["reasoning"]


def test_classifier_is_deterministic() -> None:
    prompts = [p for p, _ in SEED_EXAMPLES + MORE_EXAMPLES]
    assert [classify_task(p) for p in prompts] == [classify_task(p) for p in prompts]


@pytest.mark.timeout(30)  # a hang guard (catastrophic backtracking), not a speed target
def test_a_huge_prompt_is_classified_without_backtracking_for_ever() -> None:
    prompt = "SELECT " * 20_000 + "def f(x):\n    return x\n" * 5_000
    assert classify(prompt) in ("code", "reasoning", "math", "general")


def test_tiers_imports_nothing_from_hydra_but_sollol() -> None:
    # hydra.sollol.router imports hydra.tiers; anything more here would make a cycle
    with open(sys.modules["hydra.tiers"].__file__, encoding="utf-8") as source:
        hydra_imports = [line.strip() for line in source if line.startswith(("import hydra", "from hydra"))]
    assert hydra_imports == ["from hydra.sollol.model_names import model_key",
                             "from hydra.sollol.types import TASK_TYPES, Placement, TierEntry"]
