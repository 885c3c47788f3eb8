"""The history's read side: the queries behind the pages (recent tasks, decisions, distribution,
per-node performance), and the row helpers both sides share."""
from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from contextlib import AbstractContextManager
from enum import Enum
from typing import Any

from hydra.sollol.metrics import percentile
from hydra.sollol.types import TaskStatus

LIVE_STATUSES = (TaskStatus.QUEUED.value, TaskStatus.RUNNING.value)


def as_text(value: Any) -> str | None:
    """Enums as their values (StrEnum's str() would do, a plain Enum's would not)."""
    if value is None:
        return None
    return str(value.value) if isinstance(value, Enum) else str(value)


def as_json(value: Any) -> str | None:
    """``value`` as JSON text. Task options come from users and may hold anything: history keeps
    what it can (other values as their str(), other keys as text) rather than refuse the row."""
    if value is None:
        return None
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):  # a key JSON cannot have (a tuple, say), or a cycle
        pass
    try:
        return json.dumps(_text_keys(value), default=str)
    except (TypeError, ValueError, RecursionError):  # a cycle
        return json.dumps(repr(value))


def _text_keys(value: Any) -> Any:
    """``value`` with every mapping key JSON cannot write turned into its str()."""
    if isinstance(value, dict):
        return {k if isinstance(k, (str, int, float, bool)) or k is None else str(k): _text_keys(v)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_text_keys(v) for v in value]
    return value


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in row.keys():  # noqa: SIM118 - iterating a Row gives its values, not its keys
        if key.endswith("_json"):
            raw = row[key]
            out[key[:-5]] = json.loads(raw) if raw is not None else None
        else:
            out[key] = row[key]
    return out


class HistoryQueries:
    """Mixed into History, which provides ``_read``: a pooled read-only connection."""

    def _read(self) -> AbstractContextManager[sqlite3.Connection]:  # pragma: no cover - History's
        raise NotImplementedError

    def recent_tasks(self, limit: int = 50, statuses: Iterable[str | TaskStatus] | None = None) -> list[dict[str, Any]]:
        """Newest first; JSON columns decoded (``messages``, ``options``, ``reasoning``)."""
        sql, args = "SELECT * FROM tasks", []
        if statuses is not None:
            wanted = [as_text(s) for s in statuses]
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
        where, args = _where(("node = ?", node), ("mode = ?", as_text(mode)), ("task_id = ?", task_id),
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
        sql = ("SELECT node, model, status, ttft_s, tokens_per_s, failovers FROM tasks"
               " WHERE node IS NOT NULL AND status NOT IN (?, ?)")
        args: list[Any] = list(LIVE_STATUSES)
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
