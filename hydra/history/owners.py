"""Who owns a task row: which open History (in which process) recorded it.

Several Hydra processes may share one HYDRA_DB (the app and ``python -m hydra
serve``). At start-up a process must mark as interrupted only the tasks whose
owner is gone — a killed or stopped process, or a History that was closed —
never the tasks another live process is still running.

An owner is ``host|pid|process start time|instance``. The start time guards
against a recycled pid; the instance tells apart two Histories of one process
(tests, or a service restarted in place).
"""
from __future__ import annotations

import os
import socket
import threading
import uuid

import psutil

_open: set[str] = set()   # owners of this process whose History is open
_lock = threading.Lock()
START_TIME_SLACK_S = 1.0  # create_time is rounded differently by different readers


def _process_start(pid: int) -> float | None:
    """When the process started; None when there is none (a zombie, killed but not yet reaped, is none)."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process.create_time()
    except (psutil.Error, OSError):
        return None


def new_owner() -> str:
    """A fresh owner for a History opening in this process (registered as open)."""
    owner = f"{socket.gethostname()}|{os.getpid()}|{_process_start(os.getpid()) or 0:.3f}|{uuid.uuid4().hex[:8]}"
    with _lock:
        _open.add(owner)
    return owner


def release(owner: str) -> None:
    """The History of ``owner`` closed: its unfinished tasks can never finish now."""
    with _lock:
        _open.discard(owner)


def alive(owner: str | None) -> bool:
    """Whether the tasks of ``owner`` may still finish. Unknown owners (rows written before
    owners were recorded, malformed values) are gone; another host's owners cannot be
    checked and are left alone."""
    if not owner:
        return False
    parts = owner.split("|")
    if len(parts) != 4:
        return False
    host, pid_text, start_text, _instance = parts
    if host != socket.gethostname():
        return True
    try:
        pid, start = int(pid_text), float(start_text)
    except ValueError:
        return False
    if pid == os.getpid():
        with _lock:
            return owner in _open
    actual = _process_start(pid)
    return actual is not None and abs(actual - start) <= START_TIME_SLACK_S
