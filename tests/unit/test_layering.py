"""The routing engine stays pure Python and stays at the bottom: nothing under hydra/sollol/ reaches for
streamlit, pandas or plotly, nor for any part of Hydra outside hydra.sollol (tiers and the classifier
are given to the Router by whoever builds it)."""
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


def imported_full_names(path: Path) -> set[str]:
    """Full dotted names of every absolute import in a file (anywhere: inside functions too).
    ``from hydra import tiers`` counts as ``hydra.tiers``: the name it binds may be a module."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names if alias.name != "*")
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in
              ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant)):
            names.add(str(node.args[0].value))
    return names


def imported_modules(path: Path) -> set[str]:
    """Top-level names of every module a file imports."""
    return {name.split(".")[0] for name in imported_full_names(path)}


def hydra_outside_the_engine(path: Path) -> set[str]:
    """The imports of ``hydra.*`` that are not ``hydra.sollol`` or below it."""
    return {name for name in imported_full_names(path)
            if name.split(".")[0] == "hydra" and name != "hydra" and not
            (name == "hydra.sollol" or name.startswith("hydra.sollol."))}


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


@pytest.mark.parametrize("path", ENGINE_FILES, ids=[p.name for p in ENGINE_FILES])
def test_no_import_of_hydra_outside_the_engine(path):
    assert hydra_outside_the_engine(path) == set()


def test_the_checker_sees_imports_of_hydra_outside_the_engine(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("from hydra.sollol.types import Task\nfrom . import routing\nimport hydra.sollol\n"
                      "def defaults():\n    from hydra import tiers\n    from hydra.config import load_settings\n"
                      "import hydra.history.store\nimport importlib\nimportlib.import_module('hydra.gateway')\n")
    assert hydra_outside_the_engine(sample) == {"hydra.tiers", "hydra.config", "hydra.config.load_settings",
                                                "hydra.history.store", "hydra.gateway"}


def test_importing_the_engine_loads_no_ui_library_and_no_other_part_of_hydra():
    code = ("import json, sys, hydra.sollol, hydra.sollol.router, hydra.sollol.discovery; "
            "hydra.sollol.Router(config=hydra.sollol.SollolConfig(discover_localhost=False)); "
            f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {list(FORBIDDEN)!r}"
            " or m.startswith('hydra.') and not m.startswith('hydra.sollol'))))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
