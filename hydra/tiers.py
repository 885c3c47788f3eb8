"""Model tiers per task type, and the classifier that picks the task type.

The tiers are the seed's lists ("Model Tier Configuration"), in priority
order, each entry with the placement the seed's arrow gives it. The router
takes the first model of the list that an able, routable node has installed.

Import rule: this module imports nothing from Hydra but ``hydra.sollol``, because
``hydra.sollol.router`` imports it for its defaults (anything more would make a cycle).
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from hydra.sollol.model_names import model_key
from hydra.sollol.types import TASK_TYPES, Placement, TierEntry

P = Placement  # the tables below read better with the short name

SEED_TIERS: dict[str, tuple[TierEntry, ...]] = {
    "code": (
        TierEntry("qwen2.5-coder:7b", P.POWERFUL),
        TierEntry("deepseek-coder-v2:latest", P.POWERFUL),
        TierEntry("codellama:13b", P.POWERFUL),
        TierEntry("qwen2.5-coder:3b", P.ANY),
        TierEntry("deepseek-coder:6.7b", P.ANY),
        TierEntry("qwen2.5-coder:1.5b", P.LIGHT),
    ),
    "reasoning": (
        TierEntry("qwen3:14b", P.POWERFUL),
        TierEntry("qwen3:1.7b", P.LIGHT),
    ),
    "math": (
        TierEntry("qwen3:14b", P.POWERFUL),
        TierEntry("qwen3:1.7b", P.LIGHT),
    ),
    "general": (
        TierEntry("llama3.1:70b", P.MOST_CAPABLE_ONLY),
        TierEntry("mistral:latest", P.ANY),
        TierEntry("llama3.2:3b", P.ANY),
        TierEntry("qwen3:8b", P.ANY),
    ),
}

# The embedded node's model: tiny and always present, so it ends every list as
# the last resort when no seed model is installed anywhere.
EMBEDDED_MODEL = "smollm2:135m"
DEFAULT_REASONING_MODEL = "qwen3:14b"
# Task types whose list the reasoning model heads (seed: "Primary" and "Math").
REASONING_TASK_TYPES = ("reasoning", "math")


def build_tiers(
    *,
    reasoning_model: str = DEFAULT_REASONING_MODEL,
    use_reasoning_model: bool = True,
    fallback: str | None = EMBEDDED_MODEL,
) -> dict[str, tuple[TierEntry, ...]]:
    """The tier lists the router uses, from the seed's and the reasoning settings.

    With ``use_reasoning_model`` on, the reasoning and math lists start with
    ``reasoning_model`` (powerful node preferred) and any later copy of it is
    dropped. Off, the seed lists are kept as they are: the configured model is
    not forced to the front. ``fallback`` (None for none) ends every list
    unless the list already holds it.
    """
    reasoning_model = reasoning_model.strip()
    if use_reasoning_model and not reasoning_model:
        raise ValueError("reasoning_model must name a model when use_reasoning_model is on")
    tiers: dict[str, tuple[TierEntry, ...]] = {}
    for task_type in TASK_TYPES:
        entries = list(SEED_TIERS[task_type])
        if use_reasoning_model and task_type in REASONING_TASK_TYPES:
            head = TierEntry(reasoning_model, Placement.POWERFUL)
            entries = [head] + [e for e in entries if model_key(e.model) != model_key(reasoning_model)]
        if fallback and all(model_key(e.model) != model_key(fallback) for e in entries):
            entries.append(TierEntry(fallback.strip(), Placement.LIGHT, last_resort=True))
        tiers[task_type] = tuple(entries)
    return tiers


DEFAULT_TIERS: dict[str, tuple[TierEntry, ...]] = build_tiers()


# --- Task-type classifier -------------------------------------------------
#
# A rule (task type, label, points, what it matches) counts once however often it matches, so a
# long prompt does not outvote a short one by repetition. Words that are also everyday English
# ("function", "class", "library") weigh less than GENERAL_BASELINE, so alone they cannot pull a
# prompt away from general; they only tip a prompt that has other signals.

GENERAL_BASELINE = 1.5
# Only the head of a prompt is scanned: what a task is shows in its first
# lines, and a pasted 100 kB log must not cost the router a second.
SCAN_CHARS = 20_000
# Fixed tie order: the more specialised tier wins a tie (a code model can
# explain code; a general model is the worst choice for an equation).
TIE_ORDER = ("code", "math", "reasoning", "general")

_I = re.IGNORECASE

# Cheap, and the same answers as the one regex per rule it replaced (kept as
# tests/unit/classifier_reference.py; a differential test compares the two). A rule's old pattern
# was an alternation, which matches iff one of its branches does, so a rule is now the union of
#   - ``words``: the branches that were a whole word (``\b...\b``, ``?`` spelled out), answered by
#     membership in the prompt's set of case-folded words, built once per prompt;
#   - ``branches``: the others, each a regex searched in the prompt with the old flags, so its meaning
#     cannot drift, but only when each of its ``needs`` is met: words (of the folded prompt) or
#     substrings (of the folded prompt; of the prompt itself for a case-sensitive branch) of which
#     every match holds one, so skipping the search when none is there loses nothing.
# This is exact because folding keeps the prompt's length and word characters and maps a character to
# a word's or literal's character exactly when IGNORECASE matches them (_FOLD; checked over every
# code point by the test). A branch that another one of its rule covers is dropped, with a note.

# The only characters that IGNORECASE matches to one of the literals below but str.lower() does not
# turn into it (U+0130 would even become two characters and shift every position).
_FOLD = {0x130: "i", 0x131: "i", 0x17F: "s", 0x3D6: "π"}
# ASCII: \w is [0-9A-Za-z_] there, so words are what is left after blanking the rest.
_ASCII_BLANKS = str.maketrans({c: " " for c in map(chr, range(128)) if not (c.isalnum() or c == "_")})
_WORD = re.compile(r"\w+")
_DIGIT = re.compile(r"\d")
# Stands among the needs met for "a \d character" (a literal would have to list every script's digits).
_HAS_DIGIT = "\\d"


@dataclass(frozen=True)
class _Need:
    items: frozenset[str]
    substrings: bool  # False: whole words of the folded prompt


def _any_word(words: str) -> _Need:
    return _Need(frozenset(words.split()), substrings=False)


def _any_text(*literals: str) -> _Need:
    return _Need(frozenset(literals), substrings=True)


_A_DIGIT = _Need(frozenset({_HAS_DIGIT}), substrings=False)


@dataclass(frozen=True)
class _Branch:
    pattern: str
    needs: tuple[_Need, ...]
    flags: int


@dataclass(frozen=True)
class _Rule:
    task_type: str
    label: str
    points: float
    words: frozenset[str]
    branches: tuple[_Branch, ...]


def _rule(task_type: str, label: str, points: float, words: str = "", *branches: _Branch) -> _Rule:
    return _Rule(task_type, label, points, frozenset(words.split()), branches)


def _re(pattern: str, need: _Need, *more_needs: _Need, flags: int = _I) -> _Branch:
    return _Branch(pattern, (need, *more_needs), flags)


_CODE_VERBS = "write implement create generate build fix debug refactor optimise optimize port convert"
_CODE_NOUNS = (r"functions?|methods?|class(?:es)?|scripts?|programs?|modules?|apis?|endpoints?|"
               r"quer(?:y|ies)|regex(?:es)?|tests?|code|algorithms?|cli|librar(?:y|ies)|components?|"
               r"bash|sql|dockerfile|makefile")
_CODE_NOUN_WORDS = ("function functions method methods class classes script scripts program programs module "
                    "modules api apis endpoint endpoints query queries regex regexes test tests code algorithm "
                    "algorithms cli library libraries component components bash sql dockerfile makefile")
_LANGUAGES = ("python", "javascript", "typescript", "java", "kotlin", "c++", "c#", "golang", "php", "perl",
              "haskell", "elixir", "clojure", "bash", "powershell", "html", "css", "sql", "react", "django",
              "flask", "node.js", "numpy", "pandas")
# Neither \w nor "." before it, no \w after it: a whole word, or ("c++", "c#", "node.js") its first word.
_LANGUAGE_WORDS = " ".join({re.split(r"\W", name)[0] for name in _LANGUAGES})
_CAPITALISED_LANGUAGES = ("Rust", "Swift", "Ruby", "Scala", "Dart", "Julia", "Lua")
# Each is a whole word: a dot before it, \b after it.
_FILE_EXTENSIONS = ("py", "js", "ts", "tsx", "jsx", "java", "rs", "go", "rb", "cpp", "cc", "hpp", "cs", "php",
                    "sh", "sql", "yml", "yaml", "json", "toml", "html", "css", "ipynb", "kt")
_MATH_SYMBOLS = "∑∏√π∞≤≥≠±∂"

_RULES: tuple[_Rule, ...] = (
    # code
    _rule("code", "code block", 3.0, "", _re(r"```", _any_text("```"))),
    _rule("code", "asks for code", 2.0, "",
          _re(r"\b(?:write|implement|create|generate|build|fix|debug|refactor|optimi[sz]e|port|convert)\b"
              r"[^.?!\n]{0,40}?\b(?:" + _CODE_NOUNS + r")\b", _any_word(_CODE_VERBS), _any_word(_CODE_NOUN_WORDS))),
    # "source code" is covered by "code"
    _rule("code", "code", 2.0, "code coding codebase snippet"),
    _rule("code", "def", 2.5, "", _re(r"\bdef\s+\w+\s*\(", _any_word("def"))),
    _rule("code", "tests", 2.5, "unittest unittests pytest jest",
          _re(r"\b(?:unit[- ]tests?|integration tests?|test cases?)\b", _any_word("unit integration test"))),
    _rule("code", "refactor", 2.5, "", _re(r"\brefactor", _any_text("refactor"))),
    _rule("code", "bug", 2.0, "bug bugs buggy", _re(r"\bdebug", _any_text("debug"))),
    _rule("code", "error message", 2.0, "",
          _re(r"\b[A-Z]\w*(?:Error|Exception)\b", _any_text("Error", "Exception"), flags=0),
          _re(r"\b(?:Traceback|segfault|stack ?trace)\b", _any_word("traceback segfault stack stacktrace"), flags=0)),
    _rule("code", "language", 2.0, "",
          _re(r"(?<![\w.])(?:" + "|".join(map(re.escape, _LANGUAGES)) + r")(?![\w+#])", _any_word(_LANGUAGE_WORDS))),
    # Everyday words when lower case ("iron rust", "go home"): capitalised only, and weak.
    _rule("code", "language (capitalised)", 1.0, "",
          _re(r"\b(?:" + "|".join(_CAPITALISED_LANGUAGES) + r")\b",
              _any_word(" ".join(_CAPITALISED_LANGUAGES).lower()), flags=0)),
    _rule("code", "implement", 1.5, "", _re(r"\bimplement", _any_text("implement"))),
    _rule("code", "code complexity", 2.0, "",
          _re(r"\b(?:time|space|code|cyclomatic|algorithmic|big[- ]o)\s+complexity\b", _any_word("complexity")),
          _re(r"\bO\([^)]{1,12}\)", _any_text("o("))),
    _rule("code", "regex", 2.0, "",
          _re(r"\bregex", _any_text("regex")), _re(r"\bregular expressions?\b", _any_word("regular"))),
    _rule("code", "SQL statement", 2.0, "",
          _re(r"\bSELECT\b[^;]{1,200}?\bFROM\b|\bINSERT INTO\b|\bCREATE TABLE\b", _any_word("select insert create"),
              flags=0)),
    _rule("code", "file name", 2.0, "",
          _re(r"\b[\w-]+\.(?:" + "|".join(_FILE_EXTENSIONS) + r")\b", _any_word(" ".join(_FILE_EXTENSIONS)))),
    _rule("code", "code syntax", 1.5, "",
          _re(r"\breturn\s+\w", _any_word("return"), flags=0),
          _re(r"^\s*(?:import|from)\s+\w+", _any_word("import from"), flags=re.MULTILINE),
          _re(r"=>|[!=]==?|&&|\|\||;\s*$|\w\(\)|[{}]\s*$", _any_text("=>", "==", "!=", "&&", "||", ";", "()", "{", "}"),
              flags=re.MULTILINE)),
    # "this function", "my script": the prompt is about a piece of code, so
    # analysing or explaining it is still a code task.
    _rule("code", "refers to code", 1.5, "",
          _re(r"\b(?:this|these|my|our|the following)\s+(?:[\w+#.]+\s+)?(?:code|functions?|methods?|class(?:es)?|"
              r"scripts?|programs?|quer(?:y|ies)|snippets?|modules?|tests?)\b",
              _any_word("this these my our following"),
              _any_word("code function functions method methods class classes script scripts program programs "
                        "query queries snippet snippets module modules test tests"))),
    _rule("code", "function", 1.0, "function functions"),
    _rule("code", "class", 0.75, "class classes"),
    _rule("code", "programming term", 1.0,
          "algorithm algorithms hashmap hashmaps array arrays recursion recursive compiler api endpoint endpoints "
          "framework git docker kubernetes json variable variables loop loops runtime",
          _re(r"\b(?:data structures?|linked lists?|binary (?:search )?trees?|hash maps?)\b",
              _any_word("data linked binary hash"))),
    # math
    _rule("math", "arithmetic", 2.0, "",
          _re(r"\d\s*[+*/×÷^]\s*\(?-?\d", _A_DIGIT, _any_text("+", "*", "/", "×", "÷", "^")),
          _re(r"\d\s+-\s+\d", _A_DIGIT, _any_text("-")),
          _re(r"\d+\s+(?:plus|minus|times|divided by|multiplied by)\s+\d", _A_DIGIT,
              _any_word("plus minus times divided multiplied"))),
    _rule("math", "solve", 2.0, "solve solved solves"),
    _rule("math", "calculus", 3.0,
          "integral integrals antiderivative antiderivatives derivative derivatives differentiate",
          _re(r"\blimit of\b", _any_word("limit")), _re(r"\bd[yf]?/dx\b|∫", _any_text("/dx", "∫"))),
    # "system of equations" is covered by "equations"
    _rule("math", "equation", 2.5, "equation equations inequality inequalities polynomial polynomials quadratic"),
    _rule("math", "latex", 3.0, "",
          _re(r"\\(?:frac|int|sum|sqrt|cdot|times|leq|geq|pi|lim|infty)\b|\$[^$\n]*[\\^_=][^$\n]*\$",
              _any_text("\\", "$"))),
    _rule("math", "probability", 2.5, "probability probabilities dice combinatorics",
          _re(r"\b(?:odds of|expected value|coin flips?)\b", _any_word("odds expected coin"))),
    _rule("math", "sum of", 2.0, "", _re(r"\b(?:sum|product) of\b", _any_word("sum product"))),
    _rule("math", "algebra", 1.5, "", _re(r"\b\d+[a-z]\b", _A_DIGIT)),
    _rule("math", "equality", 1.5, "", _re(r"[\w)]\s*=\s*-?\(?\d|\d\s*=\s*[\w(]", _A_DIGIT, _any_text("="))),
    # "log(" and "logarithm", not "server logs"
    _rule("math", "math symbol", 2.0, "sqrt factorial factorials logarithm logarithms",
          _re(r"[" + _MATH_SYMBOLS + r"]", _any_text(*_MATH_SYMBOLS)),
          _re(r"\bsquare roots?\b|\b(?:log|ln)\s*\(", _any_word("square log ln"))),
    # "prime numbers" is covered by "prime"
    _rule("math", "math term", 1.5,
          "prime primes integer integers theorem lemma matrix matrices gcd lcm divisible fraction fractions "
          "geometry triangle triangles hypotenuse circle radius median variance exponent exponents sine cosine",
          _re(r"\beigen|\btrigonometr", _any_text("eigen", "trigonometr")),
          _re(r"\b(?:area of|volume of|mean of|standard deviation)\b", _any_word("area volume mean standard"))),
    _rule("math", "percent", 1.5, "percent percentage", _re(r"\d\s*%", _A_DIGIT, _any_text("%"))),
    _rule("math", "calculate", 1.0, "calculate compute simplify", _re(r"\bhow (?:many|much)\b", _any_word("how"))),
    # reasoning
    _rule("reasoning", "why", 2.0, "why"),
    _rule("reasoning", "explain why/how", 1.0, "", _re(r"\bexplain\s+(?:why|how)\b", _any_word("explain"))),
    _rule("reasoning", "explain", 1.0, "", _re(r"\bexplain", _any_text("explain"))),
    _rule("reasoning", "analyse", 2.0,
          "analyse analyses analysed analysing analysis analyze analyzes analyzed analyzing analyzis"),
    # "vs." is covered by "vs": the old \b after the dot could only hold before a word character
    _rule("reasoning", "compare", 2.0, "compare comparison contrast versus vs",
          _re(r"\b(?:pros and cons|difference between)\b", _any_word("pros difference"))),
    _rule("reasoning", "step by step", 2.0, "", _re(r"\bstep[- ]by[- ]step\b", _any_word("step"))),
    _rule("reasoning", "prove", 1.5, "prove proof disprove"),
    _rule("reasoning", "reason", 1.5, "rationale justify deduce infer logically",
          _re(r"\breason", _any_text("reason"))),
    _rule("reasoning", "plan", 1.5, "plan planning strategy strategise strategize"),
    _rule("reasoning", "trade-off", 2.0, "tradeoff tradeoffs", _re(r"\btrade[- ]offs?\b", _any_word("trade"))),
    # "logic puzzles" is covered by "puzzles"
    _rule("reasoning", "puzzle", 3.0, "puzzle puzzles riddle riddles brainteaser brainteasers paradox syllogism",
          _re(r"\bbrain teasers?\b", _any_word("brain"))),
    _rule("reasoning", "judgement", 1.5,
          "implication implications consequence consequences evaluate assess critique",
          _re(r"\b(?:what would happen if|what if|should (?:i|we))\b", _any_word("what should"))),
    _rule("reasoning", "cause", 1.0, "cause causes caused because",
          _re(r"\beffects? of\b", _any_word("effect effects"))),
)

_PROVE_THAT = _rule("math", "prove that + numbers", 2.0, "", _re(r"\bprove that\b", _any_word("prove")))
_NUMBER_WORDS = frozenset({"prime", "primes", "integer", "integers", "number", "numbers", "even", "odd", "rational",
                           "irrational", "divisible", "sqrt", "root", "roots", "infinitely"})


class _CompiledRule:
    """A rule ready to answer prompts. A rule none of whose ``triggers`` (words and needs) is met
    cannot fire: that is most rules for most prompts, so they cost one set test each."""

    __slots__ = ("branches", "points", "reason", "task_type", "triggers", "words")

    def __init__(self, rule: _Rule) -> None:
        self.task_type, self.points, self.words = rule.task_type, rule.points, rule.words
        self.reason = f"{rule.task_type}: {rule.label} +{rule.points:g}"
        self.branches = tuple((re.compile(b.pattern, b.flags), tuple(n.items for n in b.needs))
                              for b in rule.branches)
        self.triggers = rule.words.union(*(n.items for b in rule.branches for n in b.needs))

    def fires(self, text: str, words: frozenset[str], found: frozenset[str]) -> bool:
        """``words``: the folded prompt's; ``found``: those, the substrings found, _HAS_DIGIT if a digit."""
        if not words.isdisjoint(self.words):
            return True
        for regex, needs in self.branches:
            for items in needs:
                if found.isdisjoint(items):
                    break
            else:
                if regex.search(text):
                    return True
        return False


