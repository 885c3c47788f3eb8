"""HYDRA_MAX_TOKENS: the answer cap of a command-line task that sets none (so no answer runs for minutes)."""
from __future__ import annotations

from pathlib import Path

from hydra.sim import SimCluster
from tests.integration.test_gateway_cli import cli_env, run


def test_submit_without_max_tokens_is_capped_by_the_setting(seed: SimCluster, tmp_path: Path) -> None:
    # The simulator answers with the whole budget it is given: the cap shows as the token count.
    done = run(["submit", "Write a very long essay about distributed systems", "--model", "llama3.2:3b"],
               cli_env(seed, tmp_path, HYDRA_MAX_TOKENS="9"))
    assert done.returncode == 0, done.stderr
    assert "tokens=9" in done.stderr.strip().splitlines()[-1]


def test_an_explicit_max_tokens_wins_over_the_setting(seed: SimCluster, tmp_path: Path) -> None:
    done = run(["submit", "Write a very long essay", "--model", "llama3.2:3b", "--max-tokens", "5"],
               cli_env(seed, tmp_path, HYDRA_MAX_TOKENS="9"))
    assert done.returncode == 0, done.stderr
    assert "tokens=5" in done.stderr.strip().splitlines()[-1]
