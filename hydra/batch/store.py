"""The batches and their rows, in the history's SQLite file (HYDRA_DB) through a connection of their own.

Own schema, own migrations (``batch_schema_version``): history's tables are history's.
A batch and all its rows are written in one transaction, so a batch exists whole or
not at all. Each row's life is ``pending -> running -> done | failed | cancelled``;
``running`` names the task that runs it (``task_id``) and the owner that submitted it
(history/owners.py), and is committed *before* the task is submitted. Ending a row is
guarded by that task id, so a stale runner can never overwrite a row another has taken.

Exactly once across a kill: a row whose task finished but whose own end was never
committed (the process died in between) is settled from the history's task row, which the
history writer committed first; only a row whose task left no finished row goes back to
``pending`` (``recover``). So a completed row is never run again, and none is lost.

The page reads aggregates only (counts per status and per node, one GROUP BY each over an
index) and pages of rows, so a 10,000-row batch costs it milliseconds.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.history import owners

from .rows import ROW_STATUSES, BatchInfo, BatchOptions, Claimed, Progress, RowOutcome

BUSY_TIMEOUT_MS = 10_000   # the history writer holds the file's write lock for a few ms at a time

MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (1, (
        """CREATE TABLE batches (
            id TEXT PRIMARY KEY, name TEXT NOT NULL, created_at REAL NOT NULL, status TEXT NOT NULL,
            template TEXT NOT NULL, options_json TEXT NOT NULL, columns_json TEXT NOT NULL, total INTEGER NOT NULL,
            source TEXT NOT NULL, started_at REAL, finished_at REAL, error TEXT, meta_json TEXT, owner TEXT)""",
        """CREATE TABLE batch_rows (
            batch_id TEXT NOT NULL, idx INTEGER NOT NULL, data_json TEXT NOT NULL, prompt TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending', task_id TEXT, owner TEXT, runs INTEGER NOT NULL DEFAULT 0,
            answer TEXT, node TEXT, model TEXT, ttft_s REAL, duration_s REAL, tokens INTEGER, tokens_per_s REAL,
            error TEXT, started_at REAL, finished_at REAL, request_json TEXT, prompt_tokens INTEGER,
            PRIMARY KEY (batch_id, idx))""",
        # Covers every aggregate the page reads (progress): index-only scans, never the rows' answers.
        "CREATE INDEX batch_rows_status ON batch_rows (batch_id, status, node, tokens, started_at, finished_at)",
        "CREATE INDEX batch_rows_task ON batch_rows (task_id)",
        # Files uploaded for the gateway's OpenAI Batch API (purpose "batch"); output files are made from rows.
        """CREATE TABLE batch_files (
            id TEXT PRIMARY KEY, filename TEXT NOT NULL, purpose TEXT NOT NULL, bytes INTEGER NOT NULL,
            created_at REAL NOT NULL, content BLOB NOT NULL)""",
    )),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]

BATCH_STATUSES = ("running", "paused", "cancelled", "done")
ROW_FIELDS = ("idx", "data_json", "status", "answer", "node", "model", "ttft_s", "duration_s", "tokens",
              "tokens_per_s", "error", "started_at", "finished_at", "runs", "task_id", "prompt_tokens")


def _new_id() -> str:
    return "batch_" + uuid.uuid4().hex[:16]


class BatchStore:
    """Batches and rows in ``path`` (the history's file; ``:memory:`` for tests)."""

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = str(path) if str(path) == ":memory:" else str(Path(path).expanduser())
        self._clock = clock
        self.owner = owners.new_owner()
        self._lock = threading.Lock()
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                     timeout=BUSY_TIMEOUT_MS / 1000)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._closed = False
        self._migrate()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._conn.close()
        owners.release(self.owner)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._conn

    def _migrate(self) -> None:
        with self._tx() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS batch_schema_version (version INTEGER PRIMARY KEY, applied_at REAL)")
            current = conn.execute("SELECT COALESCE(MAX(version), 0) FROM batch_schema_version").fetchone()[0]
            for version, statements in MIGRATIONS:
                if version > current:
                    for statement in statements:
                        conn.execute(statement)
                    conn.execute("INSERT INTO batch_schema_version VALUES (?, ?)", (version, self._clock()))

    # --- batches ---

    def create(self, *, name: str, template: str, options: BatchOptions, columns: Sequence[str],
               rows: Sequence[Mapping[str, str]], prompts: Sequence[str], source: str = "page",
               meta: Mapping[str, Any] | None = None, batch_id: str | None = None,
               requests: Sequence[Mapping[str, Any]] | None = None) -> str:
        """The batch and every row, in one transaction (all or nothing); status ``running``. ``requests``
        (the gateway's): each row's own task fields (messages, model, ...), instead of its prompt."""
        batch_id = batch_id or _new_id()
        now = self._clock()
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO batches (id, name, created_at, status, template, options_json, columns_json, total,"
                " source, meta_json) VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?)",
                (batch_id, name, now, template, json.dumps(options.as_dict()), json.dumps(list(columns)), len(rows),
                 source, json.dumps(dict(meta or {}))))
            fields = requests if requests is not None else [None] * len(rows)
            conn.executemany("INSERT INTO batch_rows (batch_id, idx, data_json, prompt, request_json)"
                             " VALUES (?, ?, ?, ?, ?)",
                             ((batch_id, i, json.dumps(row, ensure_ascii=False), prompt,
                               None if request is None else json.dumps(request, ensure_ascii=False))
                              for i, (row, prompt, request) in enumerate(zip(rows, prompts, fields, strict=True))))
        return batch_id

    def get(self, batch_id: str) -> BatchInfo | None:
        with self._read() as conn:
            row = conn.execute("SELECT * FROM batches WHERE id = ?", (batch_id,)).fetchone()
        return _info(row) if row is not None else None

    def batches(self, limit: int = 50) -> list[BatchInfo]:
        with self._read() as conn:
            rows = conn.execute("SELECT * FROM batches ORDER BY created_at DESC LIMIT ?", (limit,)).fetchall()
        return [_info(r) for r in rows]

    def set_status(self, batch_id: str, status: str, *, error: str | None = None,
                   only_from: Sequence[str] = BATCH_STATUSES) -> bool:
        """Change the batch's status if it is one of ``only_from``; True when it changed."""
        assert status in BATCH_STATUSES, status
        now = self._clock()
        with self._tx() as conn:
            cur = conn.execute(
                f"UPDATE batches SET status = ?, error = ?, finished_at = CASE WHEN ? IN ('done', 'cancelled') "
                f"THEN ? ELSE NULL END WHERE id = ? AND status IN ({','.join('?' * len(only_from))})",
                (status, error, status, now, batch_id, *only_from))
        return cur.rowcount > 0

    def complete(self, batch_id: str) -> bool:
        """Running -> done, atomically only if no row is left pending or running; True when it ended."""
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE batches SET status = 'done', finished_at = ? WHERE id = ? AND status = 'running' AND NOT EXISTS"
                " (SELECT 1 FROM batch_rows WHERE batch_id = ? AND status IN ('pending', 'running'))",
                (self._clock(), batch_id, batch_id))
        return cur.rowcount > 0

    def take(self, batch_id: str, alive: Callable[[str | None], bool] = owners.alive) -> bool:
        """Make this store the batch's runner, unless another live owner runs it; True when taken."""
        with self._tx() as conn:
            row = conn.execute("SELECT owner FROM batches WHERE id = ?", (batch_id,)).fetchone()
            if row is None or (row["owner"] not in (None, self.owner) and alive(row["owner"])):
                return False
            conn.execute("UPDATE batches SET owner = ?, started_at = COALESCE(started_at, ?) WHERE id = ?",
                         (self.owner, self._clock(), batch_id))
        return True

    def resumable(self, alive: Callable[[str | None], bool] = owners.alive) -> list[str]:
        """Batches left running by an owner that is gone (a killed or stopped process)."""
        with self._read() as conn:
            rows = conn.execute("SELECT id, owner FROM batches WHERE status = 'running' ORDER BY created_at").fetchall()
        return [r["id"] for r in rows if r["owner"] != self.owner and not alive(r["owner"])]

    # --- rows ---

    def claim(self, batch_id: str, limit: int) -> list[Claimed]:
        """Up to ``limit`` pending rows, in order, marked running under this owner with a fresh task id
        each (committed before any is submitted)."""
        if limit <= 0:
            return []
        now = self._clock()
        with self._tx() as conn:
            picked = conn.execute("SELECT idx, prompt, request_json FROM batch_rows WHERE batch_id = ? AND"
                                  " status = 'pending' ORDER BY idx LIMIT ?", (batch_id, limit)).fetchall()
            claimed = [Claimed(r["idx"], r["prompt"], uuid.uuid4().hex[:12],
                               json.loads(r["request_json"]) if r["request_json"] else None) for r in picked]
            conn.executemany("UPDATE batch_rows SET status = 'running', task_id = ?, owner = ?, runs = runs + 1,"
                             " started_at = ?, error = NULL WHERE batch_id = ? AND idx = ? AND status = 'pending'",
                             ((c.task_id, self.owner, now, batch_id, c.row) for c in claimed))
        return claimed

    def finish_row(self, batch_id: str, index: int, task_id: str, outcome: RowOutcome) -> bool:
        """End a running row with its task's outcome; False when the row is no longer that task's."""
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE batch_rows SET status = ?, answer = ?, node = ?, model = ?, ttft_s = ?, duration_s = ?,"
                " tokens = ?, tokens_per_s = ?, error = ?, prompt_tokens = ?, finished_at = ? WHERE batch_id = ?"
                " AND idx = ? AND task_id = ? AND status = 'running'",
                (outcome.status, outcome.answer, outcome.node, outcome.model, outcome.ttft_s, outcome.duration_s,
                 outcome.tokens, outcome.tokens_per_s, outcome.error, outcome.prompt_tokens, self._clock(),
                 batch_id, index, task_id))
        return cur.rowcount > 0

    def release(self, batch_id: str, index: int, task_id: str, error: str | None = None) -> None:
        """A claimed row that was never submitted goes back to pending."""
        with self._tx() as conn:
            conn.execute("UPDATE batch_rows SET status = 'pending', task_id = NULL, owner = NULL, runs = runs - 1,"
                         " error = ? WHERE batch_id = ? AND idx = ? AND task_id = ? AND status = 'running'",
                         (error, batch_id, index, task_id))

    def cancel_pending(self, batch_id: str) -> int:
        with self._tx() as conn:
            cur = conn.execute("UPDATE batch_rows SET status = 'cancelled', error = 'the batch was cancelled',"
                               " finished_at = ? WHERE batch_id = ? AND status = 'pending'", (self._clock(), batch_id))
        return cur.rowcount

    def retry(self, batch_id: str, statuses: Sequence[str] = ("failed",)) -> int:
        """Rows that ended ``statuses`` go back to pending (their old answer and error cleared)."""
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE batch_rows SET status = 'pending', task_id = NULL, owner = NULL, answer = NULL, node = NULL,"
                " model = NULL, ttft_s = NULL, duration_s = NULL, tokens = NULL, tokens_per_s = NULL, error = NULL,"
                f" started_at = NULL, finished_at = NULL WHERE batch_id = ? AND status IN ({','.join('?' * len(statuses))})",
                (batch_id, *statuses))
        return cur.rowcount

    def orphans(self, alive: Callable[[str | None], bool] = owners.alive) -> list[tuple[str, int, str]]:
        """Running rows whose owner is gone: [(batch id, index, task id)]."""
        with self._read() as conn:
            rows = conn.execute("SELECT batch_id, idx, task_id, owner FROM batch_rows WHERE status = 'running'").fetchall()
        return [(r["batch_id"], r["idx"], r["task_id"]) for r in rows if r["owner"] != self.owner and not alive(r["owner"])]

    def settle(self, batch_id: str, index: int, task_id: str, outcome: RowOutcome | None) -> None:
        """An orphan: ended with what its task left (``outcome``), or back to pending when it left nothing."""
        if outcome is not None:
            self.finish_row(batch_id, index, task_id, outcome)  # guarded by the task id, as for a live runner
            return
        with self._tx() as conn:
            conn.execute("UPDATE batch_rows SET status = 'pending', task_id = NULL, owner = NULL WHERE batch_id = ?"
                         " AND idx = ? AND task_id = ? AND status = 'running'", (batch_id, index, task_id))

    def progress(self, batch_id: str) -> Progress | None:
        with self._read() as conn:
            row = conn.execute("SELECT * FROM batches WHERE id = ?", (batch_id,)).fetchone()
            if row is None:
                return None
            counts = {r[0]: r[1] for r in conn.execute(
                "SELECT status, COUNT(*) FROM batch_rows WHERE batch_id = ? GROUP BY status", (batch_id,))}
            by_node = {r[0] or "?": r[1] for r in conn.execute(
                "SELECT node, COUNT(*) FROM batch_rows WHERE batch_id = ? AND status = 'done' GROUP BY node",
                (batch_id,))}
            agg = conn.execute("SELECT COALESCE(SUM(tokens), 0), MIN(started_at), MAX(finished_at) FROM batch_rows"
                               " WHERE batch_id = ? AND status IN ('done', 'failed', 'cancelled')", (batch_id,)).fetchone()
        return Progress(_info(row), {s: counts.get(s, 0) for s in ROW_STATUSES}, by_node, int(agg[0]), agg[1], agg[2])

    def rows(self, batch_id: str, offset: int = 0, limit: int = 50, status: str | None = None) -> list[dict[str, Any]]:
        """One page of rows, in input order (original columns decoded under ``data``). Unfiltered, a page
        is a range of the primary key (rows are numbered 0..n-1), so page 200 costs what page 1 does."""
        with self._read() as conn:
            if status is None:
                found = conn.execute(f"SELECT {', '.join(ROW_FIELDS)} FROM batch_rows WHERE batch_id = ? AND idx >= ?"
                                     " ORDER BY idx LIMIT ?", (batch_id, offset, limit)).fetchall()
            else:
                found = conn.execute(f"SELECT {', '.join(ROW_FIELDS)} FROM batch_rows WHERE batch_id = ? AND status = ?"
                                     " ORDER BY idx LIMIT ? OFFSET ?", (batch_id, status, limit, offset)).fetchall()
        return [_row(r) for r in found]

    def iter_rows(self, batch_id: str, page: int = 1000) -> Iterator[dict[str, Any]]:
        """Every row in order, a page at a time (an export of 10,000 rows holds one page in memory)."""
        last = -1
        while True:
            with self._read() as conn:
                found = conn.execute(f"SELECT {', '.join(ROW_FIELDS)} FROM batch_rows WHERE batch_id = ? AND idx > ?"
                                     " ORDER BY idx LIMIT ?", (batch_id, last, page)).fetchall()
            if not found:
                return
            for r in found:
                yield _row(r)
            last = found[-1]["idx"]

    # --- files (the gateway's Batch API) ---

    def add_file(self, filename: str, purpose: str, content: bytes) -> dict[str, Any]:
        file_id = "file-" + uuid.uuid4().hex[:24]
        now = self._clock()
        with self._tx() as conn:
            conn.execute("INSERT INTO batch_files VALUES (?, ?, ?, ?, ?, ?)",
                         (file_id, filename, purpose, len(content), now, content))
        return {"id": file_id, "filename": filename, "purpose": purpose, "bytes": len(content), "created_at": now}

    def file(self, file_id: str, *, content: bool = False) -> dict[str, Any] | None:
        columns = "id, filename, purpose, bytes, created_at" + (", content" if content else "")
        with self._read() as conn:
            row = conn.execute(f"SELECT {columns} FROM batch_files WHERE id = ?", (file_id,)).fetchone()
        return dict(row) if row is not None else None

    def delete_file(self, file_id: str) -> bool:
        with self._tx() as conn:
            return conn.execute("DELETE FROM batch_files WHERE id = ?", (file_id,)).rowcount > 0

    def running_task_ids(self, batch_id: str) -> list[str]:
        with self._read() as conn:
            return [r[0] for r in conn.execute("SELECT task_id FROM batch_rows WHERE batch_id = ? AND status = 'running'"
                                               " AND owner = ?", (batch_id, self.owner))]


def _info(row: sqlite3.Row) -> BatchInfo:
    return BatchInfo(id=row["id"], name=row["name"], status=row["status"], created_at=row["created_at"],
                     started_at=row["started_at"], finished_at=row["finished_at"], total=row["total"],
                     template=row["template"], options=BatchOptions.from_dict(json.loads(row["options_json"])),
                     columns=tuple(json.loads(row["columns_json"])), source=row["source"], error=row["error"],
                     meta=json.loads(row["meta_json"] or "{}"))


def _row(r: sqlite3.Row) -> dict[str, Any]:
    out = {k: r[k] for k in ROW_FIELDS if k != "data_json"}
    out["data"] = json.loads(r["data_json"])
    return out