@functools.cache
def _compiled() -> tuple[tuple[_CompiledRule, ...], _CompiledRule, tuple[str, ...], tuple[str, ...]]:
    """The rules, the "prove that" rule, the substrings to look for in the folded prompt and in the
    prompt. Compiled on first use: the router and the pages import this module, most never classify."""
    branches = [b for rule in (*_RULES, _PROVE_THAT) for b in rule.branches]

    def substrings(folded: bool) -> tuple[str, ...]:
        return tuple(sorted({s for b in branches if bool(b.flags & _I) is folded
                             for need in b.needs if need.substrings for s in need.items}))

    return tuple(map(_CompiledRule, _RULES)), _CompiledRule(_PROVE_THAT), substrings(True), substrings(False)


def _fold(text: str) -> str:
    """``text`` case-folded the way IGNORECASE compares it to the rules' literals (see _FOLD)."""
    if not text.isascii() and any(chr(c) in text for c in _FOLD):
        text = text.translate(_FOLD)
    return text.lower()


def _words(folded: str) -> frozenset[str]:
    """The maximal runs of word characters (what ``\\b...\\b`` delimits) of a folded text."""
    if folded.isascii():
        return frozenset(folded.translate(_ASCII_BLANKS).split())
    return frozenset(_WORD.findall(folded))


