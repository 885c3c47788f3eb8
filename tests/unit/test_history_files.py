"""The history file at start-up: a corrupt database is moved aside and a new one started (with a log
line saying where the old one went); a file that is not SQLite at all is refused, never moved."""
from __future__ import annotations

import logging
import os
import random
import sqlite3
from pathlib import Path

import pytest

from hydra.history import History, files
from hydra.service import Hydra
from hydra.sollol.errors import ConfigError
from hydra.sollol.types import Task, TaskEvent, TaskResult, TaskStatus

NOW = 1_800_000_000.0


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("HYDRA_", "SOLLOL_")) or name == "OLLAMA_HOST":
            monkeypatch.delenv(name)


def build(path: Path, tasks: int = 300) -> None:
    history = History(path)
    for i in range(tasks):
        task = Task(prompt=f"prompt {i} " * 20, id=f"t{i}")
        history.record_event(TaskEvent("queued", task))
        history.record_event(TaskEvent("finished", task, result=TaskResult(task.id, TaskStatus.DONE,
                                                                           text=f"answer {i} " * 40)))
    history.close()


def corrupt(path: Path, pages: int = 4) -> bytes:
    """Overwrite a few whole pages in the middle of the file with noise; the file's new bytes."""
    data = bytearray(path.read_bytes())
    page = 4096
    middle = (len(data) // page // 2) * page
    noise = random.Random(13).randbytes(pages * page)
    data[middle:middle + len(noise)] = noise
    path.write_bytes(bytes(data))
    return bytes(data)


def test_a_corrupt_database_is_moved_aside_and_a_new_one_started(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "hydra.db"
    build(db)
    damaged = corrupt(db)
    Path(f"{db}-wal").write_bytes(b"a WAL the old file left behind")
    with caplog.at_level(logging.ERROR, logger="hydra.history"):
        history = History(db, clock=lambda: NOW)
    try:
        assert history.recent_tasks() == []                  # a new, empty history ...
        history.record_event(TaskEvent("queued", Task(prompt="after", id="new")))
        assert [row["id"] for row in history.recent_tasks()] == ["new"]   # ... that works
    finally:
        history.close()
    [aside] = tmp_path.glob("hydra.db.corrupt-*")
    assert aside.read_bytes() == damaged                     # the old one is kept as it was
    # The old WAL is gone from the new file's side (SQLite dropped it at close, or it moved along).
    assert not Path(f"{db}-wal").exists() or Path(f"{db}-wal").read_bytes() != b"a WAL the old file left behind"
    [line] = [r.getMessage() for r in caplog.records if "corrupt" in r.getMessage()]
    assert f"history {db} is corrupt" in line and str(aside) in line and "new, empty history" in line


def test_the_service_starts_on_a_corrupt_database(tmp_path: Path) -> None:
    db = tmp_path / "hydra.db"
    build(db)
    corrupt(db)
    hydra = Hydra.from_env({"HYDRA_DB": str(db), "HYDRA_EMBEDDED_NODE": "off", "SOLLOL_DISCOVER_LOCALHOST": "false",
                            "HYDRA_GATEWAY_PORT": "0"}, no_route_wait_s=0.1).start()
    try:
        assert hydra.history_health().ok
        handle = hydra.submit("Say hi")
        assert hydra.history.get_task(handle.id) is not None
    finally:
        hydra.close()
    assert len(list(tmp_path.glob("hydra.db.corrupt-*"))) == 1


def test_moving_aside_takes_the_wal_and_shm_along(tmp_path: Path) -> None:
    """A WAL another connection kept open belongs to the old file: the new one must never replay it."""
    db = tmp_path / "hydra.db"
    for suffix, content in (("", b"db"), ("-wal", b"wal"), ("-shm", b"shm")):
        Path(f"{db}{suffix}").write_bytes(content)
    aside = files.move_aside(db, NOW)
    assert aside.name.startswith("hydra.db.corrupt-")
    assert [Path(f"{aside}{s}").read_bytes() for s in ("", "-wal", "-shm")] == [b"db", b"wal", b"shm"]
    assert not any(Path(f"{db}{s}").exists() for s in ("", "-wal", "-shm"))


def test_two_corrupt_starts_in_one_second_keep_both_files(tmp_path: Path) -> None:
    db = tmp_path / "hydra.db"
    for _ in range(2):
        build(db, tasks=200)
        corrupt(db)
        History(db, clock=lambda: NOW).close()
    assert len(list(tmp_path.glob("hydra.db.corrupt-*"))) == 2


def test_an_intact_database_is_kept(tmp_path: Path) -> None:
    db = tmp_path / "hydra.db"
    build(db, tasks=20)
    history = History(db)
    try:
        assert len(history.recent_tasks(limit=100)) == 20
    finally:
        history.close()
    assert not list(tmp_path.glob("*.corrupt-*"))


def test_a_file_that_is_not_sqlite_is_refused_and_left_alone(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes, not a database\n" * 200)
    with pytest.raises(ConfigError) as refused:
        History(notes)
    assert refused.value.variable == "HYDRA_DB" and str(notes) in str(refused.value)
    assert "is something else" in str(refused.value)
    assert notes.read_text() == "my notes, not a database\n" * 200
    assert not list(tmp_path.glob("*.corrupt-*"))


def test_the_check_finds_what_the_corruption_broke(tmp_path: Path) -> None:
    """The premise of the tests above: these bytes do break the file for SQLite itself."""
    db = tmp_path / "hydra.db"
    build(db)
    corrupt(db)
    with sqlite3.connect(db) as conn:
        try:
            result = conn.execute("PRAGMA quick_check").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            result = str(exc)
    assert result != "ok"
