"""SQLite history of tasks, routing decisions and saved settings; survives restarts and SIGKILL.

Durability: WAL with ``synchronous=NORMAL``. Each write is its own transaction
and is in the WAL file when the call returns, so a killed process loses
nothing it recorded (only an OS crash or power cut can drop the last few
commits, which is the price of not fsyncing on every event: a write costs tens
of microseconds instead of milliseconds). ``group()`` makes the writes of one
thread share one transaction (the event writer's group commit, recorder.py):
one BEGIN/COMMIT, one append to the WAL, for every event that queued meanwhile.

Several processes may share the file: each task row names its owner (owners.py),
and ``mark_interrupted`` at start-up ends only the tasks of owners that are gone.

Health: a write the database refuses (a full disk, an I/O error, a corrupt or read-only file)
raises ``HistoryUnavailableError`` and marks the store degraded (``health``); the service then
refuses new tasks rather than run them without a row. While degraded, the checkpoint thread
probes with a small write every second and the store recovers on the first that succeeds.

The WAL stays bounded. SQLite starts the WAL over only when a checkpoint has copied all of it
and no reader is still using it. A checkpoint on another thread races the continuous writer and
never reaches the WAL's end, so under load the WAL grew by every write (about 60 KB a task) until
the load stopped; and a checkpoint that waits for readers loses the race to a page that keeps
reading (SQLite's busy handler sleeps, the reader takes its lock again meanwhile). So every few
writes the writer looks at the WAL's size itself, between two of its transactions, and past
``WAL_TRUNCATE_BYTES`` holds new reads of this process back until those running end (a few
milliseconds), then empties the WAL (TRUNCATE): a pause of tens of milliseconds for readers and
writers per 16 MB of WAL (about 270 tasks).

At start-up a corrupt file is moved aside and a new one started (files.py).

Threads: router workers and Streamlit script threads call in at once. All
writes go through one connection guarded by a lock, so they never wait on
``SQLITE_BUSY`` among themselves. Reads borrow a connection from a small pool
and never take the writer's lock: in WAL readers do not block the writer, so a page
aggregating thousands of rows cannot stall a router thread recording an event (they
only wait, briefly, while the writer empties the WAL).
"""
from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.sollol.errors import ShutdownError
from hydra.sollol.types import TaskEvent, TaskStatus

from . import files, owners, rows
from .health import HealthTracker, HistoryHealth, HistoryUnavailableError, degrades, error_code, reason
from .queries import LIVE_STATUSES, HistoryQueries, as_json
from .readers import ReaderPool
from .rows import SCHEMA_VERSION

logger = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000      # another process (a second app) holding the write lock
CHECKPOINT_EVERY_S = 1.0     # idle checkpoints, and while degraded a write probe
WAL_TRUNCATE_BYTES = 16 * 2**20     # past this the writer empties the WAL
WAL_KEPT_BYTES = 4 * 2**20          # journal_size_limit: what is left of a WAL that started over by itself
WAL_CHECK_EVERY_WRITES = 32         # a stat of the WAL per this many writes: a few hundred KB of growth
READS_DRAIN_S = 1.0          # how long emptying the WAL waits for this process's running reads
TRUNCATE_WAIT_MS = 100       # ... and then for another process's readers (writes wait meanwhile)
PROBE_BYTES = 4096           # a probe write needs a page of its own, as a new task's row may



