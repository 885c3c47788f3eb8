"""The routing engine stays pure Python: nothing under hydra/sollol/ reaches for streamlit, pandas or plotly."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENGINE = REPO / "hydra" / "sollol"
FORBIDDEN = ("streamlit", "pandas", "plotly")
ENGINE_FILES = sorted(ENGINE.glob("*.py"))


def imported_modules(path: Path) -> set[str]:
    """Top-level names of every module a file imports (anywhere: inside functions too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in
              ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant)):
            names.add(str(node.args[0].value).split(".")[0])
    return names


def test_the_engine_has_files_to_check():
    assert len(ENGINE_FILES) >= 10, ENGINE_FILES


@pytest.mark.parametrize("path", ENGINE_FILES, ids=[p.name for p in ENGINE_FILES])
def test_no_ui_imports(path):
    assert not imported_modules(path) & set(FORBIDDEN)


def test_the_checker_sees_imports(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    import pandas as pd\nfrom plotly import express\n"
                      "import importlib\nimportlib.import_module('streamlit.runtime')\n")
    assert set(FORBIDDEN) <= imported_modules(sample)


def test_importing_the_engine_loads_no_ui_library():
    # Building a Router pulls in its default tiers too (hydra.tiers): they must stay UI-free as well.
    code = ("import json, sys, hydra.sollol, hydra.sollol.router, hydra.sollol.discovery; "
            "hydra.sollol.Router(config=hydra.sollol.SollolConfig(discover_localhost=False)); "
            f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {list(FORBIDDEN)!r})))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
