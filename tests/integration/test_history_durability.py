"""History never lies: a full disk refuses tasks instead of running them without a row, shows in the
status and the metrics, recovers once space is freed, survives the restart; the WAL stays bounded.

The "disk" is SQLite's max_page_count on the history's write connections (hydra.history.testing):
a write that needs one more page fails with SQLITE_FULL, the code a real full disk gives.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.history_wal import TARGET_WAL_BYTES, drive
from hydra.gateway import Gateway
from hydra.history import History, HistoryUnavailableError
from hydra.history.recorder import EventWriter
from hydra.history.testing import SmallDisk
from hydra.service import Hydra
from hydra.sim import SimCluster
from hydra.sollol.errors import HydraError
from hydra.sollol.types import Task, TaskEvent, TaskResult, TaskStatus

TIMEOUT = 20.0
PAGES = 3000   # 12 MB of 4 KB pages: room for every test's tasks until it fills the disk


@pytest.fixture
def disk() -> Iterator[SmallDisk]:
    with SmallDisk(pages=PAGES) as small:
        yield small


def env(cluster: SimCluster, db: Path) -> dict[str, str]:
    return {"SOLLOL_NODES": cluster.sollol_nodes(), "HYDRA_DB": str(db), "HYDRA_EMBEDDED_NODE": "off",
            "SOLLOL_DISCOVER_LOCALHOST": "false", "HYDRA_GATEWAY_PORT": "0"}


@pytest.fixture
def hydra(seed: SimCluster, tmp_path: Path, disk: SmallDisk, eventually: Callable[..., Any]) -> Iterator[Hydra]:
    service = Hydra.from_env(env(seed, tmp_path / "h.db"), poll_interval_s=0.1).start()
    eventually(lambda: len(service.snapshot().healthy_nodes) == 2, what="both nodes healthy")
    yield service
    service.close()


def queued(task_id: str, prompt: str = "Explain routing") -> TaskEvent:
    return TaskEvent("queued", Task(prompt=prompt, id=task_id))


# --- the store ---

def test_a_full_disk_degrades_history_until_space_is_freed(tmp_path: Path, disk: SmallDisk,
                                                           eventually: Callable[..., Any],
                                                           caplog: pytest.LogCaptureFixture) -> None:
    history = History(tmp_path / "h.db")
    try:
        history.write_event(queued("before"))
        assert history.health.ok and history.health.state == "ok"
        disk.fill(history.path)
        with caplog.at_level(logging.INFO, logger="hydra.history"):
            for i in range(3):
                with pytest.raises(HistoryUnavailableError) as refused:
                    history.write_event(queued(f"full-{i}", prompt="x" * 5000))  # a row that needs a page
                assert refused.value.code == "SQLITE_FULL"
                assert str(refused.value).startswith("history unavailable: database or disk is full")
            health = history.health
            assert (health.ok, health.state, health.failed_writes) == (False, "degraded", 3)
            assert health.error is not None and "full" in health.error and health.since is not None
            with pytest.raises(HistoryUnavailableError, match="database or disk is full"):
                history.require_writable()
            assert not history.record_event(queued("listener", prompt="y" * 5000))  # the listener form never raises
            # Said once, not per write.
            assert sum("cannot write" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR) == 1

            disk.free(history.path)
            eventually(lambda: history.health.ok, timeout=TIMEOUT, what="the probe to see free space")
            # The probe's thread says so just after it flips the state: wait for the line, bounded.
            eventually(lambda: any("writes again" in r.getMessage() for r in caplog.records), timeout=TIMEOUT,
                       what="the log line that history writes again")
        history.require_writable()
        history.write_event(queued("after", prompt="z" * 5000))
        assert {r["id"] for r in history.recent_tasks()} == {"before", "after"}
    finally:
        history.close()


def test_the_writer_refuses_a_row_it_cannot_write_and_keeps_the_other_events(
        tmp_path: Path, disk: SmallDisk, eventually: Callable[..., Any]) -> None:
    history = History(tmp_path / "h.db")
    writer = EventWriter(history)
    writer.start()
    try:
        running = Task(prompt="a long answer", id="running")
        pending = writer.expect(running.id)
        writer.on_event(TaskEvent("queued", running))
        assert pending.wait(TIMEOUT) is None
        disk.fill(history.path)
        # It finishes while the disk is full: its final row cannot be written now ...
        writer.on_event(TaskEvent("finished", running, result=TaskResult(running.id, TaskStatus.DONE,
                                                                         text="the answer " * 600)))
        refused = Task(prompt="x" * 5000, id="refused")
        pending = writer.expect(refused.id)
        writer.on_event(TaskEvent("queued", refused))
        error = pending.wait(TIMEOUT)
        assert isinstance(error, HistoryUnavailableError) and "full" in str(error)
        writer.on_event(TaskEvent("finished", refused, result=TaskResult(refused.id, TaskStatus.CANCELLED)))
        assert history.get_task(running.id)["status"] == "queued"  # type: ignore[index]

        disk.free(history.path)
        # ... and is written once history can write again; the refused task leaves no row at all.
        eventually(lambda: (history.get_task(running.id) or {}).get("status") == "done", timeout=TIMEOUT,
                   what="the kept finished event to be written")
        assert history.get_task(running.id)["text"].startswith("the answer")  # type: ignore[index]
    finally:
        writer.close()
        history.close()
    assert History(tmp_path / "h.db").get_task("refused") is None


def test_the_wal_stays_bounded_under_sustained_load(tmp_path: Path) -> None:
    """3,000 tasks' events at full speed while a page reads all the time (it grew to ~200 MB before)."""
    report = drive(tmp_path / "h.db", tasks=3000)
    assert report.reads > 0, "the reader never ran: the test proves nothing"
    assert report.max_wal_bytes < TARGET_WAL_BYTES, f"WAL reached {report.max_wal_bytes / 2**20:.1f} MB"


