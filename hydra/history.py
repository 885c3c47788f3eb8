"""SQLite history of tasks, routing decisions and saved settings; survives restarts and SIGKILL.

Durability: WAL with ``synchronous=NORMAL``. Each write is its own transaction
and is in the WAL file when the call returns, so a killed process loses
nothing it recorded (only an OS crash or power cut can drop the last few
commits, which is the price of not fsyncing on every event: a write costs tens
of microseconds instead of milliseconds).

Threads: router workers and Streamlit script threads call in at once. All
writes go through one connection guarded by a lock, so they never wait on
``SQLITE_BUSY`` among themselves. Reads borrow a connection from a small pool
and never take the writer's lock: in WAL readers do not block the writer, so a page
aggregating thousands of rows cannot stall a router thread recording an event.
"""
from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Any

from .sollol.errors import ConfigError, ShutdownError
from .sollol.metrics import percentile
from .sollol.types import RoutingDecision, Task, TaskEvent, TaskResult, TaskStatus

logger = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000      # another process (a second app) holding the write lock
_MAX_IDLE_READERS = 4
CHECKPOINT_EVERY_S = 1.0
_LIVE = (TaskStatus.QUEUED.value, TaskStatus.RUNNING.value)

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
)
SCHEMA_VERSION = _MIGRATIONS[-1][0]


def _text(value: Any) -> str | None:
    """Enums as their values (StrEnum's str() would do, a plain Enum's would not)."""
    if value is None:
        return None
    return str(value.value) if isinstance(value, Enum) else str(value)


def _json(value: Any) -> str | None:
    # default=str: task options come from users and may hold anything; history must not refuse them.
    return None if value is None else json.dumps(value, default=str)


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in row.keys():
        if key.endswith("_json"):
            raw = row[key]
            out[key[:-5]] = json.loads(raw) if raw is not None else None
        else:
            out[key] = row[key]
    return out


