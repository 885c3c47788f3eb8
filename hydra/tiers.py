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
# Each rule is (task type, label, pattern, points); a rule counts once however
# often it matches, so a long prompt does not outvote a short one by repetition.
# Words that are also everyday English ("function", "class", "library") weigh
# less than GENERAL_BASELINE, so alone they cannot pull a prompt away from
# general; they only tip a prompt that has other signals.

GENERAL_BASELINE = 1.5
# Only the head of a prompt is scanned: what a task is shows in its first
# lines, and a pasted 100 kB log must not cost the router a second.
SCAN_CHARS = 20_000
# Fixed tie order: the more specialised tier wins a tie (a code model can
# explain code; a general model is the worst choice for an equation).
TIE_ORDER = ("code", "math", "reasoning", "general")

_I = re.IGNORECASE
_RuleSpec = tuple[str, str, str, float, int]


def _rule(task_type: str, label: str, pattern: str, points: float, flags: int = _I) -> _RuleSpec:
    return (task_type, label, pattern, points, flags)


_CODE_NOUNS = (r"functions?|methods?|class(?:es)?|scripts?|programs?|modules?|apis?|endpoints?|"
               r"quer(?:y|ies)|regex(?:es)?|tests?|code|algorithms?|cli|librar(?:y|ies)|components?|"
               r"bash|sql|dockerfile|makefile")

_RULE_SPECS: tuple[_RuleSpec, ...] = (
    # code
    _rule("code", "code block", r"```", 3.0),
    _rule("code", "asks for code",
          r"\b(?:write|implement|create|generate|build|fix|debug|refactor|optimi[sz]e|port|convert)\b"
          r"[^.?!\n]{0,40}?\b(?:" + _CODE_NOUNS + r")\b", 2.0),
    _rule("code", "code", r"\b(?:code|coding|codebase|snippet|source code)\b", 2.0),
    _rule("code", "def", r"\bdef\s+\w+\s*\(", 2.5),
    _rule("code", "tests", r"\b(?:unit[- ]?tests?|integration tests?|test cases?|pytest|unittest|jest)\b", 2.5),
    _rule("code", "refactor", r"\brefactor\w*", 2.5),
    _rule("code", "bug", r"\b(?:bugs?|buggy|debug\w*)\b", 2.0),
    _rule("code", "error message", r"\b(?:[A-Z]\w*(?:Error|Exception)|Traceback|segfault|stack ?trace)\b", 2.0, 0),
    _rule("code", "language",
          r"(?<![\w.])(?:python|javascript|typescript|java|kotlin|c\+\+|c#|golang|php|perl|haskell|elixir|"
          r"clojure|bash|powershell|html|css|sql|react|django|flask|node\.js|numpy|pandas)(?![\w+#])", 2.0),
    # Everyday words when lower case ("iron rust", "go home"): capitalised only, and weak.
    _rule("code", "language (capitalised)", r"\b(?:Rust|Swift|Ruby|Scala|Dart|Julia|Lua)\b", 1.0, 0),
    _rule("code", "implement", r"\bimplement\w*", 1.5),
    _rule("code", "code complexity",
          r"\b(?:time|space|code|cyclomatic|algorithmic|big[- ]o)\s+complexity\b|\bO\([^)]{1,12}\)", 2.0),
    _rule("code", "regex", r"\b(?:regex\w*|regexp|regular expressions?)\b", 2.0),
    _rule("code", "SQL statement", r"\bSELECT\b[^;]{1,200}?\bFROM\b|\bINSERT INTO\b|\bCREATE TABLE\b", 2.0, 0),
    _rule("code", "file name",
          r"\b[\w-]+\.(?:py|js|ts|tsx|jsx|java|rs|go|rb|cpp|cc|hpp|cs|php|sh|sql|ya?ml|json|toml|html|css|"
          r"ipynb|kt)\b", 2.0),
    _rule("code", "code syntax",
          r"\breturn\s+\w|^\s*(?:import|from)\s+\w+|=>|[!=]==?|&&|\|\||;\s*$|\w\(\)|[{}]\s*$",
          1.5, re.MULTILINE),
    # "this function", "my script": the prompt is about a piece of code, so
    # analysing or explaining it is still a code task.
    _rule("code", "refers to code",
          r"\b(?:this|these|my|our|the following)\s+(?:[\w+#.]+\s+)?(?:code|functions?|methods?|class(?:es)?|"
          r"scripts?|programs?|quer(?:y|ies)|snippets?|modules?|tests?)\b", 1.5),
    _rule("code", "function", r"\bfunctions?\b", 1.0),
    _rule("code", "class", r"\bclass(?:es)?\b", 0.75),
    _rule("code", "programming term",
          r"\b(?:algorithms?|data structures?|linked lists?|binary (?:search )?trees?|hash ?maps?|arrays?|"
          r"recursion|recursive|compiler|api|endpoints?|framework|git|docker|kubernetes|json|variables?|"
          r"loops?|runtime)\b", 1.0),
    # math
    _rule("math", "arithmetic",
          r"\d\s*[+*/×÷^]\s*\(?-?\d|\d\s+-\s+\d|\d+\s+(?:plus|minus|times|divided by|multiplied by)\s+\d", 2.0),
    _rule("math", "solve", r"\bsolve[ds]?\b", 2.0),
    _rule("math", "calculus",
          r"\b(?:integrals?|antiderivatives?|derivatives?|differentiate|limit of)\b|\bd[yf]?/dx\b|∫", 3.0),
    _rule("math", "equation",
          r"\b(?:equations?|inequalit(?:y|ies)|polynomials?|quadratic|system of equations)\b", 2.5),
    _rule("math", "latex",
          r"\\(?:frac|int|sum|sqrt|cdot|times|leq|geq|pi|lim|infty)\b|\$[^$\n]*[\\^_=][^$\n]*\$", 3.0),
    _rule("math", "probability",
          r"\b(?:probabilit(?:y|ies)|odds of|expected value|dice|coin flips?|combinatorics)\b", 2.5),
    _rule("math", "sum of", r"\b(?:sum|product) of\b", 2.0),
    _rule("math", "algebra", r"\b\d+[a-z]\b", 1.5),
    _rule("math", "equality", r"[\w)]\s*=\s*-?\(?\d|\d\s*=\s*[\w(]", 1.5),
    # "log(" and "logarithm", not "server logs"
    _rule("math", "math symbol",
          r"[∑∏√π∞≤≥≠±∂]|\bsqrt\b|\bsquare roots?\b|\bfactorials?\b|\blogarithms?\b|\b(?:log|ln)\s*\(", 2.0),
    _rule("math", "math term",
          r"\b(?:primes?|prime numbers?|integers?|theorem|lemma|matri(?:x|ces)|eigen\w*|gcd|lcm|divisible|"
          r"fractions?|geometry|triangles?|hypotenuse|circle|radius|area of|volume of|mean of|median|"
          r"variance|standard deviation|exponents?|trigonometr\w*|sine|cosine)\b", 1.5),
    _rule("math", "percent", r"\d\s*%|\bpercent(?:age)?\b", 1.5),
    _rule("math", "calculate", r"\b(?:calculate|compute|simplify|how many|how much)\b", 1.0),
    # reasoning
    _rule("reasoning", "why", r"\bwhy\b", 2.0),
    _rule("reasoning", "explain why/how", r"\bexplain\s+(?:why|how)\b", 1.0),
    _rule("reasoning", "explain", r"\bexplain\w*", 1.0),
    _rule("reasoning", "analyse", r"\banaly[sz](?:e|es|ed|ing|is)\b", 2.0),
    _rule("reasoning", "compare",
          r"\b(?:compare|comparison|contrast|versus|vs\.?|pros and cons|difference between)\b", 2.0),
    _rule("reasoning", "step by step", r"\bstep[- ]by[- ]step\b", 2.0),
    _rule("reasoning", "prove", r"\b(?:prove|proof|disprove)\b", 1.5),
    _rule("reasoning", "reason", r"\b(?:reason\w*|rationale|justify|deduce|infer|logically)\b", 1.5),
    _rule("reasoning", "plan", r"\b(?:plan|planning|strategy|strategi[sz]e)\b", 1.5),
    _rule("reasoning", "trade-off", r"\btrade[- ]?offs?\b", 2.0),
    _rule("reasoning", "puzzle",
          r"\b(?:logic puzzles?|puzzles?|riddles?|brain ?teasers?|paradox|syllogism)\b", 3.0),
    _rule("reasoning", "judgement",
          r"\b(?:what would happen if|what if|implications?|consequences?|evaluate|assess|critique|"
          r"should (?:i|we))\b", 1.5),
    _rule("reasoning", "cause", r"\b(?:causes?|caused|because|effects? of)\b", 1.0),
)