@dataclass(frozen=True)
class Classification:
    """The task type, every type's score, and which rules fired (for the decision log)."""

    task_type: str
    scores: dict[str, float]
    reasons: tuple[str, ...]


def classify_task(prompt: str) -> Classification:
    """Deterministic keyword classifier: the highest-scoring type wins.

    ``general`` scores GENERAL_BASELINE, so another type needs at least that much
    evidence; ties go by TIE_ORDER (code, math, reasoning, general).
    """
    text = prompt[:SCAN_CHARS]
    folded = _fold(text)
    rules, prove_that, folded_substrings, substrings = _compiled()
    words = _words(folded)
    # A word and a substring (or a case-sensitive one) of the same spelling are one item of ``found``:
    # that can only let a search run that a sharper test would skip, never skip one.
    found = words.union(filter(folded.__contains__, folded_substrings), filter(text.__contains__, substrings))
    if _DIGIT.search(text):
        found |= {_HAS_DIGIT}
    scores = {t: 0.0 for t in TASK_TYPES}
    reasons: list[str] = []
    for rule in rules:
        if not found.isdisjoint(rule.triggers) and rule.fires(text, words, found):
            scores[rule.task_type] += rule.points
            reasons.append(rule.reason)
    # "prove that" plus numbers is a mathematical proof; without numbers it is
    # an argument (reasoning), which the plain "prove" rule already covers.
    if prove_that.fires(text, words, found) and (not words.isdisjoint(_NUMBER_WORDS) or _HAS_DIGIT in found):
        scores["math"] += 2.0
        reasons.append(prove_that.reason)
    scores["general"] = GENERAL_BASELINE
    scores = {t: round(s, 2) for t, s in scores.items()}
    best = max(TIE_ORDER, key=lambda t: (scores[t], -TIE_ORDER.index(t)))
    if best == "general":
        reasons.append(f"general: no other type reached {GENERAL_BASELINE:g}")
    return Classification(best, scores, tuple(reasons))


def classify(prompt: str) -> str:
    """Just the task type of ``prompt``."""
    return classify_task(prompt).task_type