# --- the service and the gateway ---

def test_submits_after_the_disk_fills_are_refused_and_none_runs_without_a_row(
        hydra: Hydra, disk: SmallDisk, eventually: Callable[..., Any]) -> None:
    accepted = [hydra.submit("Say hi", max_tokens=4) for _ in range(5)]
    disk.fill(hydra.history.path)
    refusals: list[HistoryUnavailableError] = []
    for _ in range(10):
        try:
            accepted.append(hydra.submit("Say hi " + "x" * 5000, max_tokens=4))
        except HistoryUnavailableError as exc:
            refusals.append(exc)
    assert len(refusals) == 10, "a task ran although the disk was full"
    assert all("database or disk is full" in str(e) and e.task_id for e in refusals)
    # The one whose own row failed was on its way to a node: cancelled, it holds no slot now.
    eventually(lambda: hydra.snapshot().in_flight == 0 and hydra.snapshot().queue_depth == 0,
               what="the refused tasks to leave the router")
    assert all(hydra.history.get_task(e.task_id) is None for e in refusals if e.task_id)
    for handle in accepted:
        assert handle.result(TIMEOUT).status is TaskStatus.DONE
        assert hydra.history.get_task(handle.id) is not None

    disk.free(hydra.history.path)
    eventually(lambda: hydra.history_health().ok, timeout=TIMEOUT, what="history to recover")
    after = hydra.submit("Say hi again", max_tokens=4)
    assert hydra.history.get_task(after.id) is not None
    assert after.result(TIMEOUT).status is TaskStatus.DONE


def _generate(url: str, i: int) -> tuple[int, str, str | None]:
    response = httpx.post(url + "/api/generate", json={"model": "llama3.2:3b", "prompt": f"hello {i} " + "x" * 3000,
                                                       "stream": False, "options": {"num_predict": 4}},
                          timeout=TIMEOUT)
    return response.status_code, response.text, response.headers.get("X-Hydra-Task-Id")


