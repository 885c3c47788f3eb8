"""History's health: which SQLite errors mean "history cannot write", what a refused task is told, and the
HTTP status the gateway gives it."""
from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator

import pytest

from hydra.gateway.admission import refusal_as_http_error
from hydra.history import HistoryUnavailableError, files
from hydra.history.health import HealthTracker, degrades, error_code, reason
from hydra.history.recorder import PendingRow


@pytest.fixture
def conn() -> Iterator[sqlite3.Connection]:
    c = sqlite3.connect(":memory:", isolation_level=None)
    c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)")
    yield c
    c.close()


def raised(conn: sqlite3.Connection, sql: str, *args: object) -> sqlite3.Error:
    with pytest.raises(sqlite3.Error) as caught:
        conn.execute(sql, args)
    return caught.value


def test_a_full_database_degrades_and_says_what_to_do(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT INTO t (v) VALUES ('a')")
    conn.execute(f"PRAGMA max_page_count={conn.execute('PRAGMA page_count').fetchone()[0]}")
    full = raised(conn, "INSERT INTO t (v) VALUES (?)", "x" * 20000)
    assert error_code(full) == "SQLITE_FULL" and degrades(full)
    assert reason(full) == "database or disk is full (free disk space where HYDRA_DB is)"


def test_a_value_this_write_got_wrong_does_not_degrade(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT INTO t (v) VALUES ('a')")
    duplicate = raised(conn, "INSERT INTO t (v) VALUES ('a')")
    assert error_code(duplicate) == "SQLITE_CONSTRAINT" and not degrades(duplicate)


def test_extended_codes_reduce_to_their_primary_one() -> None:
    error = sqlite3.OperationalError("disk I/O error")
    error.sqlite_errorname = "SQLITE_IOERR_WRITE"
    assert error_code(error) == "SQLITE_IOERR"
    assert reason(error) == "disk I/O error (check the disk that holds HYDRA_DB)"
    assert error_code(ValueError("not sqlite")) is None


def test_the_tracker_logs_each_change_once(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    tracker = HealthTracker("/data/hydra.db", lambda: now[0])
    with caplog.at_level(logging.INFO, logger="hydra.history"):
        tracker.succeeded()
        assert tracker.health.ok and tracker.refusal() is None
        for _ in range(3):
            tracker.failed("database or disk is full")
            now[0] += 10
        health = tracker.health
        assert (health.ok, health.since, health.failed_writes, health.error) == (
            False, 100.0, 3, "database or disk is full")
        assert health.as_dict() == {"state": "degraded", "ok": False, "error": "database or disk is full",
                                    "since": 100.0, "failed_writes": 3}
        refusal = tracker.refusal()
        assert isinstance(refusal, HistoryUnavailableError)
        assert str(refusal) == "history unavailable: database or disk is full"
        tracker.succeeded()
        tracker.succeeded()
    assert tracker.health.ok and tracker.health.as_dict()["state"] == "ok"
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert messages == [
        (logging.ERROR, ("history /data/hydra.db cannot write: database or disk is full. New tasks are refused "
                        "until it can write again.")),
        (logging.WARNING, ("history /data/hydra.db writes again after 30 s (3 writes failed meanwhile); new tasks "
                          "are accepted"))]


def test_a_refused_task_is_named_in_the_error() -> None:
    error = HistoryUnavailableError("database or disk is full", code="SQLITE_FULL").refusing("abc123")
    assert str(error) == "history unavailable: database or disk is full; task abc123 was refused"
    assert (error.task_id, error.code, error.reason) == ("abc123", "SQLITE_FULL", "database or disk is full")


def test_the_gateway_answers_a_history_refusal_with_503() -> None:
    error = refusal_as_http_error(HistoryUnavailableError("database or disk is full").refusing("t1"))
    assert error.status == 503 and error.kind == "service_unavailable"
    assert error.message == "history unavailable: database or disk is full; task t1 was refused"


def test_a_row_not_written_in_time_is_a_refusal() -> None:
    error = PendingRow("t9").wait(0.01)
    assert isinstance(error, HistoryUnavailableError) and error.task_id == "t9"
    assert "not written within 0 s" in str(error)
    settled = PendingRow("t10")
    settled.settle(None)
    assert settled.wait(0.01) is None


class _Reporting:
    """A connection whose quick_check reports damage as rows (as SQLite does for some kinds) instead of raising."""

    def execute(self, sql: str) -> list[tuple[str]]:
        assert sql.startswith("PRAGMA quick_check")
        return [("*** in database main ***",), ("Page 7: btreeInitPage() returns error code 11",)]


def test_damage_reported_as_rows_counts_as_corrupt(tmp_path: object) -> None:
    with pytest.raises(files.CorruptDatabaseError, match="Page 7") as caught:
        files.check_intact(_Reporting())  # type: ignore[arg-type]
    assert files.is_corrupt(caught.value, tmp_path)  # type: ignore[arg-type]
