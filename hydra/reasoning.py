"""The reasoning engine: how hard a prompt is, and how much the model may think.

The seed's five settings (HYDRA_REASONING_MODE, HYDRA_REASONING_MODEL,
HYDRA_USE_REASONING_MODEL, HYDRA_MAX_THINKING_TOKENS,
HYDRA_DEEP_THINKING_THRESHOLD) become a ``ReasoningSettings``; ``assess``
turns a prompt into an ``Assessment``: the complexity score (0-10) with the
reasons behind it, the thinking level, the token budget and, for reasoning and
math tasks, the reasoning model.

The score is a sum of capped, explainable contributions, not a model's guess:
the same prompt always gets the same score, and adding a constraint, a step or
a question to a prompt never lowers it (every contribution only grows with the
text). The budget is only advice here; the engine enforces it
(``Task.thinking_budget``).
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from hydra.sollol.config import range_text
from hydra.sollol.errors import ConfigError

# The engine must know both too (it never sends ``think`` to a model that cannot), so they live there.
from hydra.sollol.thinking import supports_thinking
from hydra.tiers import DEFAULT_REASONING_MODEL, REASONING_TASK_TYPES, SCAN_CHARS, classify

REASONING_MODES = ("auto", "off", "standard", "deep")   # HYDRA_REASONING_MODE
LEVELS = ("none", "standard", "deep")
MAX_THINKING_TOKENS_LIMIT = 200_000                     # the largest HYDRA_MAX_THINKING_TOKENS

# Auto mode: below this score a prompt is answered without thinking.
SIMPLE_BELOW = 4.0
# Auto mode, standard level: the budget grows linearly with the score from
# this share of max_thinking_tokens at SIMPLE_BELOW to BUDGET_HIGH just under
# the deep threshold; deep gets all of it.
BUDGET_LOW = 0.25
BUDGET_HIGH = 0.90
MAX_SCORE = 10.0


def parse_model_name(variable: str, text: str) -> str:
    """A model name as a setting gives it: trimmed, non-empty, no spaces."""
    value = str(text).strip()
    if not value or any(c.isspace() for c in value):
        raise ConfigError(variable, text, "a model name such as qwen3:14b (non-empty, no spaces)")
    return value


@dataclass(frozen=True)
class ReasoningSettings:
    """The seed's five settings. Modes: ``off`` never thinks; ``standard`` always
    thinks with half of max_thinking_tokens; ``deep`` always thinks with all of
    it; ``auto`` decides from the complexity score (see ``assess``)."""

    mode: str = "auto"
    reasoning_model: str = DEFAULT_REASONING_MODEL
    use_reasoning_model: bool = True
    max_thinking_tokens: int = 6000
    deep_thinking_threshold: float = 9.5

    def __post_init__(self) -> None:
        mode = str(self.mode).strip().lower()
        if mode not in REASONING_MODES:
            raise ConfigError("HYDRA_REASONING_MODE", self.mode, "one of " + ", ".join(REASONING_MODES))
        object.__setattr__(self, "mode", mode)
        object.__setattr__(self, "reasoning_model", parse_model_name("HYDRA_REASONING_MODEL", self.reasoning_model))
        tokens = self.max_thinking_tokens
        if isinstance(tokens, bool) or not isinstance(tokens, int) or not 1 <= tokens <= MAX_THINKING_TOKENS_LIMIT:
            raise ConfigError("HYDRA_MAX_THINKING_TOKENS", tokens, range_text("an integer", 1, MAX_THINKING_TOKENS_LIMIT))
        threshold = self.deep_thinking_threshold
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) \
                or not 0.0 <= threshold <= MAX_SCORE:
            raise ConfigError("HYDRA_DEEP_THINKING_THRESHOLD", threshold, range_text("a number", 0.0, MAX_SCORE))
        object.__setattr__(self, "deep_thinking_threshold", float(threshold))

    @classmethod
    def from_settings(cls, settings: Any) -> ReasoningSettings:
        """From any object carrying the five attributes (``hydra.config.Settings`` does);
        a missing attribute keeps its default."""
        default = cls()
        return cls(
            mode=str(getattr(settings, "reasoning_mode", default.mode)),
            reasoning_model=getattr(settings, "reasoning_model", default.reasoning_model),
            use_reasoning_model=bool(getattr(settings, "use_reasoning_model", default.use_reasoning_model)),
            max_thinking_tokens=getattr(settings, "max_thinking_tokens", default.max_thinking_tokens),
            deep_thinking_threshold=getattr(settings, "deep_thinking_threshold",
                                            default.deep_thinking_threshold),
        )


@dataclass(frozen=True)
class Reason:
    """One contribution to the score: ``points`` from ``feature``, ``detail`` says what was seen."""

    feature: str
    points: float
    detail: str


# --- Complexity -------------------------------------------------------------
#
# Caps keep one loud feature (a 2,000-word paste, ten "must"s) from deciding
# alone: reaching the top of the scale takes several kinds of difficulty.

_CAPS = {
    "length": 2.5,
    "steps": 3.0,
    "code": 3.0,
    "mathematics": 2.5,
    "hard words": 3.5,
    "multi-part": 2.0,
    "task type": 1.0,
}
# Words of a chat message or a one-line question cost nothing.
_FREE_WORDS = 8
_WORDS_PER_POINT = 40
_TASK_TYPE_POINTS = {"reasoning": 1.0, "math": 1.0, "code": 0.5, "general": 0.0}

_I = re.IGNORECASE

_PATTERNS: dict[str, tuple[str, int]] = {
    "list_item": (r"^\s*(?:\d+[.)]|[-*•])\s+\S", re.MULTILINE),
    "step_by_step": (r"\bstep[- ]by[- ]step\b", _I),
    "then": (r"\bthen\b", _I),
    "constraint": (
        (r"\b(?:must|should|at least|at most|no more than|without|constraints?|requirements?|ensure|"
         r"exactly|only|each|every|handle|guarantee)\b"), _I),
    "code_fence": (r"```", 0),
    "code_request": (
        (r"\b(?:write|implement|create|generate|build|fix|debug|refactor|port)\b[^.?!\n]{0,40}?"
         r"\b(?:functions?|methods?|class(?:es)?|scripts?|programs?|modules?|apis?|endpoints?|quer(?:y|ies)|"
         r"tests?|code|algorithms?|parsers?|servers?|clients?)\b"), _I),
    "code_words": (
        (r"(?<![\w.])(?:python|javascript|typescript|java|rust|golang|c\+\+|c#|sql|bash|function|class|def|"
         r"return|import|async|await|threads?|regex|api|unit tests?|tests?|algorithm|recursion|recursive|"
         r"data structures?|edge cases?|complexity|sort\(\)|o\([^)]{1,12}\))(?![\w+#])"), _I),
    "code_syntax": (r"\w\(\)|=>|[!=]==?|&&|\|\||;\s*$|[{}]\s*$", re.MULTILINE),
    "equation": (r"\d\s*[-+*/^=<>]\s*\(?-?\d|\b\d*[a-z]\s*[=^]\s*-?\d|\d[a-z]\s*[-+*/]\s*\d", _I),
    "math_symbols": (r"[∑∏∫√π∞≤≥≠±∂]|\\(?:frac|int|sum|sqrt|lim|infty)\b|\$[^$\n]+\$", 0),
    "proof": (r"\b(?:prove|proof|lemma|theorem|induction|contradiction|q\.e\.d)\b", _I),
    "math_objects": (
        (r"\b(?:infinitely|infinite|primes?|integers?|bounds?|asymptotic\w*|limits?|integrals?|derivatives?|"
         r"matri(?:x|ces)|probabilit(?:y|ies)|polynomials?|equations?|series|sequences?|n-th|nth)\b"), _I),
    "hard_words": (
        (r"\b(?:prove|optimi[sz]\w*|optimal|design\w*|architect\w*|derive|derivation|trade[- ]?offs?|"
         r"distributed|concurren\w*|parallel\w*|scalab\w*|formal\w*|fault[- ]toleran\w*|consisten\w*|"
         r"consensus|invariants?|race conditions?|deadlocks?|threat model\w*|lock[- ]free)\b"), _I),
    # Demanding, but less than the words above: half a point each.
    "moderate_words": (
        (r"\b(?:analy[sz](?:e|es|ing|is)|compare|comparison|contrast|evaluate|justify|explain (?:why|how)|"
         r"edge cases?|efficient\w*|robust\w*|plan)\b"), _I),
    "separators": (r"[,;:]|\band\b|\balso\b", _I),
}


@functools.cache
def _patterns() -> dict[str, re.Pattern[str]]:
    # Compiled on first use: importing the module stays cheap for pages that never assess.
    return {name: re.compile(pattern, flags) for name, (pattern, flags) in _PATTERNS.items()}


class _Scan:
    """The feature patterns over one text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._regexes = _patterns()

    def found(self, name: str) -> bool:
        return self._regexes[name].search(self.text) is not None

    def count(self, name: str) -> int:
        return sum(1 for _ in self._regexes[name].finditer(self.text))

    def distinct(self, name: str) -> list[str]:
        seen: dict[str, None] = {}
        for match in self._regexes[name].finditer(self.text):
            seen.setdefault(re.sub(r"[\s-]+", " ", match.group(0).lower()), None)
        return list(seen)


