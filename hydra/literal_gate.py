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
    # "functions" contains "function": a text with the longer has the shorter, so the shorter will do
    found = frozenset(lit for lit in found if not any(other != lit and other in lit for other in found))
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


MAX_EXACT_STRINGS = 64  # past this many spellings, a run of fixed items is not expanded


def _selectivity(option: Literals) -> tuple[int, int]:
    # A set is as selective as its shortest member ("a" is in almost any text); then the fewer the better.
    return min(len(s) for s in option), -len(option)


def _sequence(items: list) -> Literals | None:
    """Items matched one after another; any match contains each part, so keep the most selective.

    Runs of fixed items (literals, small classes, anchors, optional letters, alternatives of such)
    are spelled out: ``\\b(?:log|ln)s?\\(`` promises one of log(, logs(, ln(, lns(."""
    best: Literals | None = None
    run: frozenset[str] | None = frozenset({""})

    def consider(option: Literals | None) -> None:
        nonlocal best
        if option and all(option) and (best is None or _selectivity(option) > _selectivity(best)):
            best = option

    for op, av in items:
        spellings = _exact(op, av)
        if spellings is not None and run is not None:
            joined = frozenset(a + b for a in run for b in spellings)
            if len(joined) <= MAX_EXACT_STRINGS:
                run = joined
                continue
        consider(run)
        run = spellings if spellings is not None else frozenset({""})
        if spellings is None:
            consider(_node(op, av))
    consider(run)
    return best


def _exact(op, av) -> frozenset[str] | None:
    """Every string this item can match, when they are few and fixed; None otherwise."""
    if op is _c.LITERAL:
        return frozenset({chr(av)})
    if op is _c.AT:
        return frozenset({""})  # an anchor (\\b, ^, $) consumes nothing
    if op is _c.IN:
        return _char_class(av)
    if op is _c.SUBPATTERN:
        _group, add_flags, del_flags, body = av
        return None if add_flags or del_flags else _exact_sequence(list(body))
    if op is _c.BRANCH:
        alternatives = [_exact_sequence(list(alt)) for alt in av[1]]
        if any(alt is None for alt in alternatives):
            return None
        union = frozenset().union(*alternatives)
        return union if len(union) <= MAX_EXACT_STRINGS else None
    if op in (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT) and av[0] == 0 and av[1] == 1:
        body = _exact_sequence(list(av[2]))  # x? : x or nothing
        return None if body is None else body | {""}
    return None


def _exact_sequence(items: list) -> frozenset[str] | None:
    spelled = frozenset({""})
    for op, av in items:
        spellings = _exact(op, av)
        if spellings is None:
            return None
        spelled = frozenset(a + b for a in spelled for b in spellings)
        if len(spelled) > MAX_EXACT_STRINGS:
            return None
    return spelled


def _node(op, av) -> Literals | None:
    """What a variable item (not spelled out) promises: literals any of its matches contains."""
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


class _LiteralScan:
    """Which of many literals occur in a text, found in one pass of ``re`` (C) rather than one
    Python-level ``in`` per literal: on a cold cache, as on the path from submit to first token, a
    Python loop over ~200 literals costs as much as the regexes it was meant to skip.

    ``(?=(a|b|...))`` matches at every position the first alternative that starts there; with the
    alternatives longest first, that is the longest literal starting there, and every shorter
    literal starting there is one of its prefixes (``prefixes``). So every occurrence is found."""

    def __init__(self, rules_by_literal: dict[str, list[int]]) -> None:
        literals = sorted(rules_by_literal, key=lambda lit: (-len(lit), lit))
        self._scan = re.compile("(?=(" + "|".join(map(re.escape, literals)) + "))") if literals else None
        # literal -> rules opened when it is the longest literal found at a position
        self._opens: dict[str, frozenset[int]] = {
            lit: frozenset(rule for other in literals if lit.startswith(other) for rule in rules_by_literal[other])
            for lit in literals}

    def rules_in(self, text: str) -> set[int]:
        opened: set[int] = set()
        if self._scan is not None:
            for found in set(self._scan.findall(text)):
                opened |= self._opens[found]
        return opened


class GatedPatterns:
    """Many regexes searched in one text, each behind its literal gate.

    One scan finds which literals occur (``_LiteralScan``); only the patterns whose gate opened,
    plus those with no gate, run their regex."""

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
        self._folded = _LiteralScan(folded)
        self._exact = _LiteralScan(exact)

    def __len__(self) -> int:
        return len(self._regexes)

    def gated(self, index: int) -> bool:
        return index not in self._ungated

    def regex(self, index: int) -> re.Pattern[str]:
        return self._regexes[index]

    def candidates(self, text: str) -> set[int]:
        """Indices of the patterns that may match ``text``; the others certainly do not."""
        if not text.isascii():  # gates are exact for ASCII text only: every pattern may match
            return set(range(len(self._regexes)))
        return self._folded.rules_in(text.lower()) | self._exact.rules_in(text) | self._ungated

    def matching(self, text: str) -> list[int]:
        """Indices (in order) of the patterns whose ``search(text)`` finds a match."""
        regexes = self._regexes
        return [index for index in sorted(self.candidates(text)) if regexes[index].search(text)]

    def matching_ungated(self, text: str) -> list[int]:
        """The same answer the slow way, every regex run: for non-ASCII text, and the reference."""
        return [index for index, regex in enumerate(self._regexes) if regex.search(text)]
