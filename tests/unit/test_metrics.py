"""RollingStats: what routing reads (estimates, success rates) follows every record at once."""
from __future__ import annotations

import threading

from hydra.sollol.metrics import RollingStats, percentile, tokens_per_second


def test_estimates_follow_each_record_for_that_node_and_model():
    stats = RollingStats(window=4)
    assert stats.estimates() == {} and stats.success_rates() == {}
    stats.record("a", "m:1b", ok=True, ttft_s=0.3, tokens_per_s=40.0, load_s=2.0)
    stats.record("a", "m:1b", ok=True, ttft_s=0.1, tokens_per_s=60.0)
    stats.record("b", "m:1b", ok=False)
    assert stats.estimates()[("a", "m:1b")] == (0.1, 50.0, 2.0)
    assert stats.estimates()[("b", "m:1b")] == (None, None, None)
    assert stats.success_rates() == {"a": (1.0, 2), "b": (0.0, 1)}


def test_success_rate_spans_every_model_of_a_node_over_the_window():
    stats = RollingStats(window=3)
    for ok in (False, False, True, True, True):  # the window keeps the last three of this model
        stats.record("a", "x:1b", ok=ok)
    stats.record("a", "y:7b", ok=False)
    assert stats.success_rates()["a"] == (0.75, 4)


def test_a_reader_keeps_a_consistent_copy_while_records_go_on():
    stats = RollingStats()
    stats.record("a", "m:1b", ok=True, ttft_s=0.2)
    seen = stats.estimates()
    stats.record("a", "m:1b", ok=True, ttft_s=0.9)
    stats.record("c", "m:1b", ok=True)
    assert seen == {("a", "m:1b"): (0.2, None, None)}  # replaced, never mutated under a reader
    assert ("c", "m:1b") in stats.estimates()


def test_forget_node_drops_its_statistics():
    stats = RollingStats()
    stats.record("a", "m:1b", ok=True, ttft_s=0.2)
    stats.record("b", "m:1b", ok=False)
    stats.forget_node("a")
    assert list(stats.estimates()) == [("b", "m:1b")]
    assert list(stats.success_rates()) == ["b"]
    stats.record("a", "m:1b", ok=False)  # a node added again starts afresh
    assert stats.success_rates()["a"] == (0.0, 1)


def test_concurrent_records_lose_nothing():
    stats = RollingStats(window=1000)

    def work(node: str) -> None:
        for i in range(300):
            stats.record(node, "m:1b", ok=i % 3 != 0, ttft_s=0.01 * (i % 7))
    threads = [threading.Thread(target=work, args=(f"n{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert stats.success_rates() == {f"n{i}": (200 / 300, 300) for i in range(4)}


def test_percentile_and_tokens_per_second():
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 95) == 4.0
    assert tokens_per_second(100, 2_000_000_000) == 50.0
    assert tokens_per_second(0, 10) is None and tokens_per_second(5, 0) is None
