"""Hydra's SQLite history: tasks, routing decisions and saved settings (``store``), the
aggregates the pages read (``queries``), which process owns each live task (``owners``), and
the threads that record a running router into it (``recorder``)."""
from __future__ import annotations

from .health import HistoryHealth, HistoryUnavailableError
from .store import SCHEMA_VERSION, History

__all__ = ["SCHEMA_VERSION", "History", "HistoryHealth", "HistoryUnavailableError"]
