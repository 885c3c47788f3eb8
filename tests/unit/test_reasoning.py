"""The reasoning engine: complexity score, thinking level and budget, thinking models."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from hydra.reasoning import (
    BUDGET_HIGH,
    BUDGET_LOW,
    LEVELS,
    SIMPLE_BELOW,
    Assessment,
    Reason,
    ReasoningSettings,
    assess,
    complexity,
    standard_budget,
    supports_thinking,
)
from hydra.sollol.errors import ConfigError
from hydra.sollol.thinking import THINKING_SLACK_TOKENS
from hydra.tiers import classify

TRIVIAL = {
    "hi": "hi",
    "2+2": "What is 2+2?",
    "capital": "What is the capital of France?",
    "thanks": "Thanks!",
    "joke": "Tell me a joke",
    "hamlet": "Who wrote Hamlet?",
    "sky": "Why is the sky blue?",
    "empty": "",
}
MEDIUM = {
    "merge-lists": ("Write a Python function that merges two sorted lists into one sorted list "
                    "without using sort()."),
    "palindrome": ("Write a function in Python that checks whether a string is a palindrome, "
                   "ignoring case and punctuation."),
    "debounce": ("Implement a JavaScript debounce function with a configurable delay and a cancel method; "
                 "it must handle being called with different arguments."),
    "iso-date": ("Write a Python function that parses an ISO-8601 date string and returns a datetime, "
                 "raising ValueError on bad input."),
    "lru": "Write a Python class for an LRU cache with get and put in O(1) time.",
    "hash-map": ("Explain how a hash map handles collisions, compare open addressing with chaining, "
                 "and say when you should prefer each."),
}
PROOF = ("Prove that there are infinitely many primes, then derive a bound on the n-th prime step by step "
         "and explain each step")
SYSTEM_DESIGN = ("Design a distributed, fault-tolerant rate limiter for a multi-region API: give the "
                 "architecture, data model, consistency trade-offs, failure modes and a step-by-step rollout plan")
HARDEST = """Design and formally prove correct a lock-free, distributed consensus protocol for a scalable, \
fault-tolerant key-value store:
1. derive the message complexity bound step by step;
2. then prove the safety invariant by induction;
3. then analyse the trade-offs between consistency and latency;
4. implement the core state machine in Rust, with unit tests.
It must tolerate at least f crash failures with 2f + 1 replicas, should avoid deadlocks and race conditions, \
and must not use a central coordinator. What are the failure modes? How does it compare to Raft?"""
HARD = {"proof": PROOF, "system-design": SYSTEM_DESIGN, "hardest": HARDEST}

NON_THINKING = ["mistral:latest", "llama3.1:70b", "llama3.2:3b", "qwen2.5-coder:7b", "codellama:13b",
                "deepseek-coder:6.7b", "deepseek-coder-v2:latest", "smollm2:135m", "qwen3-coder:30b"]


# --- settings --------------------------------------------------------------------

def test_settings_defaults_are_the_seeds() -> None:
    s = ReasoningSettings()
    assert (s.mode, s.reasoning_model, s.use_reasoning_model, s.max_thinking_tokens, s.deep_thinking_threshold) \
        == ("auto", "qwen3:14b", True, 6000, 9.5)


def test_settings_from_any_object_with_the_attributes() -> None:
    source = SimpleNamespace(reasoning_mode="DEEP", reasoning_model=" deepseek-r1:14b ", use_reasoning_model=False,
                             max_thinking_tokens=2000, deep_thinking_threshold=8)
    s = ReasoningSettings.from_settings(source)
    assert s == ReasoningSettings("deep", "deepseek-r1:14b", False, 2000, 8.0)
    assert ReasoningSettings.from_settings(SimpleNamespace()) == ReasoningSettings()


@pytest.mark.parametrize(("kwargs", "variable"), [
    ({"mode": "turbo"}, "HYDRA_REASONING_MODE"),
    ({"reasoning_model": " "}, "HYDRA_REASONING_MODEL"),
    ({"max_thinking_tokens": 0}, "HYDRA_MAX_THINKING_TOKENS"),
    ({"max_thinking_tokens": 1.5}, "HYDRA_MAX_THINKING_TOKENS"),
    ({"deep_thinking_threshold": 10.5}, "HYDRA_DEEP_THINKING_THRESHOLD"),
    ({"deep_thinking_threshold": -1}, "HYDRA_DEEP_THINKING_THRESHOLD"),
], ids=["mode", "model", "tokens-zero", "tokens-float", "threshold-high", "threshold-negative"])
def test_bad_settings_are_refused_with_the_variable_name(kwargs: dict, variable: str) -> None:
    with pytest.raises(ConfigError) as info:
        ReasoningSettings(**kwargs)
    assert info.value.variable == variable


# --- complexity ------------------------------------------------------------------

@pytest.mark.parametrize("prompt", TRIVIAL.values(), ids=TRIVIAL.keys())
def test_trivial_prompts_score_below_3(prompt: str) -> None:
    assert complexity(prompt)[0] < 3
    assert assess(prompt).score < 3  # with the task type's bonus too


@pytest.mark.parametrize("prompt", MEDIUM.values(), ids=MEDIUM.keys())
def test_medium_prompts_score_between_3_and_7(prompt: str) -> None:
    assert 3 <= complexity(prompt)[0] < 7
    assert 3 <= assess(prompt).score < 7


@pytest.mark.parametrize("prompt", HARD.values(), ids=HARD.keys())
def test_hard_prompts_score_at_least_7(prompt: str) -> None:
    assert complexity(prompt)[0] >= 7
    assert assess(prompt).score >= 7


def test_hardest_prompt_reaches_the_seed_deep_threshold() -> None:
    assert complexity(HARDEST)[0] >= 9.5


@pytest.mark.parametrize("prompt", [*TRIVIAL.values(), *MEDIUM.values(), *HARD.values(), "word " * 5000],
                         ids=[*TRIVIAL, *MEDIUM, *HARD, "long"])
@pytest.mark.parametrize("task_type", [None, "code", "reasoning", "math", "general"])
def test_score_is_bounded_rounded_and_explained(prompt: str, task_type: str | None) -> None:
    score, reasons = complexity(prompt, task_type)
    assert 0.0 <= score <= 10.0
    assert score == round(score, 1)
    assert all(isinstance(r, Reason) and r.points >= 0 and r.detail for r in reasons)
    assert [r.feature for r in reasons][:6] == ["length", "steps", "code", "mathematics", "hard words",
                                                "multi-part"]
    assert score == round(min(10.0, sum(r.points for r in reasons)), 1)


def test_task_type_adds_only_for_types_that_gain_from_thinking() -> None:
    base = complexity(PROOF)[0]
    assert complexity(PROOF, "general")[0] == base
    assert complexity(PROOF, "code")[0] > base
    assert complexity(PROOF, "math")[0] > complexity(PROOF, "code")[0]


CONSTRAINTS = [
    " It must run in O(n log n) time.",
    " Then write unit tests for every edge case.",
    " Explain each step.",
    " Do it without using any library, and handle empty input.",
    "\n1. Parse the input\n2. Validate it\n3. Return the result",
    " Why? What are the trade-offs?",
    " Give at least three examples, and the proof.",
    " Make it scalable and safe under concurrency.",
]


@pytest.mark.parametrize("prompt", [*TRIVIAL.values(), *MEDIUM.values(), PROOF, SYSTEM_DESIGN],
                         ids=[*TRIVIAL, *MEDIUM, "proof", "system-design"])
@pytest.mark.parametrize("task_type", [None, "code"])
def test_adding_constraints_never_lowers_the_score(prompt: str, task_type: str | None) -> None:
    previous = complexity(prompt, task_type)[0]
    for extra in CONSTRAINTS:  # one at a time, and piled up
        assert complexity(prompt + extra, task_type)[0] >= complexity(prompt, task_type)[0]
        prompt += extra
        score = complexity(prompt, task_type)[0]
        assert score >= previous, extra
        previous = score


def test_constraints_do_raise_a_medium_score() -> None:
    prompt = MEDIUM["merge-lists"]
    assert complexity(prompt + "".join(CONSTRAINTS))[0] > complexity(prompt)[0] + 2


def test_complexity_is_deterministic() -> None:
    prompts = [*TRIVIAL.values(), *MEDIUM.values(), *HARD.values()]
    assert [complexity(p) for p in prompts] == [complexity(p) for p in prompts]
    assert [assess(p) for p in prompts] == [assess(p) for p in prompts]


# --- levels and budgets ------------------------------------------------------------

@pytest.mark.parametrize(("prompt", "level"), [
    (TRIVIAL["capital"], "none"),
    (TRIVIAL["2+2"], "none"),
    (MEDIUM["debounce"], "standard"),
    (MEDIUM["merge-lists"], "standard"),
    (PROOF, "standard"),             # hard, but under the seed's conservative 9.5
    (SYSTEM_DESIGN, "standard"),
    (HARDEST, "deep"),
], ids=["capital", "2+2", "debounce", "merge-lists", "proof", "system-design", "hardest"])
def test_auto_mode_with_the_seed_settings(prompt: str, level: str) -> None:
    result = assess(prompt)
    assert result.level == level
    assert result.think is (level != "none")
    if level == "none":
        assert result.score < SIMPLE_BELOW and result.budget == 0
    elif level == "standard":
        assert SIMPLE_BELOW <= result.score < 9.5
        assert 0.25 * 6000 <= result.budget <= 0.90 * 6000
    else:
        assert result.budget == 6000


@pytest.mark.parametrize("prompt", [MEDIUM["debounce"], PROOF, SYSTEM_DESIGN, HARDEST],
                         ids=["debounce", "proof", "system-design", "hardest"])
def test_threshold_is_respected_exactly_at_its_edge(prompt: str) -> None:
    score = assess(prompt).score
    at_edge = assess(prompt, settings=ReasoningSettings(deep_thinking_threshold=score))
    assert at_edge.level == "deep" and at_edge.budget == 6000
    just_above = round(score + 0.1, 1)
    if just_above <= 10:
        above = assess(prompt, settings=ReasoningSettings(deep_thinking_threshold=just_above))
        assert above.level == "standard" and above.budget < 6000


def test_a_threshold_below_simple_means_deep_from_there() -> None:
    settings = ReasoningSettings(deep_thinking_threshold=1.0)
    assert assess("What is 2+2?", settings=settings).level == "deep"   # 1.5 >= 1.0
    assert assess("hi", settings=settings).level == "none"            # 0.0 < 1.0


@pytest.mark.parametrize("prompt", [TRIVIAL["capital"], MEDIUM["debounce"], HARDEST],
                         ids=["trivial", "medium", "hardest"])
@pytest.mark.parametrize(("mode", "level", "budget"), [
    ("off", "none", 0), ("standard", "standard", 3000), ("deep", "deep", 6000),
], ids=["off", "standard", "deep"])
def test_fixed_modes_ignore_the_score(prompt: str, mode: str, level: str, budget: int) -> None:
    result = assess(prompt, settings=ReasoningSettings(mode=mode))
    assert (result.level, result.think, result.budget) == (level, mode != "off", budget)
    assert f"reasoning mode {mode}" in result.explanation


def test_standard_budget_is_half_the_maximum() -> None:
    assert assess("hi", settings=ReasoningSettings(mode="standard", max_thinking_tokens=1001)).budget == 500
    assert assess("hi", settings=ReasoningSettings(mode="standard", max_thinking_tokens=1)).budget == 1


@pytest.mark.parametrize("maximum", [1, 7, 100, 6000, 32768])
@pytest.mark.parametrize("threshold", [5.0, 9.5, 10.0])
def test_budget_grows_linearly_with_the_score_and_stays_within_the_maximum(maximum: int, threshold: float) -> None:
    settings = ReasoningSettings(max_thinking_tokens=maximum, deep_thinking_threshold=threshold)
    scores = [round(SIMPLE_BELOW + i / 10, 1) for i in range(int((threshold - SIMPLE_BELOW) * 10))]
    budgets = [standard_budget(s, settings) for s in scores]
    assert budgets == sorted(budgets)
    assert all(1 <= b <= maximum for b in budgets)
    assert budgets[0] == max(1, round(maximum * BUDGET_LOW))
    assert budgets[-1] <= round(maximum * BUDGET_HIGH)
    if maximum >= 100:
        assert budgets[-1] > budgets[0]


def test_assessed_budgets_rise_with_the_assessed_scores() -> None:
    results = sorted((assess(p) for p in [*MEDIUM.values(), *HARD.values()]), key=lambda a: a.score)
    budgets = [a.budget for a in results if a.think]
    assert budgets == sorted(budgets) and len(set(budgets)) > 3


@pytest.mark.parametrize("mode", ["auto", "off", "standard", "deep"])
@pytest.mark.parametrize("maximum", [1, 50, 6000])
def test_no_budget_exceeds_max_thinking_tokens(mode: str, maximum: int) -> None:
    settings = ReasoningSettings(mode=mode, max_thinking_tokens=maximum)
    for prompt in [*TRIVIAL.values(), *MEDIUM.values(), *HARD.values()]:
        result = assess(prompt, settings=settings)
        assert 0 <= result.budget <= maximum
        assert (result.budget > 0) is result.think
        assert result.level in LEVELS


# --- models ------------------------------------------------------------------------

@pytest.mark.parametrize("model", NON_THINKING)
@pytest.mark.parametrize("mode", ["auto", "standard", "deep"])
def test_non_thinking_models_never_think(model: str, mode: str) -> None:
    result = assess(HARDEST, settings=ReasoningSettings(mode=mode), model=model)
    assert result.level != "none"                     # the task calls for thinking...
    assert (result.think, result.budget) == (False, 0)  # ...the model cannot
    assert f"{model} cannot think" in result.explanation


def test_capabilities_override_the_name() -> None:
    assert assess(HARDEST, model="qwen3:14b", model_can_think=False).think is False
    assert assess(HARDEST, model="mistral:latest", model_can_think=True).think is True


def test_the_reasoning_model_is_checked_when_no_model_is_given() -> None:
    # a math task goes to the reasoning model; a non-thinking one means no thinking
    settings = ReasoningSettings(reasoning_model="llama3.1:70b")
    result = assess(PROOF, "math", settings=settings)
    assert result.model_override == "llama3.1:70b" and result.think is False
    assert assess(PROOF, "math").think is True  # qwen3:14b thinks


@pytest.mark.parametrize(("task_type", "use", "expected"), [
    ("reasoning", True, "qwen3:14b"),
    ("math", True, "qwen3:14b"),
    ("code", True, None),
    ("general", True, None),
    ("reasoning", False, None),
    ("math", False, None),
], ids=["reasoning", "math", "code", "general", "reasoning-off", "math-off"])
def test_model_override(task_type: str, use: bool, expected: str | None) -> None:
    settings = ReasoningSettings(use_reasoning_model=use)
    assert assess(PROOF, task_type, settings).model_override == expected


def test_task_type_is_classified_when_not_given() -> None:
    for prompt in ["Solve 3x + 5 = 20", "Why does ice float? Explain step by step", MEDIUM["debounce"], "hi"]:
        result = assess(prompt)
        assert result.task_type == classify(prompt)
        assert result.score == complexity(prompt, result.task_type)[0]
    assert assess("Solve 3x + 5 = 20").model_override == "qwen3:14b"


@pytest.mark.parametrize(("model", "capabilities", "expected"), [
    ("qwen3:14b", None, True),
    ("qwen3:1.7b", None, True),
    ("Qwen3:8B", None, True),
    ("deepseek-r1:7b", None, True),
    ("gpt-oss:20b", None, True),
    ("magistral:24b", None, True),
    ("qwq:32b", None, True),
    ("hf.co/unsloth/Qwen3-8B-GGUF:Q4_K_M", None, True),
    *[(m, None, False) for m in NON_THINKING],
    ("qwen3-embedding:0.6b", None, False),
    ("llama3.1:70b", ["completion", "tools", "thinking"], True),   # /api/show wins
    ("qwen3:14b", ["completion", "tools"], False),
    ("qwen3:14b", [], True),                                        # empty: not reported, the name decides
    ("mistral:latest", [], False),
], ids=lambda v: str(v) if not isinstance(v, bool) else None)
def test_supports_thinking(model: str, capabilities: list[str] | None, expected: bool) -> None:
    assert supports_thinking(model, capabilities) is expected


# --- explanation ---------------------------------------------------------------------

def test_explanation_is_one_readable_sentence() -> None:
    result = assess(MEDIUM["debounce"])
    assert isinstance(result, Assessment)
    assert result.explanation.startswith(f"score {result.score:.1f} (code +3.0, ")
    assert result.explanation.endswith(f"standard thinking, budget {result.budget:,} tokens")
    assert "\n" not in result.explanation
    assert assess("hi").explanation.endswith("no thinking")
    deep = assess(HARDEST)
    assert "deep-thinking threshold 9.5" in deep.explanation and "budget 6,000 tokens" in deep.explanation


def test_slack_constant() -> None:
    assert THINKING_SLACK_TOKENS == 16