def test_the_gateway_answers_503_history_unavailable_and_never_200_without_a_row(
        hydra: Hydra, disk: SmallDisk, eventually: Callable[..., Any]) -> None:
    with Gateway(hydra, port=0) as gateway:
        url = gateway.url
        assert httpx.get(url + "/api/hydra/status").json()["history"]["state"] == "ok"
        assert "hydra_history_degraded 0.0" in httpx.get(url + "/metrics").text

        # The audit's run: many requests while the disk fills under them.
        with ThreadPoolExecutor(8) as pool:
            first = list(pool.map(lambda i: _generate(url, i), range(20)))
            disk.fill(hydra.history.path)
            rest = list(pool.map(lambda i: _generate(url, i), range(20, 60)))
        answers = first + rest
        for status, body, task_id in answers:
            if status == 200:
                assert task_id is not None and hydra.history.get_task(task_id) is not None, "a 200 without a row"
            else:
                assert status == 503, body
                assert json.loads(body)["error"].startswith("history unavailable: database or disk is full")
        assert sum(s == 200 for s, _, _ in first) == 20
        assert sum(s == 503 for s, _, _ in rest) >= 39   # at most one written before the disk was full

        status = httpx.get(url + "/api/hydra/status").json()["history"]
        assert status["state"] == "degraded" and "full" in status["error"] and status["since"] is not None
        assert "hydra_history_degraded 1.0" in httpx.get(url + "/metrics").text
        openai = httpx.post(url + "/v1/chat/completions", json={
            "model": "llama3.2:3b", "messages": [{"role": "user", "content": "hi"}], "stream": True})
        assert openai.status_code == 503   # a stream too: refused before its 200, not an error line after
        assert openai.json()["error"]["message"].startswith("history unavailable: ")

        disk.free(hydra.history.path)
        eventually(lambda: httpx.get(url + "/api/hydra/status").json()["history"]["state"] == "ok", timeout=TIMEOUT,
                   what="the status to show history recovered")
        assert "hydra_history_degraded 0.0" in httpx.get(url + "/metrics").text
        status_code, _, task_id = _generate(url, 99)
        assert status_code == 200 and task_id is not None and hydra.history.get_task(task_id) is not None


def test_a_restart_after_a_full_disk_leaves_no_row_queued_or_running(
        clusters: Callable[..., SimCluster], tmp_path: Path, disk: SmallDisk, eventually: Callable[..., Any]) -> None:
    slow = clusters("seed", time_scale=0.5)
    db = tmp_path / "h.db"
    first = Hydra.from_env(env(slow, db), poll_interval_s=0.1).start()
    try:
        eventually(lambda: len(first.snapshot().healthy_nodes) == 2, what="both nodes healthy")
        handles = [first.submit(f"Write a long essay number {i}", max_tokens=400) for i in range(6)]
        eventually(lambda: any(h.status is TaskStatus.RUNNING for h in handles), what="a task running")
        disk.fill(db)
        for i in range(3):  # the disk is full now: refused, whatever the rows of the running tasks become
            with pytest.raises(HistoryUnavailableError):
                first.submit(f"Another long essay {i} " + "x" * 5000, max_tokens=400)
    finally:
        first.close()   # its tasks end now, while history may not be able to write that
    disk.free(db)
    second = Hydra.from_env(env(slow, db), poll_interval_s=0.1).start()   # no traceback: it starts
    try:
        rows = {row["id"]: row for row in second.history.recent_tasks(limit=100)}
    finally:
        second.close()
    assert {h.id for h in handles} <= set(rows)
    assert all(row["status"] not in ("queued", "running") for row in rows.values()), rows


def _left_queued(db: Path, count: int) -> None:
    """What a run that died on a full disk leaves: many rows still queued (packed into full pages)."""
    history = History(db)
    for i in range(count):
        history.record_event(queued(f"left-{i}", prompt=f"prompt {i}"))
    history.close()


def test_a_start_on_a_full_disk_says_so_and_the_next_marks_the_rows_interrupted(
        tmp_path: Path, disk: SmallDisk, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from hydra import cli

    db = tmp_path / "h.db"
    _left_queued(db, 1500)
    disk.fill(db)   # marking 1,500 rows interrupted needs pages the disk no longer has
    for name, value in {"HYDRA_DB": str(db), "HYDRA_EMBEDDED_NODE": "off", "SOLLOL_DISCOVER_LOCALHOST": "false",
                        "HYDRA_GATEWAY_PORT": "0"}.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["submit", "hello"]) == 2
    err = capsys.readouterr().err
    assert f"HYDRA_DB={db} cannot be written at start-up: database or disk is full" in err, err
    assert "Traceback" not in err

    disk.free(db)
    hydra = Hydra.from_env().start()
    try:
        rows = hydra.history.recent_tasks(limit=2000)
    finally:
        hydra.close()
    assert len(rows) == 1500
    assert all(row["status"] == "interrupted" and "resubmit" in row["error"] for row in rows)


def test_a_disk_too_full_to_create_the_database_is_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "new" / "h.db"
    with SmallDisk(pages=1), pytest.raises(HydraError) as refused:
        Hydra.from_env({"HYDRA_DB": str(db), "HYDRA_EMBEDDED_NODE": "off", "SOLLOL_DISCOVER_LOCALHOST": "false"})
    message = str(refused.value)
    assert message.startswith(f"HYDRA_DB={str(db)!r} is not valid") and "database or disk is full" in message
    assert "MB free on its disk" in message
