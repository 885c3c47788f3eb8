"""SQLite history of tasks, routing decisions and saved settings; survives restarts and SIGKILL.

Durability: WAL with ``synchronous=NORMAL``. Each write is its own transaction
and is in the WAL file when the call returns, so a killed process loses
nothing it recorded (only an OS crash or power cut can drop the last few
commits, which is the price of not fsyncing on every event: a write costs tens
of microseconds instead of milliseconds).

Several processes may share the file: each task row names its owner (owners.py),
and ``mark_interrupted`` at start-up ends only the tasks of owners that are gone.

Threads: router workers and Streamlit script threads call in at once. All
writes go through one connection guarded by a lock, so they never wait on
``SQLITE_BUSY`` among themselves. Reads borrow a connection from a small pool
and never take the writer's lock: in WAL readers do not block the writer, so a page
aggregating thousands of rows cannot stall a router thread recording an event.
"""
from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.sollol.errors import ConfigError, ShutdownError
from hydra.sollol.types import RoutingDecision, Task, TaskEvent, TaskResult, TaskStatus

from . import owners
from .queries import LIVE_STATUSES, HistoryQueries, as_json, as_text

logger = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000      # another process (a second app) holding the write lock
_MAX_IDLE_READERS = 4
CHECKPOINT_EVERY_S = 1.0

# Each migration runs once, in order, inside one transaction; append, never edit.
_MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (1, (
        """CREATE TABLE tasks (
            id TEXT PRIMARY KEY, prompt TEXT NOT NULL DEFAULT '', messages_json TEXT, options_json TEXT,
            status TEXT NOT NULL, node TEXT, model TEXT, mode TEXT, task_type TEXT, priority INTEGER,
            submitted_at REAL NOT NULL, started_at REAL, finished_at REAL,
            ttft_s REAL, duration_s REAL, queued_s REAL, eval_count INTEGER, prompt_eval_count INTEGER,
            tokens_per_s REAL, attempts INTEGER NOT NULL DEFAULT 0, failovers INTEGER NOT NULL DEFAULT 0,
            text TEXT NOT NULL DEFAULT '', thinking TEXT NOT NULL DEFAULT '', error TEXT,
            reasoning_json TEXT, thinking_tokens INTEGER NOT NULL DEFAULT 0)""",
        "CREATE INDEX tasks_submitted ON tasks (submitted_at)",
        "CREATE INDEX tasks_status ON tasks (status)",
        """CREATE TABLE decisions (
            id INTEGER PRIMARY KEY AUTOINCREMENT, task_id TEXT NOT NULL, time REAL NOT NULL,
            mode TEXT, task_type TEXT, node TEXT, model TEXT, reason TEXT, attempt INTEGER,
            priority INTEGER, candidates_json TEXT)""",
        "CREATE INDEX decisions_time ON decisions (time)",
        "CREATE INDEX decisions_task ON decisions (task_id)",
        "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at REAL NOT NULL)",
    )),
    # Which History recorded the task (owners.py): a process starting on a shared database
    # interrupts only the tasks of owners that are gone.
    (2, ("ALTER TABLE tasks ADD COLUMN owner TEXT",)),
)
SCHEMA_VERSION = _MIGRATIONS[-1][0]


