"""The batch store's rules, on an in-memory database: all-or-nothing creation, rows guarded by their task
id, the atomic end of a batch, orphans settled, the export's columns."""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

import pytest

from hydra.batch import BatchOptions, BatchStore, RowOutcome
from hydra.batch.export import export_bytes


@pytest.fixture
def store() -> Iterator[BatchStore]:
    s = BatchStore(":memory:")
    yield s
    s.close()


def make(store: BatchStore, n: int = 3, columns: tuple[str, ...] = ("q",)) -> str:
    rows = [{c: f"{c}{i}" for c in columns} for i in range(n)]
    return store.create(name="t", template="{q}", options=BatchOptions(), columns=columns, rows=rows,
                        prompts=[f"p{i}" for i in range(n)])


def test_a_batch_is_written_whole_or_not_at_all(store: BatchStore) -> None:
    with pytest.raises(ValueError):  # one prompt short: the insert of the rows fails inside the transaction
        store.create(name="t", template="{q}", options=BatchOptions(), columns=["q"], rows=[{"q": "a"}, {"q": "b"}],
                     prompts=["a"])
    assert store.batches() == []
    with store._read() as conn:
        assert conn.execute("SELECT COUNT(*) FROM batch_rows").fetchone()[0] == 0


def test_rows_are_claimed_in_order_and_ended_only_by_their_task(store: BatchStore) -> None:
    batch_id = make(store, 5)
    first = store.claim(batch_id, 2)
    assert [c.row for c in first] == [0, 1] and [c.prompt for c in first] == ["p0", "p1"]
    assert len({c.task_id for c in first}) == 2
    assert [c.row for c in store.claim(batch_id, 10)] == [2, 3, 4]
    assert store.claim(batch_id, 10) == []
    assert not store.finish_row(batch_id, 0, "someone-else", RowOutcome("done", answer="x"))
    assert store.finish_row(batch_id, 0, first[0].task_id, RowOutcome("done", answer="x", node="a", tokens=7))
    assert not store.finish_row(batch_id, 0, first[0].task_id, RowOutcome("failed"))  # ended once
    row = store.rows(batch_id, 0, 1)[0]
    assert (row["status"], row["answer"], row["node"], row["runs"]) == ("done", "x", "a", 1)


def test_a_batch_completes_only_when_no_row_is_left(store: BatchStore) -> None:
    batch_id = make(store, 2)
    claimed = store.claim(batch_id, 1)
    assert not store.complete(batch_id)
    store.finish_row(batch_id, 0, claimed[0].task_id, RowOutcome("done"))
    assert not store.complete(batch_id)  # row 1 still pending
    (second,) = store.claim(batch_id, 1)
    store.finish_row(batch_id, 1, second.task_id, RowOutcome("failed", error="boom"))
    assert store.complete(batch_id)
    assert store.get(batch_id).status == "done"
    assert store.retry(batch_id) == 1
    row = store.rows(batch_id, 1, 1)[0]
    assert (row["status"], row["error"], row["task_id"]) == ("pending", None, None)


def test_orphans_are_settled_from_their_task_or_run_again(store: BatchStore) -> None:
    batch_id = make(store, 2)
    a, b = store.claim(batch_id, 2)
    with store._tx() as conn:  # as a process that died would have left them
        conn.execute("UPDATE batch_rows SET owner = 'gone'")
    assert store.orphans(alive=lambda owner: owner != "gone") == [(batch_id, 0, a.task_id), (batch_id, 1, b.task_id)]
    assert store.orphans(alive=lambda owner: True) == []
    store.settle(batch_id, 0, a.task_id, RowOutcome("done", answer="kept"))
    store.settle(batch_id, 1, b.task_id, None)
    rows = store.rows(batch_id)
    assert [(r["status"], r["answer"], r["runs"]) for r in rows] == [("done", "kept", 1), ("pending", None, 1)]


def test_another_live_owner_keeps_its_batch(store: BatchStore) -> None:
    batch_id = make(store)
    with store._tx() as conn:
        conn.execute("UPDATE batches SET owner = 'other'")
    assert not store.take(batch_id, alive=lambda owner: True)
    assert store.take(batch_id, alive=lambda owner: False)
    assert store.resumable(alive=lambda owner: False) == []  # ours now


def test_progress_aggregates(store: BatchStore) -> None:
    batch_id = make(store, 4)
    claimed = store.claim(batch_id, 3)
    store.finish_row(batch_id, 0, claimed[0].task_id, RowOutcome("done", node="a", tokens=10))
    store.finish_row(batch_id, 1, claimed[1].task_id, RowOutcome("done", node="b", tokens=5))
    p = store.progress(batch_id)
    assert p.counts == {"pending": 1, "running": 1, "done": 2, "failed": 0, "cancelled": 0}
    assert (p.done, p.remaining, p.finished, p.tokens) == (2, 2, 2, 15)
    assert p.by_node == {"a": 1, "b": 1}
    assert p.eta_s is not None and p.eta_s >= 0


def test_export_keeps_original_columns_and_never_overwrites_them(store: BatchStore) -> None:
    batch_id = make(store, 2, columns=("q", "answer"))
    claimed = store.claim(batch_id, 2)
    store.finish_row(batch_id, 0, claimed[0].task_id, RowOutcome("done", answer="model says", node="a", ttft_s=0.123456))
    store.finish_row(batch_id, 1, claimed[1].task_id, RowOutcome("failed", error="no route"))
    rows = list(csv.DictReader(io.StringIO(export_bytes(store, batch_id, "csv").decode())))
    assert rows[0]["answer"] == "answer0" and rows[0]["hydra_answer"] == "model says"
    assert rows[0]["ttft_s"] == "0.1235" and rows[1]["status"] == "failed" and rows[1]["error"] == "no route"
    lines = [json.loads(x) for x in export_bytes(store, batch_id, "jsonl").splitlines()]
    assert lines[1] == {"q": "q1", "answer": "answer1", "status": "failed", "hydra_answer": "", "node": None,
                        "model": None, "ttft_s": None, "duration_s": None, "tokens": None, "tokens_per_s": None,
                        "error": "no route"}


def test_the_window_is_the_slots_the_cluster_may_use_now() -> None:
    from types import SimpleNamespace

    from hydra.batch.manager import SlotWindow

    now = [0.0]
    snaps = iter([SimpleNamespace(max_concurrent=4, nodes=[SimpleNamespace(slots=3, healthy=True),
                                                            SimpleNamespace(slots=2, healthy=True)]),
                  SimpleNamespace(max_concurrent=64, nodes=[SimpleNamespace(slots=3, healthy=True),
                                                             SimpleNamespace(slots=8, healthy=False)])])
    window = SlotWindow(lambda: next(snaps), clock=lambda: now[0])  # type: ignore[arg-type, return-value]
    assert window() == 2 * 4      # two rows per slot of the global cap
    now[0] = 0.1
    assert window() == 2 * 4      # measured again only after WINDOW_TTL_S
    now[0] = 1.0
    assert window() == 2 * 3      # the healthy nodes' slots