def _capped(feature: str, points: float) -> float:
    return min(_CAPS[feature], points)


def _list_detail(words: list[str], limit: int = 4) -> str:
    shown = ", ".join(words[:limit])
    return shown + (f" (+{len(words) - limit} more)" if len(words) > limit else "")


def _length(prompt: str) -> Reason:
    words = len(prompt.split())
    return Reason("length", _capped("length", max(0, words - _FREE_WORDS) / _WORDS_PER_POINT), f"{words} words")


def _steps(scan: _Scan) -> Reason:
    items = scan.count("list_item")
    step_by_step = scan.found("step_by_step")
    thens = scan.count("then")
    constraints = scan.count("constraint")
    points = 0.5 * items + 1.5 * step_by_step + 0.5 * thens + 0.5 * constraints
    parts = [f"{n} {label}" for n, label in ((items, "list items"), (thens, "x then"),
                                             (constraints, "constraint words")) if n]
    if step_by_step:
        parts.insert(0, "step by step")
    return Reason("steps", _capped("steps", points), ", ".join(parts) or "none asked for")


def _code(scan: _Scan) -> Reason:
    fence = scan.found("code_fence")
    request = scan.found("code_request")
    words = scan.distinct("code_words")
    syntax = scan.found("code_syntax")
    points = 1.5 * fence + 2.0 * request + 0.5 * len(words) + 0.5 * syntax
    parts = (["code block"] * fence + ["asks for code"] * request + ([_list_detail(words)] if words else [])
             + ["code syntax"] * syntax)
    return Reason("code", _capped("code", points), "; ".join(parts) or "no code")


