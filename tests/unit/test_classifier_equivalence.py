"""The fast classifier (hydra/tiers.py) answers exactly what the one-regex-per-rule classifier it
replaced answers (tests/unit/classifier_reference.py): same task type, scores and reasons in the
same order, over a large generated corpus built to probe where the two could part: every rule's
keywords in every case (including the few non-ASCII letters IGNORECASE equates with ASCII ones),
glued to affixes that move word boundaries, punctuation, code lines, digits of other scripts, and
texts cut at SCAN_CHARS in the middle of a keyword."""
from __future__ import annotations

import functools
import random
import re
import sys
from collections import Counter

import pytest

from hydra import tiers
from hydra.tiers import SCAN_CHARS, classify_task
from tests.unit.classifier_reference import RULE_SPECS, reference_classify_task
from tests.unit.test_tiers import MORE_EXAMPLES, SEED_EXAMPLES

# Every code point but the surrogates, once, for the exhaustive checks of the folding.
ALL_CHARS = "".join(chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF)

PHRASES = [
    "```", "```python\nprint(1)\n```", "def foo(x):", "def  bar (", "return x", "return(x)", "import os",
    "  from a import b", "x => y", "a === b", "a !== b", "a != b", "a && b", "a || b", "x = 1;", "f()", "{", "}",
    "SELECT a FROM t", "select a from t", "SELECT a; FROM t", "INSERT INTO t", "CREATE TABLE t", "main.py",
    "app.test.js", "config.yaml", "x.YML", "my-file.rs", ".py", "O(n log n)", "O(n^2)", "o(1)", "O()", "3x", "12ab",
    "2 + 2", "2+(-3)", "4 - 1", "4-1", "5 plus 3", "6 divided by 2", "2 × 3", "7 ÷ 2", "2^8", "x = 5", "5 = x",
    "f(x) = -(3", "15%", "15 %", "$x^2$", "$a=b$", "$$", "\\frac{1}{2}", "\\int", "\\pi", "\\piano", "dy/dx",
    "df/dx", "d/dx", "∫", "∑", "√2", "π", "ϖ", "Π", "∞", "≤", "±", "∂", "log(", "ln (", "log (x)", "TypeError",
    "ValueException", "typeerror", "Error", "Traceback", "segfault", "stack trace", "stacktrace", "Stack Trace",
    "node.js", "Node.JS", "c++", "C#", "c+", ".python", "python3", "python.", "Rust", "rust", "RUST", "Lua",
    "should I", "should we", "should İ", "what if", "what would happen if", "pros and cons", "difference between",
    "step-by-step", "step by step", "step  by step", "trade-off", "trade off", "tradeoffs", "trade--off",
    "brain teaser", "brainteasers", "logic puzzle", "prove that", "Prove That", "vs.", "vs", "v.s.",
    "explain why", "explain   how", "explain\nwhy", "hash map", "hashmaps", "hash  map", "binary search tree",
    "binary trees", "binary search", "linked lists", "data structure", "unit-tests", "unit test", "unittests",
    "integration tests", "test cases", "how many", "how much", "area of", "mean of", "standard deviation",
    "square roots", "sum of", "product of", "odds of", "expected value", "coin flips", "limit of", "effects of",
    "source code", "the following code", "this function", "my python script", "our c++ module", "these tests",
    "write a function", "fix the bug in my code", "implement a class", "big-O complexity", "time complexity",
    "Big O complexity", "optimise the query", "convert this script", "port the library", "generate an API",
    "write. a function", "build a long long long long long long long long long long cli", "system of equations",
    "prime numbers", "re-factor", "analysis", "analyzis", "analysed", "reasoning", "eigenvalues", "trigonometric",
]
AFFIXES_BEFORE = ["", "", "", "", "sub", "un", "_", "x", "é", "2", ".", "#", "+", "(", "\\", "$"]
AFFIXES_AFTER = ["", "", "", "", "s", "es", "ed", "ing", "_", "2", "é", "++", "#", ".", "()", "(", "+", ":", "$"]
SEPARATORS = [" ", " ", " ", " ", "\n", "\t", ", ", ". ", "? ", "! ", "-", "  ", "\u00a0", "\u2003", "\x1c", ";",
              ";\n", " = ", "(", ")", ": ", "/", "\n    ", "\r\n", " - ", " + ", " * "]
NUMBERS = ["3", "42", "3.14", "٣", "x2", "2x", "10", "0"]
# Characters IGNORECASE matches to an ASCII letter (or π) although str.lower() does not give it.
LOOKALIKES = {"i": ["İ", "ı", "I"], "s": ["ſ", "S"], "k": ["\u212a", "K"], "π": ["ϖ", "Π"]}


def vocabulary() -> list[str]:
    """The phrases above, every alphabetic run of the reference's patterns (so a rule added there
    is probed without editing this list), and every word and literal of the fast rules."""
    words = set(PHRASES)
    for _type, label, pattern, _points, _flags in RULE_SPECS:
        words.update(re.findall(r"[A-Za-z]{2,}", pattern))
        words.update(re.findall(r"[A-Za-z]+", label))
    for rule in tiers._RULES:
        words.update(rule.words)
        words.update(item for branch in rule.branches for need in branch.needs for item in need.items)
    return sorted(words - {tiers._HAS_DIGIT})


