"""The classifier as it was before the fast rewrite (hydra/tiers.py at b054fd3), kept verbatim as
the reference: test_classifier_equivalence.py and bench/classifier.py compare the fast one to it.

A deliberate change of what the classifier answers changes this copy in the same commit, and says so.
"""
from __future__ import annotations

import functools
import re

from hydra.sollol.types import TASK_TYPES
from hydra.tiers import GENERAL_BASELINE, SCAN_CHARS, TIE_ORDER, Classification

_I = re.IGNORECASE
_RuleSpec = tuple[str, str, str, float, int]


def _rule(task_type: str, label: str, pattern: str, points: float, flags: int = _I) -> _RuleSpec:
    return (task_type, label, pattern, points, flags)


_CODE_NOUNS = (r"functions?|methods?|class(?:es)?|scripts?|programs?|modules?|apis?|endpoints?|"
               r"quer(?:y|ies)|regex(?:es)?|tests?|code|algorithms?|cli|librar(?:y|ies)|components?|"
               r"bash|sql|dockerfile|makefile")

RULE_SPECS: tuple[_RuleSpec, ...] = (
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
    return (tuple(re.compile(pattern, flags) for _type, _label, pattern, _points, flags in RULE_SPECS),
            re.compile(_PROVE_THAT, _I), re.compile(_NUMBERISH, _I))


def reference_classify_task(prompt: str) -> Classification:
    """Deterministic keyword classifier: the highest-scoring type wins.

    ``general`` scores GENERAL_BASELINE, so another type needs at least that much
    evidence; ties go by TIE_ORDER (code, math, reasoning, general).
    """
    text = prompt[:SCAN_CHARS]
    scores = {t: 0.0 for t in TASK_TYPES}
    reasons: list[str] = []
    regexes, prove_that, numberish = _rules()
    for (task_type, label, _pattern, points, _flags), regex in zip(RULE_SPECS, regexes):
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
