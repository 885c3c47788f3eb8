"""The complexity rule, in pytest's totals: no function in hydra/ of radon rank D or worse.

A function may stay at D or worse only if the line above its ``def`` (or above its first
decorator) is a comment ``# complexity: <why it must stay>``. ``make check`` runs this file
beside ruff and mypy; a failure names each function as ``path:line name rank (score)``.
"""
from __future__ import annotations

import ast
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from radon.complexity import cc_rank
from radon.visitors import Class, ComplexityVisitor, Function

ROOT = Path(__file__).resolve().parents[2]
CHECKED = ROOT / "hydra"
WORST_ALLOWED = "C"  # rank D (complexity 21) and worse must be split or explained
MARKER = "# complexity:"


@dataclass(frozen=True)
class TooComplex:
    path: str
    line: int
    name: str
    score: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line} {self.name} {cc_rank(self.score)} ({self.score})"


def _blocks(blocks: list[Function | Class], owner: str = "") -> Iterator[tuple[str, Function]]:
    """Every function, method and nested function, with a dotted name."""
    for block in blocks:
        name = f"{owner}{block.name}"
        if isinstance(block, Class):
            yield from _blocks([*block.methods, *block.inner_classes], f"{name}.")
        else:
            yield name, block
            yield from _blocks(list(block.closures), f"{name}.")


def _first_lines(tree: ast.AST) -> dict[int, int]:
    """``def`` line -> the line where the definition starts (its first decorator, if any)."""
    starts = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            starts[node.lineno] = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    return starts


def _explained(lines: list[str], start: int) -> bool:
    """True if the line above ``start`` (1-based) is ``# complexity: <a reason>``."""
    if start < 2:
        return False
    above = lines[start - 2].strip()
    return above.startswith(MARKER) and bool(above[len(MARKER):].strip())


def too_complex(source: str, path: str) -> list[TooComplex]:
    """The functions of ``source`` ranked worse than WORST_ALLOWED and not explained."""
    lines = source.splitlines()
    starts = _first_lines(ast.parse(source))
    found = []
    visitor = ComplexityVisitor.from_code(source)  # top-level blocks; cc_visit also flattens methods
    for name, func in _blocks([*visitor.functions, *visitor.classes]):
        if cc_rank(func.complexity) <= WORST_ALLOWED:
            continue
        if not _explained(lines, starts.get(func.lineno, func.lineno)):
            found.append(TooComplex(path, func.lineno, name, func.complexity))
    return found


def test_no_function_in_hydra_is_rank_d_or_worse() -> None:
    found = []
    for file in sorted(CHECKED.rglob("*.py")):
        found += too_complex(file.read_text(encoding="utf-8"), str(file.relative_to(ROOT)))
    if found:
        pytest.fail(
            f"{len(found)} function(s) of radon rank D or worse (split them, or put "
            f"'{MARKER} <why it must stay>' on the line above the def):\n" + "\n".join(map(str, found)),
            pytrace=False,
        )


# -- the checker itself: it must fail on a complex function and pass on the others ----------

def _branchy(name: str, branches: int, indent: str = "") -> str:
    """A function of complexity 1 + branches."""
    body = "".join(f"{indent}    if x == {i}:\n{indent}        return {i}\n" for i in range(branches))
    return f"{indent}def {name}(x):\n{body}{indent}    return -1\n"


def test_a_function_of_rank_d_is_reported_with_its_place() -> None:
    source = "import os\n\n" + _branchy("tangled", 20)  # complexity 21: rank D
    assert [str(f) for f in too_complex(source, "pkg/mod.py")] == ["pkg/mod.py:3 tangled D (21)"]


def test_rank_c_passes() -> None:
    assert too_complex(_branchy("fine", 19), "m.py") == []  # complexity 20: rank C


def test_methods_and_nested_functions_are_checked() -> None:
    method = "class Box:\n" + _branchy("open", 30, indent="    ")
    nested = "def outer():\n" + _branchy("inner", 40, indent="    ") + "    return inner\n"
    assert [str(f) for f in too_complex(method, "m.py")] == ["m.py:2 Box.open E (31)"]
    assert [str(f) for f in too_complex(nested, "m.py")] == ["m.py:2 outer.inner F (41)"]


def test_a_comment_saying_why_lets_a_function_stay() -> None:
    explained = "# complexity: one flat table of cases, clearer whole\n" + _branchy("table", 25)
    decorated = "# complexity: a flat table\n@staticmethod\n" + _branchy("table", 25)
    assert too_complex(explained, "m.py") == []
    assert too_complex(decorated, "m.py") == []


def test_the_comment_must_be_right_above_and_give_a_reason() -> None:
    empty = "# complexity:\n" + _branchy("table", 25)
    far = "# complexity: a flat table\n\n" + _branchy("table", 25)
    other = "# why: a flat table\n" + _branchy("table", 25)
    for source in (empty, far, other):
        assert [f.name for f in too_complex(source, "m.py")] == ["table"], source



def test_test_files_have_unique_basenames() -> None:
    # tests/ has no __init__.py: pytest imports each file by its basename, so two files of one name in
    # different folders stop the whole run at collection (make test would fail before any test ran).
    names = Counter(p.name for p in (ROOT / "tests").rglob("test_*.py"))
    assert [name for name, n in names.items() if n > 1] == []