def _mathematics(scan: _Scan) -> Reason:
    equation = scan.found("equation")
    symbols = scan.found("math_symbols")
    proof = scan.found("proof")
    objects = scan.distinct("math_objects")
    points = 0.5 * equation + 1.0 * symbols + 1.0 * proof + 0.5 * len(objects)
    parts = (["equation"] * equation + ["math symbols"] * symbols + ["proof language"] * proof
             + ([_list_detail(objects)] if objects else []))
    return Reason("mathematics", _capped("mathematics", points), "; ".join(parts) or "no mathematics")


def _hard_words(scan: _Scan) -> Reason:
    hard = scan.distinct("hard_words")
    moderate = scan.distinct("moderate_words")
    points = 1.0 * len(hard) + 0.5 * len(moderate)
    return Reason("hard words", _capped("hard words", points), _list_detail(hard + moderate) or "none")


def _multi_part(scan: _Scan) -> Reason:
    # Every question after the first is another thing to answer; commas and
    # "and"s in a request usually enumerate deliverables.
    questions = scan.text.count("?")
    separators = scan.count("separators")
    points = 0.75 * max(0, questions - 1) + 0.25 * separators
    detail = f"{questions} questions, {separators} list separators"
    return Reason("multi-part", _capped("multi-part", points), detail)


def complexity(prompt: str, task_type: str | None = None) -> tuple[float, tuple[Reason, ...]]:
    """Score ``prompt`` from 0 (trivial) to 10 (hardest), with the reasons.

    ``task_type`` (the router's classification, when known) adds a little for
    reasoning and math, which gain most from thinking; None adds nothing, so
    the score then depends on the prompt alone. Reasons are listed in feature
    order, zero contributions included, so a page can show the whole breakdown.
    """
    head = prompt[:SCAN_CHARS]  # length counts every word; the patterns read the head only
    scan = _Scan(head)
    reasons = [_length(prompt), _steps(scan), _code(scan), _mathematics(scan), _hard_words(scan), _multi_part(scan)]
    if task_type is not None:
        reasons.append(Reason("task type", _capped("task type", _TASK_TYPE_POINTS.get(task_type, 0.0)),
                              f"{task_type} task"))
    reasons = [Reason(r.feature, round(r.points, 2), r.detail) for r in reasons]
    score = round(min(MAX_SCORE, sum(r.points for r in reasons)), 1)
    return score, tuple(reasons)


