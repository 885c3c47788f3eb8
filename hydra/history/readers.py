"""The history's read connections: a small pool the pages borrow from, and a way for the writer to
hold new reads back while it empties the WAL (a reader that keeps reading would starve it)."""
from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from hydra.sollol.errors import ShutdownError

logger = logging.getLogger(__name__)

MAX_IDLE_READERS = 4


class ReaderPool:
    def __init__(self, path: str, connect: Callable[[], sqlite3.Connection]) -> None:
        self._path = path
        self._connect = connect
        # Its own lock, not the writer's: reads never queue behind writes.
        self._changed = threading.Condition(threading.Lock())
        self._idle: list[sqlite3.Connection] = []
        self._reading = 0        # reads running now
        self._held = False       # new reads wait while this is set
        self._closed = False

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read-only connection for the length of the block (every row read inside it)."""
        conn = self._borrow()
        try:
            yield conn
        finally:
            self._give_back(conn)

    @contextmanager
    def held_back(self, drain_s: float) -> Iterator[None]:
        """New reads wait for the length of the block, which starts once the running ones have ended
        (or after ``drain_s``, whichever comes first)."""
        with self._changed:
            self._held = True
            if not self._changed.wait_for(lambda: self._reading == 0, drain_s):
                logger.debug("history %s: a read is still running after %.1f s", self._path, drain_s)
        try:
            yield
        finally:
            with self._changed:
                self._held = False
                self._changed.notify_all()

    def close(self) -> None:
        """Idle connections are closed now; borrowed ones by their borrower on return."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()   # a read held back: it is refused now
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _borrow(self) -> sqlite3.Connection:
        with self._changed:
            self._changed.wait_for(lambda: not self._held or self._closed)
            if self._closed:
                raise ShutdownError(f"history {self._path} is closed")
            conn = self._idle.pop() if self._idle else None
            self._reading += 1
        if conn is not None:
            return conn
        try:
            return self._connect()
        except BaseException:
            self._give_back(None)
            raise

    def _give_back(self, conn: sqlite3.Connection | None) -> None:
        with self._changed:
            self._reading -= 1
            self._changed.notify_all()
            if conn is not None and not self._closed and len(self._idle) < MAX_IDLE_READERS:
                self._idle.append(conn)
                return
        if conn is not None:
            conn.close()
