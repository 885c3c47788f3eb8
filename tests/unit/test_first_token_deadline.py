"""The first-token deadline of an attempt follows what the node has to do: a table over the pure function,
and the watchdog's use of it (a hung attempt with its model loaded is overdue at its own deadline, not at
the ceiling)."""
from __future__ import annotations

import pytest

from hydra.sollol.config import SollolConfig
from hydra.sollol.fit import prior_load_s, prior_tps
from hydra.sollol.handle import TaskState
from hydra.sollol.metrics import FirstTokenHistory, RollingStats
from hydra.sollol.types import ModelInfo, RoutingMode, Task
from hydra.sollol.watchdog import WARM_FLOOR_S, FirstTokenDeadline, first_token_deadline, overdue

CEILING = 180.0
NOTHING = FirstTokenHistory(None, None, None)
B70 = ModelInfo("llama3.1:70b", 70.6, 42_000_000_000)
B7 = ModelInfo("qwen2.5-coder:7b", 7.6, 4_700_000_000)


def deadline(info: ModelInfo, *, gpu: bool, cold: bool, history: FirstTokenHistory = NOTHING,
             prompt_tokens: int = 10, ceiling: float = CEILING) -> float:
    return first_token_deadline(cold=cold, history=history, prior_load_s=prior_load_s(gpu, info),
                                prior_tps=prior_tps(gpu, info), prompt_tokens=prompt_tokens,
                                ceiling_s=ceiling).seconds


@pytest.mark.parametrize("case, seconds, low, high", [
    # A loaded model, nothing measured: the floor (a node that never answers costs a task this, under 15 s).
    ("loaded, unmeasured, GPU 7B", deadline(B7, gpu=True, cold=False), 10.0, 10.1),
    ("loaded, unmeasured, CPU 70B", deadline(B70, gpu=False, cold=False), 10.0, 15.0),
    # Measured first tokens: three times their p95, never under the floor, never over the ceiling.
    ("loaded, fast p95", deadline(B7, gpu=True, cold=False, history=FirstTokenHistory(0.2, None, 60.0)), 10.0, 10.1),
    ("loaded, slow p95 8 s", deadline(B7, gpu=True, cold=False, history=FirstTokenHistory(8.0, None, 60.0)),
     24.0, 24.1),
    ("loaded, p95 100 s", deadline(B7, gpu=True, cold=False, history=FirstTokenHistory(100.0, None, 60.0)),
     CEILING, CEILING),
    # A long prompt is read before the first token: its expected time counts (twice).
    ("loaded, 4000-token prompt on CPU 7B", deadline(B7, gpu=False, cold=False, prompt_tokens=4000),
     10.0 + 2 * 4000 / (prior_tps(False, B7) * 10), 10.0 + 2 * 4000 / (prior_tps(False, B7) * 10) + 0.01),
    # A legitimate 35 s cold load of a 70B model is never cut: the size prior (GPU 21.7 s) three times over.
    ("cold 70B on GPU (a 35 s load)", deadline(B70, gpu=True, cold=True), 60.0, 90.0),
    ("cold 70B on CPU", deadline(B70, gpu=False, cold=True), 35.0, CEILING),
    # Measured loads on the node replace the prior: twice the mean.
    ("cold 70B, 35 s measured", deadline(B70, gpu=True, cold=True, history=FirstTokenHistory(0.5, 35.0, 20.0)),
     80.0, 80.2),
    ("cold 7B, 2 s measured", deadline(B7, gpu=True, cold=True, history=FirstTokenHistory(None, 2.0, 60.0)),
     14.0, 14.1),
    # The ceiling caps everything, and a low ceiling (a test's, an operator's) caps the floor too.
    ("cold 70B, 90 s measured", deadline(B70, gpu=True, cold=True, history=FirstTokenHistory(None, 90.0, 20.0)),
     CEILING, CEILING),
    ("ceiling 1 s", deadline(B7, gpu=True, cold=False, ceiling=1.0), 1.0, 1.0),
])
def test_the_deadline_follows_what_the_node_has_to_do(case: str, seconds: float, low: float, high: float) -> None:
    assert low <= seconds <= high, (case, seconds)


def test_the_deadline_says_why() -> None:
    cold = first_token_deadline(cold=True, history=NOTHING, prior_load_s=21.7, prior_tps=6.4, prompt_tokens=10,
                                ceiling_s=CEILING)
    assert "cold load 3 x 21.7 s expected for its size" in cold.basis and "nothing measured yet" in cold.basis
    capped = first_token_deadline(cold=True, history=FirstTokenHistory(None, 300.0, 5.0), prior_load_s=21.7,
                                  prior_tps=6.4, prompt_tokens=10, ceiling_s=CEILING)
    assert capped.seconds == CEILING and capped.basis.startswith("the ceiling")


def test_the_history_takes_cold_loads_out_of_the_first_token_times() -> None:
    stats = RollingStats()
    stats.record("n", "m", ok=True, ttft_s=35.4, load_s=35.0)   # a cold load: 0.4 s once loaded
    for _ in range(9):
        stats.record("n", "m", ok=True, ttft_s=0.3, load_s=0.01, tokens_per_s=50.0)
    history = stats.first_token_history("n", "m")
    assert history.warm_ttft_p95_s is not None and history.warm_ttft_p95_s < 0.5
    assert history.load_s == 35.0 and history.tokens_per_s == 50.0
    assert stats.first_token_history("n", "other") == NOTHING


def _running(started: float) -> TaskState:
    state = TaskState(Task(prompt="p"), RoutingMode.ASYNC, "general")
    assert state.bind("n", "m", None) is not None  # type: ignore[arg-type]
    state.attempt_started = started
    return state


def test_the_watchdog_uses_each_attempts_own_deadline() -> None:
    config = SollolConfig()  # ceiling 180 s
    state = _running(started=100.0)
    warm = FirstTokenDeadline(WARM_FLOOR_S, "a loaded model")
    assert list(overdue([state], 100.0 + WARM_FLOOR_S - 0.1, config, lambda s: warm)) == []
    [(late, error)] = overdue([state], 100.0 + WARM_FLOOR_S, config, lambda s: warm)
    assert late is state and error is not None
    assert f"limit {WARM_FLOOR_S:.1f} s: a loaded model" in str(error)
    # Without a deadline of its own, the ceiling.
    assert list(overdue([state], 100.0 + 179.0, config)) == []
    assert len(list(overdue([state], 100.0 + 180.0, config))) == 1


def test_the_ceiling_is_a_setting() -> None:
    from hydra.config import load_settings
    from hydra.sollol.errors import ConfigError

    assert SollolConfig().first_token_timeout_s == 180.0
    assert SollolConfig.from_env({"SOLLOL_FIRST_TOKEN_TIMEOUT_S": "45"}).first_token_timeout_s == 45.0
    assert load_settings({"SOLLOL_FIRST_TOKEN_TIMEOUT_S": "90"}).sollol_config().first_token_timeout_s == 90.0
    for bad in ("0", "-5", "nan", "soon", "99999"):
        with pytest.raises(ConfigError, match="SOLLOL_FIRST_TOKEN_TIMEOUT_S"):
            SollolConfig.from_env({"SOLLOL_FIRST_TOKEN_TIMEOUT_S": bad})
