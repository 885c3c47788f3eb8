"""Whether history can write, and the error a task gets when it cannot.

A task is never run without its row: when the store cannot commit (a full disk, an I/O error,
a corrupt or read-only file, a lock held too long by another process), the store is *degraded*
and new tasks are refused with ``HistoryUnavailableError`` until a write succeeds again. The
store probes now and then while degraded, so freeing disk space is enough to recover.
"""
from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass

from hydra.sollol.errors import HydraError

logger = logging.getLogger(__name__)

# SQLite's primary result codes that say "this store cannot write now", by name (3.11's sqlite_errorname,
# extended codes such as SQLITE_IOERR_WRITE reduced to their primary name).
_HINTS = {
    "SQLITE_FULL": "free disk space where HYDRA_DB is",
    "SQLITE_IOERR": "check the disk that holds HYDRA_DB",
    "SQLITE_CORRUPT": "restart Hydra: it moves a corrupt database aside and starts a new one",
    "SQLITE_NOTADB": "restart Hydra: it moves a corrupt database aside and starts a new one",
    "SQLITE_READONLY": "make HYDRA_DB and its folder writable",
    "SQLITE_CANTOPEN": "check that the folder of HYDRA_DB exists and is writable",
    "SQLITE_PERM": "make HYDRA_DB and its folder writable",
    "SQLITE_BUSY": "another process holds the database's write lock",
    "SQLITE_LOCKED": "another connection holds the database's write lock",
    "SQLITE_NOMEM": "the machine is out of memory",
    "SQLITE_PROTOCOL": "another process holds the database's write lock",
}
# A value or a statement this one write got wrong: the next write may well succeed.
_NOT_THE_STORE = (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError, sqlite3.DataError)


def error_code(exc: BaseException) -> str | None:
    """SQLite's primary result code of ``exc`` by name (``SQLITE_FULL``), or None."""
    name = getattr(exc, "sqlite_errorname", None)
    if not isinstance(name, str):
        return None
    return "_".join(name.split("_")[:2])


def degrades(exc: sqlite3.Error) -> bool:
    """Whether ``exc`` says the store cannot write (every later write would fail too)."""
    return not isinstance(exc, _NOT_THE_STORE)


def reason(exc: BaseException) -> str:
    """``exc`` in words a user can act on: SQLite's message and what to do about it."""
    hint = _HINTS.get(error_code(exc) or "")
    return f"{exc} ({hint})" if hint else str(exc)


class HistoryUnavailableError(HydraError):
    """History cannot record now; a task was refused rather than run without its row."""

    def __init__(self, reason: str, *, task_id: str | None = None, code: str | None = None) -> None:
        self.reason = reason
        self.task_id = task_id
        self.code = code
        super().__init__(f"history unavailable: {reason}" + (f"; task {task_id} was refused" if task_id else ""))

    def refusing(self, task_id: str) -> HistoryUnavailableError:
        """This error as the refusal of ``task_id``."""
        return HistoryUnavailableError(self.reason, task_id=task_id, code=self.code)


@dataclass(frozen=True)
class HistoryHealth:
    """What the status, the pages and the metrics show. ``since``: wall-clock time it went wrong."""

    ok: bool
    error: str | None = None
    since: float | None = None
    failed_writes: int = 0     # since it went wrong

    @property
    def state(self) -> str:
        return "ok" if self.ok else "degraded"

    def as_dict(self) -> dict[str, object]:
        return {"state": self.state, "ok": self.ok, "error": self.error, "since": self.since,
                "failed_writes": self.failed_writes}


class HealthTracker:
    """The store's health, changed by each write's outcome; logs each change once, not each write."""

    def __init__(self, path: str, clock: Callable[[], float]) -> None:
        self._path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._health = HistoryHealth(ok=True)

    @property
    def health(self) -> HistoryHealth:
        return self._health   # replaced whole, never mutated: no lock needed to read it

    def failed(self, error: str) -> None:
        with self._lock:
            before = self._health
            since = before.since if not before.ok else self._clock()
            self._health = HistoryHealth(ok=False, error=error, since=since, failed_writes=before.failed_writes + 1)
        if before.ok:
            logger.error("history %s cannot write: %s. New tasks are refused until it can write again.",
                         self._path, error)

    def succeeded(self) -> None:
        if self._health.ok:
            return
        with self._lock:
            before, self._health = self._health, HistoryHealth(ok=True)
        if not before.ok:
            down = self._clock() - (before.since or self._clock())
            logger.warning("history %s writes again after %.0f s (%d writes failed meanwhile); new tasks are "
                           "accepted", self._path, down, before.failed_writes)

    def refusal(self) -> HistoryUnavailableError | None:
        """The error a new task gets now, or None when history can write."""
        health = self._health
        return None if health.ok else HistoryUnavailableError(health.error or "history cannot write")
