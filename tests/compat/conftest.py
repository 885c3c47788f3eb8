"""One gateway for the whole compatibility suite: ``python -m hydra serve`` as a user runs it."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.compat.harness import Gateway, hydra_serve


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with hydra_serve(tmp_path_factory.mktemp("compat-gateway")) as running:
        yield running