class History(HistoryQueries):
    """The store. ``path`` may be ``":memory:"`` (tests): reads then share the writer under the lock."""

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = str(path) if str(path) == ":memory:" else str(Path(path).expanduser())
        self._clock = clock
        self.owner = owners.new_owner()
        self._memory = self.path == ":memory:"
        self._lock = threading.Lock()          # the writer connection and _closed
        self._readers = ReaderPool(self.path, lambda: self._connect(readonly=True))
        self._closed = False
        self._stop = threading.Event()
        self._health = HealthTracker(self.path, clock)
        self._writes = 0                       # under _lock: writes since the WAL's size was last looked at
        self._group_thread: int | None = None  # under _lock: the thread whose group() transaction is open
        self._transactions = 0                 # under _lock: write transactions committed
        self._wal = f"{self.path}-wal"
        # Daemon: a History never closed must not hang interpreter exit, and dying
        # mid-checkpoint is safe (the WAL is replayed on the next open).
        self._checkpointer = threading.Thread(target=self._maintain, name="hydra-history-checkpoint", daemon=True)
        try:
            self._open_or_replace()
        except (OSError, sqlite3.Error, files.CorruptDatabaseError) as exc:
            self.close()
            raise files.open_error(Path(self.path), exc) from exc
        self._checkpointer.start()

    def _open_or_replace(self) -> None:
        try:
            self._open()
        except (sqlite3.DatabaseError, files.CorruptDatabaseError) as exc:
            if self._memory or not files.is_corrupt(exc, Path(self.path)):
                raise
            self._close_writer()
            aside = files.move_aside(Path(self.path), self._clock())
            logger.error("history %s is corrupt (%s): moved it to %s and started a new, empty history; the old "
                         "tasks and saved settings stay in the moved file", self.path, exc, aside)
            self._open()

    def _open(self) -> None:
        if not self._memory:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = self._connect()
        mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal" and not self._memory:
            logger.warning("history %s: journal_mode is %s, not wal; writes may block readers", self.path, mode)
        self._conn.execute("PRAGMA synchronous=NORMAL")
        if not self._memory:
            files.check_intact(self._conn)
        self._migrate()
        if not self._memory:
            # A checkpoint fsyncs the database (~20 ms here); SQLite would run it inside
            # whichever write crosses the threshold, stalling a router thread. A thread
            # of our own does it instead, PASSIVE so it never blocks a writer; the writer
            # truncates only a WAL that grew past WAL_TRUNCATE_BYTES all the same.
            self._conn.execute("PRAGMA wal_autocheckpoint=0")
            self._conn.execute(f"PRAGMA journal_size_limit={WAL_KEPT_BYTES}")
            # A WAL a killed process left is merged now, before anything reads: on a disk that was
            # full, its space is what the first writes (marking that process's tasks interrupted) need.
            self._truncate_wal()

    def _truncate_wal(self) -> None:
        """Copy the whole WAL into the database and empty it; waits TRUNCATE_WAIT_MS at most for another
        process's readers. Never raises: a checkpoint that fails leaves the WAL as it was."""
        self._conn.execute(f"PRAGMA busy_timeout={TRUNCATE_WAIT_MS}")
        try:
            if self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]:
                logger.debug("history %s: another process's reader kept the WAL from being emptied", self.path)
        except sqlite3.Error as exc:  # the disk full, say: the writes that fail say so themselves
            logger.debug("history %s: checkpoint failed: %s", self.path, exc)
        finally:
            self._conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")

    def _close_writer(self) -> None:
        conn = getattr(self, "_conn", None)   # absent when opening failed
        if conn is not None:
            conn.close()

    def _connect(self, *, readonly: bool = False) -> sqlite3.Connection:
        # isolation_level=None: no implicit transactions; writes say BEGIN/COMMIT themselves.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                               timeout=BUSY_TIMEOUT_MS / 1000)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        if readonly:
            conn.execute("PRAGMA query_only=ON")
        return conn

    def _migrate(self) -> None:
        with self._lock, self._transaction() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at REAL)")
            current = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
            if current > SCHEMA_VERSION:
                logger.warning("history %s has schema %d, newer than this Hydra's %d; using it as is",
                               self.path, current, SCHEMA_VERSION)
            for version, statements in rows.MIGRATIONS:
                if version > current:
                    for statement in statements:
                        conn.execute(statement)
                    conn.execute("INSERT INTO schema_version VALUES (?, ?)", (version, self._clock()))

    @property
    def schema_version(self) -> int:
        with self._read() as conn:
            return conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]

    # --- connections ------------------------------------------------------------
    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT on the writer connection; the caller holds ``_lock``."""
        conn = self._conn
        if conn.in_transaction:   # a ROLLBACK that failed (an I/O error) must not refuse every later write
            conn.execute("ROLLBACK")
        # IMMEDIATE takes the write lock up front, so a second process makes
        # us wait (busy_timeout) here rather than fail half-way.
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            # Also after a failed COMMIT: a transaction left open would refuse every later write.
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction. A database error becomes HistoryUnavailableError, and marks history
        degraded unless it is this write's own (a bad value): then the next write may well succeed.
        Inside ``group()`` on the same thread, a write joins the group's transaction instead."""
        if self._group_thread == threading.get_ident():
            self._writes += 1
            yield self._conn
            return
        with self._lock:
            if self._closed:
                raise ShutdownError(f"history {self.path} is closed")
            try:
                with self._transaction() as conn:
                    yield conn
            except sqlite3.Error as exc:
                if degrades(exc):
                    self._health.failed(reason(exc))
                raise HistoryUnavailableError(reason(exc), code=error_code(exc)) from exc
            self._health.succeeded()
            self._writes += 1
            self._transactions += 1
            if not self._memory and self._writes >= WAL_CHECK_EVERY_WRITES:
                self._writes = 0   # counts writes, grouped ones too: the WAL grows by rows, not commits
                self._bound_wal()

    @property
    def transactions(self) -> int:
        """Write transactions committed so far (a group commit counts once): how well writes are grouped."""
        return self._transactions

    @contextmanager
    def group(self) -> Iterator[None]:
        """Group commit: every write this thread makes inside shares one transaction, committed (all of
        them, or none: the error is raised here) when the block ends. Other threads' writes wait meanwhile."""
        with self._write():
            self._group_thread = threading.get_ident()
            try:
                yield
            finally:
                self._group_thread = None

    def _bound_wal(self) -> None:
        """Past WAL_TRUNCATE_BYTES, empty the WAL; the caller holds ``_lock``, between two transactions,
        so no write of ours races the checkpoint, and reads are held back so none starves it."""
        try:
            if os.stat(self._wal).st_size < WAL_TRUNCATE_BYTES:
                return
        except OSError:
            return
        with self._readers.held_back(READS_DRAIN_S):
            self._truncate_wal()

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        if self._memory:
            with self._lock:
                if self._closed:
                    raise ShutdownError(f"history {self.path} is closed")
                yield self._conn
            return
        with self._readers.read() as conn:
            yield conn

    def _maintain(self) -> None:
        """Every CHECKPOINT_EVERY_S: a PASSIVE checkpoint (file databases), and a probe while degraded."""
        conn = None
        failing = False    # log a failing checkpoint once, not every second
        try:
            while not self._stop.wait(CHECKPOINT_EVERY_S):
                if not self._health.health.ok:
                    self.probe()
                if self._memory:
                    continue
                try:
                    conn = conn or self._connect()
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    failing = False
                except sqlite3.Error as exc:
                    if not failing:
                        logger.warning("history checkpoint of %s failed (%s); retrying", self.path, exc)
                    failing = True
        finally:
            if conn is not None:
                conn.close()

    def close(self) -> None:
        self._stop.set()
        if self._checkpointer.is_alive():
            self._checkpointer.join()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._close_writer()
        self._readers.close()
        owners.release(self.owner)  # what it left unfinished may now be marked interrupted

    # --- health -----------------------------------------------------------------
    @property
    def health(self) -> HistoryHealth:
        """ok, or degraded since when and why; cheap (status, pages and metrics read it often)."""
        return self._health.health

    def require_writable(self, task_id: str | None = None) -> None:
        """Raise HistoryUnavailableError while degraded (naming ``task_id``): a new task is refused at once."""
        refusal = self._health.refusal()
        if refusal is not None:
            raise refusal.refusing(task_id) if task_id else refusal

    def probe(self) -> bool:
        """One small write that needs a page of its own: whether history can write now (it recovers if so)."""
        try:
            with self._write() as conn:
                conn.execute("INSERT INTO write_probe (payload) VALUES (zeroblob(?))", (PROBE_BYTES,))
                conn.execute("DELETE FROM write_probe")
        except (HistoryUnavailableError, ShutdownError):
            return False
        return True

    # --- events -----------------------------------------------------------------
    def write_event(self, event: TaskEvent) -> None:
        """Record one router event. HistoryUnavailableError when the database refuses it, ShutdownError
        once closed; an event kind history does not keep is ignored."""
        if event.kind not in rows.EVENT_KINDS:
            logger.debug("history ignores event kind %r (task %s)", event.kind, event.task.id)
            return
        now = self._clock()
        with self._write() as conn:
            rows.write_event(conn, event, self.owner, now)

    def record_event(self, event: TaskEvent) -> bool:
        """``write_event`` for a listener that must not raise: False, and a log line, when not recorded."""
        try:
            self.write_event(event)
        except ShutdownError:
            logger.warning("history closed; %s event of task %s not recorded", event.kind, event.task.id)
            return False
        except HistoryUnavailableError as exc:
            logger.warning("history did not record the %s event of task %s: %s", event.kind, event.task.id,
                           exc.reason)
            return False
        return True

    # --- direct writes from the service -----------------------------------------------
    def set_reasoning(self, task_id: str, reasoning: Mapping[str, Any]) -> bool:
        """Store the reasoning assessment; call after submit. False if the task is unknown."""
        with self._write() as conn:
            cur = conn.execute("UPDATE tasks SET reasoning_json = ? WHERE id = ?", (as_json(dict(reasoning)), task_id))
        return cur.rowcount > 0

    def save_partial(self, task_id: str, text: str, thinking: str = "") -> bool:
        """Partial output so far, so a crash keeps it. Ignored once the task has finished,
        because a throttled save can race the final result."""
        with self._write() as conn:
            cur = conn.execute("UPDATE tasks SET text = ?, thinking = ? WHERE id = ? AND status IN (?, ?)",
                               (text, thinking, task_id, *LIVE_STATUSES))
        return cur.rowcount > 0

    def mark_interrupted(self) -> int:
        """At start-up: tasks left queued or running by a History that is gone (a stopped or killed
        process, or one closed) can never finish. Those of another live process sharing the
        database are its own business and are left alone."""
        with self._write() as conn:
            owners_now = [row[0] for row in conn.execute(
                "SELECT DISTINCT owner FROM tasks WHERE status IN (?, ?)", LIVE_STATUSES)]
            gone = [owner for owner in owners_now if owner != self.owner and not owners.alive(owner)]
            if not gone:
                return 0
            named = [owner for owner in gone if owner is not None]
            cur = conn.execute(
                "UPDATE tasks SET error = 'Hydra stopped while this task was ' || status || '; resubmit it',"
                f" status = ?, finished_at = ? WHERE status IN (?, ?) AND (owner IN ({','.join('?' * len(named))})"
                + (" OR owner IS NULL)" if None in gone else ")"),
                (TaskStatus.INTERRUPTED.value, self._clock(), *LIVE_STATUSES, *named))
        return cur.rowcount

    # --- settings ---------------------------------------------------------------------
    def save_setting(self, key: str, value: str) -> None:
        with self._write() as conn:
            conn.execute("INSERT INTO settings VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE"
                         " SET value = excluded.value, updated_at = excluded.updated_at",
                         (key, str(value), self._clock()))

    def delete_setting(self, key: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM settings WHERE key = ?", (key,))

    def load_settings(self) -> dict[str, str]:
        with self._read() as conn:
            return {row["key"]: row["value"] for row in conn.execute("SELECT key, value FROM settings ORDER BY key")}
