"""A full disk for tests, without touching the machine's disks.

``SmallDisk`` gives every History opened while it is installed a disk of ``pages`` pages:
SQLite's ``max_page_count`` on its write connections, so a write that needs one more page fails
with SQLITE_FULL, the very error a full disk gives. ``fill`` plays another program taking the
free space (a blob written through a connection of its own), ``free`` gives it back.

    with SmallDisk(pages=2000) as disk:
        history = History(path)
        disk.fill(path)      # the next write that needs a page fails
        disk.free(path)      # and succeeds again
"""
from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from types import TracebackType
from typing import Self

from .store import History

_FILLER = "test_disk_filler"


class SmallDisk:
    def __init__(self, pages: int | None = 2000) -> None:
        self.pages = pages   # None: no limit for connections opened from now on (a bigger disk)
        self._real = History._connect

    def __enter__(self) -> Self:
        real, disk = self._real, self

        def connect(history: History, *, readonly: bool = False) -> sqlite3.Connection:
            conn = real(history, readonly=readonly)
            if not readonly and disk.pages is not None:
                conn.execute(f"PRAGMA max_page_count={disk.pages}")
            return conn

        History._connect = connect  # type: ignore[method-assign,assignment]
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        History._connect = self._real  # type: ignore[method-assign]

    def fill(self, path: str | Path) -> None:
        """Take every free page, and a few more, as another program writing to the disk would."""
        assert self.pages is not None, "an unlimited disk cannot be filled"
        with contextlib.closing(_other(path)) as conn:
            conn.execute(f"CREATE TABLE IF NOT EXISTS {_FILLER} (payload BLOB)")
            size, free, page = (conn.execute(f"PRAGMA {name}").fetchone()[0]
                                for name in ("page_count", "freelist_count", "page_size"))
            taken = max(0, self.pages - size) + free + 8
            conn.execute(f"INSERT INTO {_FILLER} VALUES (zeroblob(?))", (taken * page,))

    def free(self, path: str | Path) -> None:
        """Give back what ``fill`` took: its pages go to the free list, for the next writes."""
        with contextlib.closing(_other(path)) as conn:
            conn.execute(f"DELETE FROM {_FILLER}")


def _other(path: str | Path) -> sqlite3.Connection:
    """A connection of another program to the same file."""
    return sqlite3.connect(path, isolation_level=None, timeout=10)
