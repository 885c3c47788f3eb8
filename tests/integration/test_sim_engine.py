"""Model memory, keep-alive, slots and queueing of a simulated node."""
from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable

import ollama
import pytest

from hydra.sim import BUSY_MESSAGE, SimNode
from hydra.sim.testing import profile, wait_until

pytestmark = pytest.mark.timeout(60)
SEVEN, SMALL, LLAMA = "qwen2.5-coder:7b", "qwen2.5-coder:1.5b", "llama3.2:3b"


@functools.cache
def client_for(url: str) -> ollama.Client:
    # One (thread-safe) client per node: building one loads a TLS context and
    # takes 0.1-0.3 s, which would stagger requests meant to be simultaneous.
    return ollama.Client(host=url, timeout=20)


def ps_names(node: SimNode) -> list[str]:
    return [m.name for m in client_for(node.url).ps().models]


class Background:
    """Run client calls in threads; remember their results or errors."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []
        self.results: dict[str, object] = {}

    def start(self, key: str, fn: Callable[[], object]) -> None:
        def run() -> None:
            try:
                self.results[key] = fn()
            except Exception as exc:  # noqa: BLE001 - kept for the test to inspect
                self.results[key] = exc

        t = threading.Thread(target=run, daemon=True)
        self.threads.append(t)
        t.start()

    def join(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        assert not any(t.is_alive() for t in self.threads), "background requests did not finish"


def gen(node: SimNode, model: str, n: int, **kw: object) -> Callable[[], ollama.GenerateResponse]:
    client = client_for(node.url)
    return lambda: client.generate(model=model, prompt="work", options={"num_predict": n}, **kw)


def test_lru_idle_model_is_evicted_when_memory_is_full(sim_node_factory) -> None:
    # 7b (4960 MB) + 1.5b (1300 MB) fit in 6500 MB; llama3.2:3b (2320 MB) does not fit beside both.
    node = sim_node_factory(profile("gpu", gpu=True, memory_mb=6_500))
    for model in (SEVEN, SMALL):
        gen(node, model, 2)()
    assert ps_names(node) == [SMALL, SEVEN]
    gen(node, LLAMA, 2)()
    assert ps_names(node) == [LLAMA, SMALL]  # 7b was least recently used
    gen(node, SMALL, 2)()  # now llama3.2 is the least recently used
    gen(node, SEVEN, 2)()
    assert ps_names(node) == [SEVEN, SMALL]
    assert node.stats()["evictions"] == {SEVEN: 1, LLAMA: 1}
    assert node.stats()["loads"] == {SEVEN: 2, SMALL: 1, LLAMA: 1}
    ps = client_for(node.url).ps().models
    assert sum(m.size_vram for m in ps) <= 6_500 * 1_000_000


def test_warm_model_skips_load_time(sim_node: SimNode) -> None:
    cold = gen(sim_node, SMALL, 3)()
    warm = gen(sim_node, SMALL, 3)()
    assert cold.load_duration / 1e9 == pytest.approx(sim_node.profile.load_s(sim_node.profile.model(SMALL)))
    assert warm.load_duration == 0


def test_keep_alive_zero_unloads_after_the_request(sim_node: SimNode) -> None:
    gen(sim_node, SMALL, 2)()
    r = gen(sim_node, LLAMA, 2, keep_alive=0)()
    assert r.done and ps_names(sim_node) == [SMALL]


def test_keep_alive_durations(sim_node: SimNode) -> None:
    client = client_for(sim_node.url)
    gen(sim_node, SMALL, 1, keep_alive=-1)()
    gen(sim_node, LLAMA, 1, keep_alive="1s")()  # 1 simulated second = 20 ms at FAST
    forever = {m.name: m.expires_at for m in client.ps().models}[SMALL]
    assert forever.year > 2200
    assert wait_until(lambda: ps_names(sim_node) == [SMALL], timeout=5)
    gen(sim_node, LLAMA, 1, keep_alive="5m")()
    expires = {m.name: m.expires_at for m in client.ps().models}[LLAMA].timestamp()
    assert 0 < expires - time.time() <= 300 * sim_node.time_scale + 1


def test_empty_prompt_loads_and_keep_alive_zero_unloads(sim_node: SimNode) -> None:
    client = client_for(sim_node.url)
    assert client.generate(model=SMALL).done_reason == "load"
    assert client.chat(model=LLAMA, messages=[]).done_reason == "load"
    assert sorted(ps_names(sim_node)) == sorted([SMALL, LLAMA])
    assert client.generate(model=SMALL, keep_alive=0).done_reason == "unload"
    assert ps_names(sim_node) == [LLAMA]


def test_concurrent_requests_for_a_cold_model_load_it_once(sim_node_factory) -> None:
    node = sim_node_factory(profile("wide", slots=6), time_scale=0.2)  # a 1 s load: all six arrive during it
    bg = Background()
    for i in range(6):
        bg.start(str(i), gen(node, SEVEN, 2))
    bg.join()
    results = list(bg.results.values())
    assert all(isinstance(r, ollama.GenerateResponse) and r.eval_count == 2 for r in results), results
    assert node.stats()["loads"] == {SEVEN: 1}
    assert node.stats()["max_in_flight_seen"] == 6


def test_slots_bound_concurrency_and_everyone_finishes(sim_node_factory) -> None:
    node = sim_node_factory(profile("two", slots=2), time_scale=0.05)
    gen(node, SMALL, 1)()  # warm: only generation time overlaps below
    bg = Background()
    for i in range(4):
        # ~1.6 s each: long enough that, on a loaded machine, the last two are still queued when looked at
        bg.start(str(i), gen(node, SMALL, 1500))
    assert wait_until(lambda: node.stats()["queued"] == 2, timeout=5)
    bg.join()
    assert all(getattr(r, "eval_count", None) == 1500 for r in bg.results.values()), bg.results
    assert node.stats()["max_in_flight_seen"] == 2
    # The client has the final line before the node's own books close (count, slot freed), as with Ollama.
    def settled() -> bool:
        stats = node.stats()
        return stats["generations"] == 5 and stats["in_flight"] == 0 and stats["queued"] == 0
    assert wait_until(settled, timeout=5), node.stats()


def test_queue_is_fifo(sim_node_factory) -> None:
    node = sim_node_factory(profile("one", slots=1), time_scale=0.05)
    gen(node, SMALL, 1)()
    bg = Background()
    bg.start("first", gen(node, SMALL, 1000))  # ~1.1 s: time to queue the rest
    assert wait_until(lambda: node.stats()["in_flight"] == 1)
    for i, key in enumerate(("second", "third", "fourth"), start=1):
        bg.start(key, gen(node, SMALL, 3))
        assert wait_until(lambda i=i: node.stats()["queued"] == i)
    bg.join()
    # Server-side completion times: client threads may wake up in any order.
    order = sorted(bg.results, key=lambda key: bg.results[key].created_at)
    assert order == ["first", "second", "third", "fourth"]


def test_full_queue_answers_503(sim_node_factory) -> None:
    node = sim_node_factory(profile("tight", slots=1, max_queue=2), time_scale=0.05)
    bg = Background()
    bg.start("running", gen(node, SMALL, 10_000))  # ~11 s: cut short by kill() below
    assert wait_until(lambda: node.stats()["in_flight"] == 1)
    for i in (1, 2):
        bg.start(f"queued{i}", gen(node, SMALL, 1))
        assert wait_until(lambda i=i: node.stats()["queued"] == i)
    with pytest.raises(ollama.ResponseError) as err:
        gen(node, SMALL, 1)()
    assert err.value.status_code == 503 and err.value.error == BUSY_MESSAGE
    assert node.stats()["queued"] == 2  # the refused request was not queued
    node.kill()
    bg.join(timeout=5)
    assert all(isinstance(r, Exception) for r in bg.results.values()), bg.results


def test_model_larger_than_memory_is_an_error(sim_node_factory) -> None:
    node = sim_node_factory(profile("small", memory_mb=3_000))
    with pytest.raises(ollama.ResponseError) as err:
        gen(node, SEVEN, 1)()
    assert err.value.status_code == 500 and "more system memory" in err.value.error
    assert gen(node, SMALL, 1)().eval_count == 1


def test_load_waits_for_a_busy_model_to_be_released(sim_node_factory) -> None:
    # 5500 MB holds the 7b (4960) or the 1.5b (1300), never both.
    node = sim_node_factory(profile("cramped", gpu=True, memory_mb=5_500), time_scale=0.05)
    bg = Background()
    bg.start("big", gen(node, SEVEN, 1000))  # ~0.85 s of decoding
    assert wait_until(lambda: node.loaded_models() == [SEVEN])
    bg.start("small", gen(node, SMALL, 1))
    bg.join()
    assert all(isinstance(r, ollama.GenerateResponse) for r in bg.results.values()), bg.results
    assert bg.results["small"].created_at > bg.results["big"].created_at  # server-side clock
    assert node.loaded_models() == [SMALL]
