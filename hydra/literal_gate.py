"""Cheap gates in front of regular expressions: literals that any match must contain.

The task classifier runs ~50 keyword regexes over every prompt, and Python's
``re`` tries each of them at every position: ~0.1–0.3 ms per prompt, on the
path from submit to first token. Most rules can only match where one of a few
words occurs (``\\bfunctions?\\b`` needs "function"), and ``"function" in text``
costs nanoseconds. ``required_literals`` reads a pattern's parse tree and
returns such a set of literals, or None when it cannot promise one; a gate that
finds none of them proves the regex cannot match, so skipping it changes no
result.

Exactness: gates are consulted for ASCII text only; a non-ASCII text runs
every regex. That keeps them exact where Unicode would not be: ``\\d`` also
matches other scripts' digits, and ``re.IGNORECASE`` pairs a few non-ASCII
letters with ASCII ones (the Kelvin sign with "k"). For a case-insensitive
pattern the literals are lower-cased and checked against the lower-cased text.
"""
from __future__ import annotations

import functools
import re
import string

try:  # the parser is private to ``re``; without it every gate is open (always run the regex)
    from re import _constants as _c
    from re import _parser as _sre_parse
except ImportError:  # pragma: no cover - other Python versions
    _sre_parse = None

Literals = frozenset[str]


def required_literals(pattern: str, flags: int = 0) -> Literals | None:
    """A set of strings of which every match of ``pattern`` contains at least one; None when unknown."""
    if _sre_parse is None:
        return None
    try:
        tree = _sre_parse.parse(pattern, flags)
    except Exception:
        return None
    found = _sequence(list(tree))
    if found is None or not all(found):
        return None
    if flags & re.IGNORECASE:
        if any(not ch.isascii() and _has_ascii_twin(ch) for lit in found for ch in lit):
            return None  # e.g. the Kelvin sign, which re.IGNORECASE matches to an ASCII "k"
        found = frozenset(lit.lower() for lit in found)
    return frozenset(found)


@functools.cache
def _has_ascii_twin(char: str) -> bool:
    """Whether ``re.IGNORECASE`` lets this non-ASCII character match an ASCII one."""
    pattern = re.compile(re.escape(char), re.IGNORECASE)
    return any(pattern.fullmatch(letter) for letter in string.ascii_letters)


def _selectivity(option: Literals) -> int:
    # A set is as selective as its shortest member ("a" is in almost any text).
    return min(len(s) for s in option)


def _sequence(items: list) -> Literals | None:
    """Items matched one after another: every match contains each part, so keep the most selective."""
    best: Literals | None = None
    run: list[str] = []

    def consider(option: Literals | None) -> None:
        nonlocal best
        if option and all(option) and (best is None or _selectivity(option) > _selectivity(best)):
            best = option

    for op, av in items:
        if op is _c.LITERAL:
            run.append(chr(av))
            continue
        if run:
            consider(frozenset({"".join(run)}))
            run = []
        consider(_node(op, av))
    if run:
        consider(frozenset({"".join(run)}))
    return best


def _node(op, av) -> Literals | None:  # noqa: ANN001 - sre parse-tree items
    if op is _c.SUBPATTERN:
        _group, add_flags, del_flags, body = av
        if add_flags or del_flags:
            return None  # inline flags change how literals match inside: promise nothing
        return _sequence(list(body))
    if op is _c.BRANCH:
        alternatives = [_sequence(list(alt)) for alt in av[1]]
        if any(alt is None for alt in alternatives):
            return None  # one alternative needs no literal, so the branch promises none
        return frozenset().union(*alternatives)
    if op in (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT):
        low, _high, body = av
        return _sequence(list(body)) if low >= 1 else None
    if op is _c.ATOMIC_GROUP:
        return _sequence(list(av))
    if op is _c.IN:
        return _char_class(av)
    return None  # classes, anchors, assertions, back-references: no literal promised


_ASCII_DIGITS = frozenset("0123456789")


def _char_class(items: list) -> Literals | None:
    """``[abc]`` or ``\\d``: one of these characters. ``\\d`` stands for the ASCII digits, which holds
    for ASCII text only, and gates are only consulted for ASCII text."""
    chars: set[str] = set()
    for op, av in items:
        if op is _c.LITERAL:
            chars.add(chr(av))
        elif op is _c.CATEGORY and av is _c.CATEGORY_DIGIT:
            chars |= _ASCII_DIGITS
        elif op is _c.RANGE and av[1] - av[0] < 64:
            chars.update(chr(code) for code in range(av[0], av[1] + 1))
        else:
            return None  # negated, a wide range, or a category such as \\w: no useful promise
    return frozenset(chars) or None


class GatedPatterns:
    """Many regexes searched in one text, each behind its literal gate.

    All the literals of all the patterns are checked once each (a plain ``in`` per literal, ~0.05 µs),
    and only the patterns whose gate opened (plus those with no gate) run their regex."""

    def __init__(self, specs: list[tuple[str, int]]) -> None:
        self._regexes = [re.compile(pattern, flags) for pattern, flags in specs]
        self._ungated: set[int] = set()
        folded: dict[str, list[int]] = {}
        exact: dict[str, list[int]] = {}
        for index, (pattern, flags) in enumerate(specs):
            literals = required_literals(pattern, flags)
            if literals is None:
                self._ungated.add(index)
                continue
            table = folded if flags & re.IGNORECASE else exact  # folded: checked in the lower-cased text
            for literal in literals:
                table.setdefault(literal, []).append(index)
        self._folded_literals = tuple((lit, tuple(rules)) for lit, rules in folded.items())
        self._exact_literals = tuple((lit, tuple(rules)) for lit, rules in exact.items())

    def __len__(self) -> int:
        return len(self._regexes)

    def gated(self, index: int) -> bool:
        return index not in self._ungated

    def matching(self, text: str) -> list[int]:
        """Indices (in order) of the patterns whose ``search(text)`` finds a match."""
        regexes = self._regexes
        if not text.isascii():  # gates are exact for ASCII text only: run every regex
            return self.matching_ungated(text)
        candidates = set(self._ungated)
        lowered = text.lower()
        for literal, rules in self._folded_literals:
            if literal in lowered:
                candidates.update(rules)
        for literal, rules in self._exact_literals:
            if literal in text:
                candidates.update(rules)
        return [index for index in sorted(candidates) if regexes[index].search(text)]

    def matching_ungated(self, text: str) -> list[int]:
        """The same answer the slow way, every regex run: for non-ASCII text, and the reference."""
        return [index for index, regex in enumerate(self._regexes) if regex.search(text)]
