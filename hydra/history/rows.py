"""What the history's rows hold: the schema (its migrations), and each router event as the rows it writes.

Every function here runs inside one write transaction the store opened (``conn``); none commits.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from hydra.sollol.types import RoutingDecision, Task, TaskEvent, TaskResult, TaskStatus

from .queries import LIVE_STATUSES, as_json, as_text

# Each migration runs once, in order, inside one transaction; append, never edit.
MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
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
    # While degraded, a probe writes (and deletes) a row here to learn whether writes succeed again.
    (3, ("CREATE TABLE write_probe (id INTEGER PRIMARY KEY, payload BLOB)",)),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]


def _on_queued(conn: sqlite3.Connection, event: TaskEvent, owner: str, now: float) -> None:
    _insert_task(conn, event.task, owner)


def _on_routed(conn: sqlite3.Connection, event: TaskEvent, owner: str, now: float) -> None:
    decision = event.decision
    if decision is None:
        return
    _insert_decision(conn, decision)
    # The decision resolves the mode and task type a task left open (None).
    conn.execute("UPDATE tasks SET mode = ?, task_type = ? WHERE id = ?",
                 (as_text(decision.mode), decision.task_type, decision.task_id))


def _on_running(conn: sqlite3.Connection, event: TaskEvent, owner: str, now: float) -> None:
    conn.execute(
        "UPDATE tasks SET status = 'running', node = ?, model = ?, attempts = MAX(attempts, ?),"
        " started_at = COALESCE(started_at, ?) WHERE id = ? AND status IN (?, ?)",
        (event.node, event.model, event.attempt, now, event.task.id, *LIVE_STATUSES))


def _on_restart(conn: sqlite3.Connection, event: TaskEvent, owner: str, now: float) -> None:
    # A failover mid-answer: the answer continues on another node, so the text saved so far stays.
    conn.execute("UPDATE tasks SET failovers = failovers + 1 WHERE id = ?", (event.task.id,))


def _on_finished(conn: sqlite3.Connection, event: TaskEvent, owner: str, now: float) -> None:
    result = event.result
    if result is None:
        return
    _insert_task(conn, event.task, owner)   # a no-op unless history missed "queued"
    _update_result(conn, result, now)


_HANDLERS: dict[str, Callable[[sqlite3.Connection, TaskEvent, str, float], None]] = {
    "queued": _on_queued,
    "routed": _on_routed,
    "running": _on_running,
    "restart": _on_restart,
    "finished": _on_finished,
}
EVENT_KINDS = frozenset(_HANDLERS)


def write_event(conn: sqlite3.Connection, event: TaskEvent, owner: str, now: float) -> None:
    """The rows of one event (``event.kind`` in EVENT_KINDS), recorded by ``owner`` at ``now``."""
    _HANDLERS[event.kind](conn, event, owner, now)


def _insert_task(conn: sqlite3.Connection, task: Task, owner: str) -> None:
    options = {"max_tokens": task.max_tokens, "think": task.think, "options": task.options,
               "model": task.model, "task_type": task.task_type, "mode": as_text(task.mode),
               "thinking_budget": task.thinking_budget, "system": task.system,
               "min_success_rate": task.min_success_rate, "deadline": task.deadline,
               "format": task.format, "keep_alive": task.keep_alive, "tools": task.tools}
    if task.input is not None:  # an embedding task: its texts are what it is about (shown as its prompt)
        embedding: dict[str, Any] = {"input": task.input, "truncate": task.truncate, "dimensions": task.dimensions}
        options.update(embedding)
    # The service puts the reasoning engine's verdict in task.meta["reasoning"]: one write, not two.
    reasoning = task.meta.get("reasoning") if isinstance(task.meta, dict) else None
    conn.execute(
        "INSERT INTO tasks (id, prompt, messages_json, options_json, status, model, mode, task_type, priority,"
        " submitted_at, reasoning_json, owner) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO NOTHING",
        (task.id, task.prompt or "\n".join(task.input or ()), as_json(task.messages), as_json(options), TaskStatus.QUEUED.value,
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
