"""The database file itself, at start-up: a corrupt one is moved aside (and a new one started), an
open that fails says why in terms of HYDRA_DB.

Why move aside rather than refuse: a corrupt history would stop every start of the app until
someone repairs it by hand, while nothing in it is needed to run tasks. The old file keeps its
tasks and saved settings for whoever wants them (the ``sqlite3`` shell's ``.recover`` salvages
what is readable), and the log line says where it went.
"""
from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import time
from pathlib import Path

from hydra.sollol.errors import ConfigError

from .health import error_code, reason

SQLITE_MAGIC = b"SQLite format 3\x00"
_QUICK_CHECK_ERRORS = 5   # enough to say what is wrong; quick_check stops after this many
_DISK_ERRORS = {"SQLITE_FULL", "SQLITE_IOERR", "SQLITE_CANTOPEN"}


class CorruptDatabaseError(Exception):
    """``PRAGMA quick_check`` found damage; internal to opening a History."""


def check_intact(conn: sqlite3.Connection) -> None:
    """Raise CorruptDatabaseError unless SQLite's structural check of every page passes.
    It reads the whole file once (about a second per GB when cached), at start-up only."""
    problems = [str(row[0]) for row in conn.execute(f"PRAGMA quick_check({_QUICK_CHECK_ERRORS})")]
    if problems != ["ok"]:
        raise CorruptDatabaseError("; ".join(problems))


def _has_sqlite_header(path: Path) -> bool:
    try:
        with path.open("rb") as file:
            return file.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def is_corrupt(exc: BaseException, path: Path) -> bool:
    """Whether ``exc``, met opening ``path``, says it is a damaged SQLite database (ours to move aside).
    A file that is not SQLite at all is someone else's: never moved."""
    if isinstance(exc, CorruptDatabaseError):
        return True
    code = error_code(exc)
    return code == "SQLITE_CORRUPT" or (code == "SQLITE_NOTADB" and _has_sqlite_header(path))


def move_aside(path: Path, now: float) -> Path:
    """Rename ``path`` (and its -wal and -shm) to ``<path>.corrupt-<local time>``; the new name."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    aside = Path(f"{path}.corrupt-{stamp}")
    n = 1
    while aside.exists():
        aside, n = Path(f"{path}.corrupt-{stamp}-{n}"), n + 1
    os.replace(path, aside)
    for suffix in ("-wal", "-shm"):  # the WAL belongs to the old file: a new one must never replay it
        companion = Path(f"{path}{suffix}")
        if companion.exists():
            os.replace(companion, f"{aside}{suffix}")
    return aside


def _free_bytes(path: Path) -> int | None:
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def open_error(path: Path, exc: BaseException) -> ConfigError:
    """Why ``path`` cannot serve as HYDRA_DB, naming the variable and the path (no traceback needed)."""
    code = error_code(exc)
    if code == "SQLITE_NOTADB":
        return ConfigError("HYDRA_DB", str(path), "a SQLite database file (this file is something else: "
                                                  "point HYDRA_DB at another path)")
    detail = str(exc) if code in _DISK_ERRORS else reason(exc)
    if code in _DISK_ERRORS or (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)):
        free = _free_bytes(path)
        if free is not None:
            detail += f"; {free / 2**20:.1f} MB free on its disk"
    return ConfigError("HYDRA_DB", str(path), f"a SQLite database file Hydra can create and write ({detail})")