class History:
    """The store. ``path`` may be ``":memory:"`` (tests): reads then share the writer under the lock."""

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = str(path) if str(path) == ":memory:" else str(Path(path).expanduser())
        self._clock = clock
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
        _insert_task(conn, event.task)

    def _on_routed(self, conn: sqlite3.Connection, event: TaskEvent) -> None:
        decision = event.decision
        if decision is None:
            return
        _insert_decision(conn, decision)
        # The decision resolves the mode and task type a task left open (None).
        conn.execute("UPDATE tasks SET mode = ?, task_type = ? WHERE id = ?",
                     (_text(decision.mode), decision.task_type, decision.task_id))

    def _on_running(self, conn: sqlite3.Connection, event: TaskEvent) -> None:
        conn.execute(
            "UPDATE tasks SET status = 'running', node = ?, model = ?, attempts = MAX(attempts, ?),"
            " started_at = COALESCE(started_at, ?) WHERE id = ? AND status IN (?, ?)",
            (event.node, event.model, event.attempt, self._clock(), event.task.id, *_LIVE))

    def _on_restart(self, conn: sqlite3.Connection, event: TaskEvent) -> None:
        # The answer starts again on another node: the partial text saved so far is void.
        conn.execute("UPDATE tasks SET failovers = failovers + 1, text = '', thinking = '' WHERE id = ?",
                     (event.task.id,))

    def _on_finished(self, conn: sqlite3.Connection, event: TaskEvent) -> None:
        result = event.result
        if result is None:
            return
        _insert_task(conn, event.task)   # a no-op unless history missed "queued"
        _update_result(conn, result, self._clock())

    # --- direct writes from the service -----------------------------------------------
    def set_reasoning(self, task_id: str, reasoning: Mapping[str, Any]) -> bool:
        """Store the reasoning assessment; call after submit. False if the task is unknown."""
        with self._write() as conn:
            cur = conn.execute("UPDATE tasks SET reasoning_json = ? WHERE id = ?", (_json(dict(reasoning)), task_id))
        return cur.rowcount > 0

    def save_partial(self, task_id: str, text: str, thinking: str = "") -> bool:
        """Partial output so far, so a crash keeps it. Ignored once the task has finished,
        because a throttled save can race the final result."""
        with self._write() as conn:
            cur = conn.execute("UPDATE tasks SET text = ?, thinking = ? WHERE id = ? AND status IN (?, ?)",
                               (text, thinking, task_id, *_LIVE))
        return cur.rowcount > 0

    def mark_interrupted(self) -> int:
        """At start-up: tasks a previous process left queued or running can never finish."""
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE tasks SET error = 'Hydra stopped while this task was ' || status || '; resubmit it',"
                " status = ?, finished_at = ? WHERE status IN (?, ?)",
                (TaskStatus.INTERRUPTED.value, self._clock(), *_LIVE))
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

    # --- queries for the pages ----------------------------------------------------------
    def recent_tasks(self, limit: int = 50, statuses: Iterable[str | TaskStatus] | None = None) -> list[dict[str, Any]]:
        """Newest first; JSON columns decoded (``messages``, ``options``, ``reasoning``)."""
        sql, args = "SELECT * FROM tasks", []
        if statuses is not None:
            wanted = [_text(s) for s in statuses]
            sql += f" WHERE status IN ({','.join('?' * len(wanted))})"
            args += wanted
        sql += " ORDER BY submitted_at DESC, rowid DESC LIMIT ?"
        with self._read() as conn:
            return [_decode(r) for r in conn.execute(sql, (*args, limit))]

    def get_task(self, task_id: str) -> dict[str, Any] | None:
        with self._read() as conn:
            row = conn.execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone()
        return _decode(row) if row is not None else None

    def decisions(self, limit: int = 200, *, node: str | None = None, mode: str | None = None,
                  task_id: str | None = None, since: float | None = None) -> list[dict[str, Any]]:
        """Newest first; ``candidates`` decoded to a list of dicts."""
        where, args = _where(("node = ?", node), ("mode = ?", _text(mode)), ("task_id = ?", task_id),
                             ("time >= ?", since))
        with self._read() as conn:
            rows = conn.execute(f"SELECT * FROM decisions{where} ORDER BY time DESC, id DESC LIMIT ?",
                                (*args, limit))
            return [_decode(r) for r in rows]

    def distribution(self, since: float | None = None, bucket_s: float = 60) -> list[dict[str, Any]]:
        """Task counts per time bucket (by submission) and node, model, mode, type, status."""
        if bucket_s <= 0:
            raise ValueError(f"bucket_s must be positive, got {bucket_s!r}")
        where, args = _where(("submitted_at >= ?", since))
        # CAST truncates, which is floor for the (positive) wall-clock times stored here.
        sql = ("SELECT CAST(submitted_at / ? AS INTEGER) * ? AS bucket, node, model, mode, task_type, status,"
               f" COUNT(*) AS count FROM tasks{where}"
               " GROUP BY bucket, node, model, mode, task_type, status"
               " ORDER BY bucket, node, model, mode, task_type, status")
        with self._read() as conn:
            return [dict(r) for r in conn.execute(sql, (bucket_s, bucket_s, *args))]

    def performance(self, since: float | None = None) -> list[dict[str, Any]]:
        """Per node and model, over finished tasks that reached a node.

        success_rate is done / (done + failed): cancelled and interrupted tasks say
        nothing about the node, so they count in ``count`` but not in the rate.
        """
        sql, args = ("SELECT node, model, status, ttft_s, tokens_per_s, failovers FROM tasks"
                     " WHERE node IS NOT NULL AND status NOT IN (?, ?)"), list(_LIVE)
        if since is not None:
            sql, args = sql + " AND submitted_at >= ?", [*args, since]
        sql += " ORDER BY node, model"
        groups: dict[tuple[str, str], list[sqlite3.Row]] = {}
        with self._read() as conn:
            for row in conn.execute(sql, args):
                groups.setdefault((row["node"], row["model"]), []).append(row)
        return [_performance_row(node, model, rows) for (node, model), rows in groups.items()]