def case_variant(word: str, rng: random.Random) -> str:
    choice = rng.randrange(6)
    if choice == 0:
        return word.upper()
    if choice == 1:
        return word.title()
    if choice == 2:
        return "".join(c.upper() if rng.random() < 0.5 else c for c in word)
    if choice == 3:
        return "".join(rng.choice(LOOKALIKES[c]) if c in LOOKALIKES and rng.random() < 0.5 else c for c in word)
    return word


def shape_variant(phrase: str, rng: random.Random) -> str:
    """The phrase with its plurals dropped, or its spaces changed: where optional parts of a pattern
    (``s?``, ``[- ]?``, ``\\s+``) and the literals of the fast rules could disagree."""
    choice = rng.randrange(5)
    if choice == 0:
        return re.sub(rng.choice([r"(?<=\w)s\b", r"(?<=\w)es\b"]), "", phrase)
    if choice == 1:
        return phrase.replace(" ", rng.choice(["-", "", "  ", "\n", "\t", "_"]))
    return phrase


def token(words: list[str], rng: random.Random) -> str:
    if rng.random() < 0.08:
        return rng.choice(NUMBERS)
    word = case_variant(shape_variant(rng.choice(words), rng), rng)
    return rng.choice(AFFIXES_BEFORE) + word + rng.choice(AFFIXES_AFTER)


def prompt(words: list[str], rng: random.Random) -> str:
    return "".join(token(words, rng) + rng.choice(SEPARATORS) for _ in range(rng.randint(1, 24))).rstrip(" ")


def corpus(size: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    words = vocabulary()
    prompts = [p for p, _ in SEED_EXAMPLES + MORE_EXAMPLES]
    prompts += ["", " ", "hi", "\n", "é", "İ", "ſ"]
    prompts += [prompt(words, rng) for _ in range(size)]
    return prompts


def long_texts(count: int, seed: int) -> list[str]:
    """Texts longer than SCAN_CHARS with a keyword across the cut, at every offset of it."""
    rng = random.Random(seed)
    words = [w for w in vocabulary() if len(w) >= 3]
    filler = "lorem ipsum dolor sit amet " * (SCAN_CHARS // 20)
    texts = []
    for _ in range(count):
        word = rng.choice(words)
        cut = rng.randint(0, len(word))
        texts.append(filler[:SCAN_CHARS - cut - 1] + " " + word + " and more text after it")
    # Signals both before the cut and only after it.
    texts.append("Why? " + filler + " Write a Python function")
    texts.append(filler + " Write a Python function to solve 3x + 5 = 20 step by step")
    return texts


def differences(prompts: list[str]) -> list[tuple[str, object, object]]:
    found = []
    for text in prompts:
        fast, reference = classify_task(text), reference_classify_task(text)
        if fast != reference:
            found.append((text[:200], fast, reference))
    return found


def test_the_fast_classifier_answers_what_the_reference_answers() -> None:
    prompts = corpus(12_000, seed=17)
    assert differences(prompts) == []
    # The corpus reaches every rule both ways, so a rule whose fast form never fires (or always
    # fires) cannot hide behind an unexercised corpus.
    fired = Counter(reason.rsplit(" +", 1)[0] for text in prompts for reason in reference_classify_task(text).reasons)
    for task_type, label, _pattern, _points, _flags in RULE_SPECS:
        assert 0.002 * len(prompts) < fired[f"{task_type}: {label}"] < 0.95 * len(prompts), (task_type, label)
    assert fired["math: prove that + numbers"] > 0


def test_long_texts_cut_at_scan_chars_answer_the_same() -> None:
    assert differences(long_texts(40, seed=5)) == []


@pytest.mark.timeout(30)
def test_the_huge_prompt_of_test_tiers_answers_the_same() -> None:
    assert differences(["SELECT " * 20_000 + "def f(x):\n    return x\n" * 5_000]) == []


def literal_chars() -> set[str]:
    """Every character the fast rules compare after folding: their words, word needs and the
    substrings of IGNORECASE branches."""
    rules = (*tiers._RULES, tiers._PROVE_THAT)
    chars = {c for rule in rules for word in rule.words for c in word}
    chars.update(c for word in tiers._NUMBER_WORDS for c in word)
    chars.update(c for rule in rules for branch in rule.branches for need in branch.needs
                 if not need.substrings or branch.flags & re.IGNORECASE
                 for item in need.items - {tiers._HAS_DIGIT} for c in item)
    return chars


@functools.cache
def all_chars_folded() -> str:
    return tiers._fold(ALL_CHARS)


def test_folding_keeps_length_and_word_characters_of_every_code_point() -> None:
    folded = all_chars_folded()
    assert len(folded) == len(ALL_CHARS)
    word_positions = [m.start() for m in re.finditer(r"\w", ALL_CHARS)]
    assert [m.start() for m in re.finditer(r"\w", folded)] == word_positions


@pytest.mark.parametrize("char", sorted(literal_chars()))
def test_folding_maps_to_a_literal_character_exactly_what_ignorecase_matches(char: str) -> None:
    folded_to_it = {m.start() for m in re.finditer(re.escape(char), all_chars_folded())}
    assert folded_to_it == {m.start() for m in re.finditer(re.escape(char), ALL_CHARS, re.IGNORECASE)}


def test_ascii_words_are_the_runs_of_word_characters() -> None:
    ascii_chars = "".join(map(chr, range(128)))
    text = " ".join(a + b + "x" + c for a in ascii_chars for b in ascii_chars[::7] for c in ascii_chars[::5])
    assert tiers._words(text.lower()) == frozenset(re.findall(r"\w+", text.lower()))
