"""One gateway for the whole compatibility suite (``python -m hydra serve`` as a user runs it), and the
compatibility table of the run, written to artifacts/compat-table.md."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.compat.harness import ROOT, Gateway, hydra_serve
from tests.compat.table import markdown

TABLE = ROOT / "artifacts" / "compat-table.md"
# A test's time includes its module's fixture: one client's whole scenario run, or Open WebUI's start
# (its migrations and torch import), far beyond pytest.ini's 300 s on a loaded 2-core machine.
COMPAT_TIMEOUT_S = 1200
_outcomes: dict[tuple[str, str], list[bool]] = defaultdict(list)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("compat") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(COMPAT_TIMEOUT_S))


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with hydra_serve(tmp_path_factory.mktemp("compat-gateway")) as running:
        yield running


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    marker = item.get_closest_marker("feature")
    # A test counts once: its call, or its setup when that failed (then the call never ran).
    if marker and (report.when == "call" or (report.when == "setup" and report.failed)):
        _outcomes[(marker.args[0], marker.args[1])].append(report.passed)


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _outcomes:
        Path(TABLE).parent.mkdir(parents=True, exist_ok=True)
        TABLE.write_text(markdown(_outcomes))