_PROVE_THAT = r"\bprove that\b"
_NUMBERISH = (r"\d|\b(?:primes?|integers?|numbers?|even|odd|rational|irrational|divisible|sqrt|"
              r"roots?|infinitely)\b")


@functools.cache
def _rules() -> tuple[tuple[re.Pattern[str], ...], re.Pattern[str], re.Pattern[str]]:
    """The rules' regexes, then the two proof patterns. Compiled on first use, not at import: the
    router and the pages import this module at start-up, most of them never classify."""
    return (tuple(re.compile(pattern, flags) for _type, _label, pattern, _points, flags in _RULE_SPECS),
            re.compile(_PROVE_THAT, _I), re.compile(_NUMBERISH, _I))


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
    scores = {t: 0.0 for t in TASK_TYPES}
    reasons: list[str] = []
    regexes, prove_that, numberish = _rules()
    for (task_type, label, _pattern, points, _flags), regex in zip(_RULE_SPECS, regexes):
        if regex.search(text):
            scores[task_type] += points
            reasons.append(f"{task_type}: {label} +{points:g}")
    # "prove that" plus numbers is a mathematical proof; without numbers it is
    # an argument (reasoning), which the plain "prove" rule already covers.
    if prove_that.search(text) and numberish.search(text):
        scores["math"] += 2.0
        reasons.append("math: prove that + numbers +2")
    scores["general"] = GENERAL_BASELINE
    scores = {t: round(s, 2) for t, s in scores.items()}
    best = max(TIE_ORDER, key=lambda t: (scores[t], -TIE_ORDER.index(t)))
    if best == "general":
        reasons.append(f"general: no other type reached {GENERAL_BASELINE:g}")
    return Classification(best, scores, tuple(reasons))


def classify(prompt: str) -> str:
    """Just the task type of ``prompt``."""
    return classify_task(prompt).task_type