class History(HistoryQueries):
    """The store. ``path`` may be ``":memory:"`` (tests): reads then share the writer under the lock."""

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = str(path) if str(path) == ":memory:" else str(Path(path).expanduser())
        self._clock = clock
        self.owner = owners.new_owner()
        self._memory = self.path == ":memory:"
        self._lock = threading.Lock()          # the writer connection and _closed
        self._pool_lock = threading.Lock()     # idle readers; separate so reads never queue behind writes
        self._idle: list[sqlite3.Connection] = []
        self._closed = False
        self._stop = threading.Event()
        # Daemon: a History never closed must not hang interpreter exit, and dying
        # mid-checkpoint is safe (the WAL is replayed on the next open).
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, name="hydra-history-checkpoint",
                                              daemon=True)
        try:
            if not self._memory:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._conn = self._connect()
            mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal" and not self._memory:
                logger.warning("history %s: journal_mode is %s, not wal; writes may block readers", self.path, mode)
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
            if not self._memory:
                # A checkpoint fsyncs the database (~20 ms here); SQLite would run it inside
                # whichever write crosses the threshold, stalling a router thread. A thread
                # of our own does it instead, PASSIVE so it never blocks a writer.
                self._conn.execute("PRAGMA wal_autocheckpoint=0")
                self._checkpointer.start()
        except (OSError, sqlite3.Error) as exc:
            self.close()
            raise ConfigError("HYDRA_DB", self.path, f"a writable SQLite database file ({exc})") from exc

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
        with self._write() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at REAL)")
            current = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
            if current > SCHEMA_VERSION:
                logger.warning("history %s has schema %d, newer than this Hydra's %d; using it as is",
                               self.path, current, SCHEMA_VERSION)
            for version, statements in _MIGRATIONS:
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
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._closed:
                raise ShutdownError(f"history {self.path} is closed")
            # IMMEDIATE takes the write lock up front, so a second process makes
            # us wait (busy_timeout) here rather than fail half-way.
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                # Also after a failed COMMIT: a transaction left open would refuse every later write.
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        if self._memory:
            with self._lock:
                if self._closed:
                    raise ShutdownError(f"history {self.path} is closed")
                yield self._conn
            return
        with self._pool_lock:
            if self._closed:
                raise ShutdownError(f"history {self.path} is closed")
            conn = self._idle.pop() if self._idle else None
        conn = conn or self._connect(readonly=True)
        try:
            yield conn
        finally:
            with self._pool_lock:
                keep = not self._closed and len(self._idle) < _MAX_IDLE_READERS
                if keep:
                    self._idle.append(conn)
            if not keep:
                conn.close()

    def _checkpoint_loop(self) -> None:
        conn = self._connect()
        try:
            while not self._stop.wait(CHECKPOINT_EVERY_S):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:
                    logger.warning("history checkpoint of %s failed; retrying", self.path, exc_info=True)
        finally:
            conn.close()

    def close(self) -> None:
        self._stop.set()
        if self._checkpointer.is_alive():
            self._checkpointer.join()
        with self._lock, self._pool_lock:
            if self._closed:
                return
            self._closed = True
            idle, self._idle = self._idle, []
            conn = getattr(self, "_conn", None)   # absent when opening failed
            if conn is not None:
                conn.close()
        owners.release(self.owner)  # what it left unfinished may now be marked interrupted
        # Readers still borrowed are closed by their borrower on return (_closed is set).
        for reader in idle:
            reader.close()

    # --- events -----------------------------------------------------------------
    def record_event(self, event: TaskEvent) -> None:
        """The router's listener. Never raises for a database error: a full disk must not
        fail the task itself; the error is logged with its traceback instead."""
        handler = _HANDLERS.get(event.kind)
        if handler is None:
            logger.debug("history ignores event kind %r (task %s)", event.kind, event.task.id)
            return
        try:
            with self._write() as conn:
                handler(self, conn, event)
        except ShutdownError:
            logger.warning("history closed; %s event of task %s not recorded", event.kind, event.task.id)
        except sqlite3.Error:
            logger.exception("history could not record %s event of task %s", event.kind, event.task.id)

    def _on_queued(self, conn: sqlite3.Connection, event: TaskEvent) -> None:
        _insert_task(conn, event.task, self.owner)

    def _on_routed(self, conn: sqlite3.Connection, event: TaskEvent) -> None:
        decision = event.decision
        if decision is None:
            return
        _insert_decision(conn, decision)
        # The decision resolves the mode and task type a task left open (None).
        conn.execute("UPDATE tasks SET mode = ?, task_type = ? WHERE id = ?",
                     (as_text(decision.mode), decision.task_type, decision.task_id))

    def _on_running(self, conn: sqlite3.Connection, event: TaskEvent) -> None:
        conn.execute(
            "UPDATE tasks SET status = 'running', node = ?, model = ?, attempts = MAX(attempts, ?),"
            " started_at = COALESCE(started_at, ?) WHERE id = ? AND status IN (?, ?)",
            (event.node, event.model, event.attempt, self._clock(), event.task.id, *LIVE_STATUSES))

    def _on_restart(self, conn: sqlite3.Connection, event: TaskEvent) -> None:
        # The answer starts again on another node: the partial text saved so far is void.
        conn.execute("UPDATE tasks SET failovers = failovers + 1, text = '', thinking = '' WHERE id = ?",
                     (event.task.id,))

    def _on_finished(self, conn: sqlite3.Connection, event: TaskEvent) -> None:
        result = event.result
        if result is None:
            return
        _insert_task(conn, event.task, self.owner)   # a no-op unless history missed "queued"
        _update_result(conn, result, self._clock())

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