# --- Thinking ----------------------------------------------------------------


@dataclass(frozen=True)
class Assessment:
    """What the reasoning engine decided for one prompt.

    ``level`` is what the prompt calls for; ``think`` says whether the model
    will actually think (False when the mode is off or the model cannot).
    """

    score: float
    reasons: tuple[Reason, ...]
    level: str
    think: bool
    budget: int
    model_override: str | None
    explanation: str
    task_type: str | None = None


def standard_budget(score: float, settings: ReasoningSettings) -> int:
    """Auto mode's standard budget: linear in the score, BUDGET_LOW of the maximum
    at SIMPLE_BELOW up to BUDGET_HIGH at the deep threshold, never above the maximum."""
    span = settings.deep_thinking_threshold - SIMPLE_BELOW
    position = (score - SIMPLE_BELOW) / span if span > 0 else 1.0
    share = BUDGET_LOW + (BUDGET_HIGH - BUDGET_LOW) * min(1.0, max(0.0, position))
    return max(1, min(settings.max_thinking_tokens, round(settings.max_thinking_tokens * share)))


def _level_and_budget(score: float, settings: ReasoningSettings) -> tuple[str, int, str]:
    maximum = settings.max_thinking_tokens
    if settings.mode == "off":
        return "none", 0, "reasoning mode off"
    if settings.mode == "standard":
        return "standard", max(1, maximum // 2), f"reasoning mode standard (half of {maximum:,})"
    if settings.mode == "deep":
        return "deep", maximum, "reasoning mode deep (the full budget)"
    # auto. Deep is checked first so that a threshold at or below SIMPLE_BELOW
    # still means "deep from the threshold up"; the edge itself counts as deep.
    threshold = settings.deep_thinking_threshold
    if score >= threshold:
        return "deep", maximum, f"at or above the deep-thinking threshold {threshold:g}"
    if score < SIMPLE_BELOW:
        return "none", 0, f"below {SIMPLE_BELOW:g}, simple enough to answer directly"
    return "standard", standard_budget(score, settings), f"between {SIMPLE_BELOW:g} and {threshold:g}"


def assess(
    prompt: str,
    task_type: str | None = None,
    settings: ReasoningSettings | None = None,
    *,
    model: str | None = None,
    model_can_think: bool | None = None,
) -> Assessment:
    """Score ``prompt`` and decide the thinking level, budget and reasoning model.

    Auto mode: a score under SIMPLE_BELOW (4.0) gets no thinking; from there up
    to the deep threshold, standard thinking with ``standard_budget`` (25% to 90%
    of max_thinking_tokens, linear in the score); at or above the threshold,
    deep thinking with all of max_thinking_tokens.

    ``task_type`` None is classified here (``hydra.tiers.classify``). ``model`` is
    the model that will answer, when known; without it the reasoning model
    (when it applies) is checked. ``model_can_think`` (from /api/show) overrides
    the name-based ``supports_thinking``. When no model is known at all, thinking
    is advised as if it could happen: the router must then check its choice.
    """
    settings = settings or ReasoningSettings()
    if task_type is None:
        task_type = classify(prompt)
    score, reasons = complexity(prompt, task_type)
    level, budget, why = _level_and_budget(score, settings)

    override = settings.reasoning_model if (settings.use_reasoning_model
                                            and task_type in REASONING_TASK_TYPES) else None
    answering = model or override
    can_think = model_can_think
    if can_think is None and answering:
        can_think = supports_thinking(answering)

    think = level != "none"
    if think and can_think is False:
        think, budget = False, 0
        who = answering or "the model"
        outcome = f"{level} thinking wanted, but {who} cannot think, so no thinking"
    elif think:
        outcome = f"{level} thinking, budget {budget:,} tokens"
    else:
        outcome = "no thinking"

    shown = sorted((r for r in reasons if r.points > 0), key=lambda r: -r.points)
    breakdown = ", ".join(f"{r.feature} +{r.points:.1f}" for r in shown) or "nothing notable"
    explanation = f"score {score:.1f} ({breakdown}): {why}; {outcome}"
    return Assessment(score, reasons, level, think, budget, override, explanation, task_type)
