"""plan_moves: which running tasks an idle node should take over at the tail of a backlog."""
from __future__ import annotations

import pytest

from hydra.sollol.config import SollolConfig
from hydra.sollol.node import Circuit, NodeView
from hydra.sollol.rebalance import Running, plan_moves, remaining_seconds
from hydra.sollol.types import ModelInfo

MODEL = "mistral:latest"


def view(name: str, *, gpu: bool, in_flight: int = 0, slots: int = 2, healthy: bool = True,
         models: tuple[str, ...] = (MODEL,), loaded: tuple[str, ...] = (MODEL,)) -> NodeView:
    return NodeView(name=name, url=f"http://127.0.0.9:{abs(hash(name)) % 1000 + 20000}", gpu=gpu, local=False,
                    max_model_b=70 if gpu else 30, slots=slots, in_flight=in_flight, healthy=healthy,
                    circuit=Circuit.CLOSED, trial_in_flight=False,
                    installed={m: ModelInfo(m, 7.2, int(4.1e9)) for m in models}, loaded=frozenset(loaded),
                    vram_total_mb=48_000 if gpu else None, vram_used_mb=4_000 if gpu else None, polled=True,
                    last_error=None)


def running(node: str = "cpu", produced: int = 20, target: int | None = 200,
            excluded: frozenset[str] = frozenset()) -> Running:
    return Running("t1", node, MODEL, produced, target, 20, excluded)


# Prior speeds of a 7.2B model: GPU 450/7.2 = 62.5 tok/s (200 tokens in ~3.3 s), CPU 60/7.2 = 8.3 tok/s:
# the CPU task above has 180 tokens, ~21.6 s, left.
CASES = [
    ("slow task moves to idle fast node", [running()], [view("cpu", gpu=False, in_flight=1), view("gpu", gpu=True)],
     [("t1", "gpu")]),
    ("no idle node, no move", [running()], [view("cpu", gpu=False, in_flight=1), view("gpu", gpu=True, in_flight=2)],
     []),
    ("almost done: not worth a restart", [running(produced=190)],
     [view("cpu", gpu=False, in_flight=1), view("gpu", gpu=True)], []),
    ("idle node lacks the model", [running()],
     [view("cpu", gpu=False, in_flight=1), view("gpu", gpu=True, models=("llama3.2:3b",))], []),
    ("idle node unhealthy", [running()], [view("cpu", gpu=False, in_flight=1), view("gpu", gpu=True, healthy=False)],
     []),
    ("idle node failed this task before", [running(excluded=frozenset({"gpu"}))],
     [view("cpu", gpu=False, in_flight=1), view("gpu", gpu=True)], []),
    ("too few tokens streamed yet", [running(produced=1)],
     [view("cpu", gpu=False, in_flight=1), view("gpu", gpu=True)], []),
    ("idle node is slower: stay", [running(node="gpu", produced=120)],
     [view("gpu", gpu=True, in_flight=1), view("cpu", gpu=False)], []),
]


@pytest.mark.parametrize("tasks, views, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_plan_moves(tasks, views, expected):
    moves = plan_moves(tasks, views, SollolConfig(), {})
    assert [(m.task_id, m.to_node) for m in moves] == expected
    for move in moves:
        assert move.estimate_s < move.remaining_s


def test_one_free_slot_takes_one_task():
    tasks = [Running(f"t{i}", "cpu", MODEL, 20, 200, 20, frozenset()) for i in range(3)]
    views = [view("cpu", gpu=False, in_flight=3, slots=3), view("gpu", gpu=True, in_flight=1, slots=2)]
    assert len(plan_moves(tasks, views, SollolConfig(), {})) == 1


@pytest.mark.parametrize("produced, target, expected", [
    (20, 200, 18.0), (200, 200, None), (2, 200, None), (20, None, 18.0),
], ids=["midway", "done", "too-few-tokens", "default-target"])
def test_remaining_seconds(produced, target, expected):
    r = Running("t", "n", MODEL, produced, target, 10, frozenset())
    assert remaining_seconds(r, tps=10.0) == (pytest.approx(expected) if expected is not None else None)