def _insert_task(conn: sqlite3.Connection, task: Task, owner: str) -> None:
    options = {"max_tokens": task.max_tokens, "think": task.think, "options": task.options,
               "model": task.model, "task_type": task.task_type, "mode": as_text(task.mode),
               "thinking_budget": task.thinking_budget, "system": task.system,
               "min_success_rate": task.min_success_rate, "deadline": task.deadline,
               "format": task.format, "keep_alive": task.keep_alive, "tools": task.tools}
    # The service puts the reasoning engine's verdict in task.meta["reasoning"]: one write, not two.
    reasoning = task.meta.get("reasoning") if isinstance(task.meta, dict) else None
    conn.execute(
        "INSERT INTO tasks (id, prompt, messages_json, options_json, status, model, mode, task_type, priority,"
        " submitted_at, reasoning_json, owner) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO NOTHING",
        (task.id, task.prompt or "", as_json(task.messages), as_json(options), TaskStatus.QUEUED.value,
         task.model, as_text(task.mode), task.task_type, task.priority, task.submitted_at, as_json(reasoning), owner))


def _insert_decision(conn: sqlite3.Connection, d: RoutingDecision) -> None:
    candidates = [{"node": c.node, "model": c.model, "score": c.score, "eligible": c.eligible,
                   "reason": c.reason} for c in d.candidates]
    conn.execute(
        "INSERT INTO decisions (task_id, time, mode, task_type, node, model, reason, attempt, priority,"
        " candidates_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (d.task_id, d.time, as_text(d.mode), d.task_type, d.node, d.model, d.reason, d.attempt, d.priority,
         as_json(candidates)))


def _update_result(conn: sqlite3.Connection, r: TaskResult, now: float) -> None:
    # COALESCE keeps what earlier events recorded when the result leaves a field empty
    # (a task failed before any node took it has no node of its own).
    conn.execute(
        "UPDATE tasks SET status = ?, text = ?, thinking = ?, node = COALESCE(?, node),"
        " model = COALESCE(?, model), mode = COALESCE(?, mode), task_type = COALESCE(?, task_type),"
        " attempts = MAX(attempts, ?), failovers = MAX(failovers, ?), ttft_s = ?, duration_s = ?, queued_s = ?,"
        " eval_count = ?, prompt_eval_count = ?, tokens_per_s = ?, thinking_tokens = ?, error = ?,"
        " finished_at = ? WHERE id = ?",
        (as_text(r.status), r.text, r.thinking, r.node, r.model, as_text(r.mode), r.task_type, r.attempts,
         r.failovers, r.ttft_s, r.duration_s, r.queued_s, r.eval_count, r.prompt_eval_count, r.tokens_per_s,
         r.thinking_tokens, r.error, now, r.task_id))


_HANDLERS: dict[str, Callable[[History, sqlite3.Connection, TaskEvent], None]] = {
    "queued": History._on_queued,
    "routed": History._on_routed,
    "running": History._on_running,
    "restart": History._on_restart,
    "finished": History._on_finished,
}