def _where(*conditions: tuple[str, Any]) -> tuple[str, list[Any]]:
    """SQL WHERE from (clause, value) pairs; a None value drops its clause."""
    kept = [(clause, value) for clause, value in conditions if value is not None]
    clauses, args = [c for c, _ in kept], [v for _, v in kept]
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


def _performance_row(node: str, model: str | None, rows: list[sqlite3.Row]) -> dict[str, Any]:
    done = [r for r in rows if r["status"] == TaskStatus.DONE.value]
    failed = sum(r["status"] == TaskStatus.FAILED.value for r in rows)
    # The engine's percentile, so these match the live figures on the Nodes page.
    ttfts = [r["ttft_s"] for r in done if r["ttft_s"] is not None]
    speeds = [r["tokens_per_s"] for r in done if r["tokens_per_s"] is not None]
    return {
        "node": node, "model": model, "count": len(rows), "done": len(done), "failed": failed,
        "success_rate": len(done) / (len(done) + failed) if done or failed else None,
        "ttft_p50_s": percentile(ttfts, 50), "ttft_p95_s": percentile(ttfts, 95),
        "tokens_per_s": sum(speeds) / len(speeds) if speeds else None,
        "failovers": sum(r["failovers"] for r in rows),
    }


def _insert_task(conn: sqlite3.Connection, task: Task) -> None:
    options = {"max_tokens": task.max_tokens, "think": task.think, "options": task.options,
               "model": task.model, "task_type": task.task_type, "mode": _text(task.mode),
               "thinking_budget": task.thinking_budget, "system": task.system,
               "min_success_rate": task.min_success_rate, "deadline": task.deadline}
    # The service puts the reasoning engine's verdict in task.meta["reasoning"]: one write, not two.
    reasoning = task.meta.get("reasoning") if isinstance(task.meta, dict) else None
    conn.execute(
        "INSERT INTO tasks (id, prompt, messages_json, options_json, status, model, mode, task_type, priority,"
        " submitted_at, reasoning_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO NOTHING",
        (task.id, task.prompt or "", _json(task.messages), _json(options), TaskStatus.QUEUED.value,
         task.model, _text(task.mode), task.task_type, task.priority, task.submitted_at, _json(reasoning)))


def _insert_decision(conn: sqlite3.Connection, d: RoutingDecision) -> None:
    candidates = [{"node": c.node, "model": c.model, "score": c.score, "eligible": c.eligible,
                   "reason": c.reason} for c in d.candidates]
    conn.execute(
        "INSERT INTO decisions (task_id, time, mode, task_type, node, model, reason, attempt, priority,"
        " candidates_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (d.task_id, d.time, _text(d.mode), d.task_type, d.node, d.model, d.reason, d.attempt, d.priority,
         _json(candidates)))


def _update_result(conn: sqlite3.Connection, r: TaskResult, now: float) -> None:
    # COALESCE keeps what earlier events recorded when the result leaves a field empty
    # (a task failed before any node took it has no node of its own).
    conn.execute(
        "UPDATE tasks SET status = ?, text = ?, thinking = ?, node = COALESCE(?, node),"
        " model = COALESCE(?, model), mode = COALESCE(?, mode), task_type = COALESCE(?, task_type),"
        " attempts = MAX(attempts, ?), failovers = MAX(failovers, ?), ttft_s = ?, duration_s = ?, queued_s = ?,"
        " eval_count = ?, prompt_eval_count = ?, tokens_per_s = ?, thinking_tokens = ?, error = ?,"
        " finished_at = ? WHERE id = ?",
        (_text(r.status), r.text, r.thinking, r.node, r.model, _text(r.mode), r.task_type, r.attempts,
         r.failovers, r.ttft_s, r.duration_s, r.queued_s, r.eval_count, r.prompt_eval_count, r.tokens_per_s,
         r.thinking_tokens, r.error, now, r.task_id))


_HANDLERS: dict[str, Callable[[History, sqlite3.Connection, TaskEvent], None]] = {
    "queued": History._on_queued,
    "routed": History._on_routed,
    "running": History._on_running,
    "restart": History._on_restart,
    "finished": History._on_finished,
}
