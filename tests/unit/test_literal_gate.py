"""Literal gates skip a regex only when it cannot match: the classifier gives the same answers."""
from __future__ import annotations

import random
import re

import pytest

from hydra import tiers
from hydra.literal_gate import GatedPatterns, required_literals


@pytest.mark.parametrize("pattern, flags, expected", [
    (r"\bfunctions?\b", re.IGNORECASE, {"function"}),
    (r"\b(?:code|coding|source code)\b", re.IGNORECASE, {"code", "coding"}),  # "source code" has "code" in it
    (r"\bSELECT\b[^;]{1,200}?\bFROM\b|\bINSERT INTO\b", 0, {"SELECT", "INSERT INTO"}),  # the longer of two
    (r"\d\s*%|\bpercent\b", re.IGNORECASE, {"%", "percent"}),  # "%" beats the ten digits
    (r"(?:ab)+c", 0, {"ab"}),                 # both are required; the longer is the better gate
    (r"x*y", 0, {"y"}),                       # x* may be empty
    (r"[∑π]|\bsqrt\b", re.IGNORECASE, {"∑", "π", "sqrt"}),
    (r"\b(?:log|ln)s?\s*\(", re.IGNORECASE, {"log", "ln"}),  # fixed runs are spelled out, then the shortest kept
    (r"\bstep[- ]by[- ]step\b", re.IGNORECASE, {"step by step", "step-by step", "step by-step", "step-by-step"}),
])
def test_required_literals_of_known_patterns(pattern, flags, expected):
    assert required_literals(pattern, flags) == expected


@pytest.mark.parametrize("pattern, flags", [
    (r"\w+", 0),                              # only a category: nothing literal is promised
    (r"a|\w", 0),                             # one alternative promises nothing
    (r"(?i:abc)", 0),                         # inline flags change how literals match
    (r"[^a]", 0),
    (r"\u212a", re.IGNORECASE),                        # the Kelvin sign matches an ASCII "k" case-insensitively
])
def test_required_literals_refuses_what_it_cannot_promise(pattern, flags):
    assert required_literals(pattern, flags) is None


def _texts(count: int, seed: int) -> list[str]:
    """Prompts built from the classifier's own literals, numbers, code and maths punctuation, in
    random case: the gates' edge cases (a literal inside a word, split across case) come up often."""
    rng = random.Random(seed)
    words = sorted({lit for spec in tiers._RULE_SPECS for lit in (required_literals(spec[2], spec[4]) or ())})
    words += ["the", "a", "of", "3", "42", "x", "2x", "(", ")", "()", "=", "==", ";", "{", "}", "+", "-", "*",
              "/", "%", "$", "\\frac", "`", "```", "\n", "O(n)", "ValueError", "Traceback", "prove that", "é", "π",
              "\u212a", "ſolve", "İf"]
    out = []
    for _ in range(count):
        tokens = [rng.choice(words) for _ in range(rng.randint(1, 14))]
        text = rng.choice([" ", "", "\n"]).join(tokens)
        out.append(text.upper() if rng.random() < 0.15 else text.title() if rng.random() < 0.15 else text)
    return out


def test_gated_matching_equals_running_every_regex():
    rules = tiers._rules()
    corpus = _texts(4000, seed=11) + [
        "What is the capital of France?", "Write a Python function that reverses a linked list",
        "Prove that there are infinitely many primes.", "Solve 3x + 5 = 20", "def f(x):\n    return x",
        "SELECT name FROM users", "Explain why the sky is blue, step by step.", "Café ∑ 2 + 2", "",
    ]
    for text in corpus:
        assert rules.matching(text) == rules.matching_ungated(text), text


def test_the_gates_skip_most_regexes_on_an_everyday_prompt():
    rules = tiers._rules()
    skipped = [i for i in range(len(rules)) if rules.gated(i)]
    assert len(skipped) == len(rules)  # every rule of the classifier has a gate


def test_gated_patterns_on_their_own():
    gated = GatedPatterns([(r"\bcat\b", re.IGNORECASE), (r"DOG", 0), (r"\d+", 0), (r"\w+", 0)])
    assert gated.matching("A Cat and a dog") == [0, 3]
    assert gated.matching("DOG 7") == [1, 2, 3]
    assert gated.matching("über CAT") == gated.matching_ungated("über CAT") == [0, 3]


def test_reasoning_features_with_gates_equal_every_regex_run():
    """The reasoning engine's scan skips patterns whose literals are absent: counts, finds and
    distinct words must be what running each regex gives."""
    from hydra import reasoning
    words = sorted({lit for pattern, flags in reasoning._PATTERNS.values()
                    for lit in (required_literals(pattern, flags) or ())})
    rng = random.Random(3)
    texts = _texts(1500, seed=8) + [" ".join(rng.choice(words) for _ in range(rng.randint(1, 12))) for _ in range(1500)]
    for text in texts:
        scan = reasoning._Scan(text)
        for name, (pattern, flags) in reasoning._PATTERNS.items():
            regex = re.compile(pattern, flags)
            assert scan.count(name) == len(list(regex.finditer(text))), (name, text)
            assert scan.found(name) == bool(regex.search(text)), (name, text)
