"""The compatibility table (tests/compat/table.py): each cell says only what its tests showed."""
from __future__ import annotations

import pytest

from tests.compat.table import cell, markdown


@pytest.mark.parametrize("outcomes, shown", [([], ""), ([True], "yes"), ([True, True], "yes"),
                                             ([True, False], "no (1/2)"), ([False], "no (0/1)")])
def test_a_cell(outcomes: list[bool], shown: str) -> None:
    assert cell(outcomes) == shown


def test_only_tested_features_and_clients_appear() -> None:
    table = markdown({("LiteLLM", "chat"): [True], ("LiteLLM", "embeddings"): [False],
                      ("ollama (JS)", "chat"): [True, False]})
    assert table.splitlines() == ["| client | chat | embeddings |", "|---|---|---|",
                                  "| LiteLLM | yes | no (0/1) |", "| ollama (JS) | no (1/2) |  |"]


def test_an_unknown_feature_is_refused() -> None:
    with pytest.raises(ValueError, match="teleport"):
        markdown({("LiteLLM", "teleport"): [True]})
