"""Hydra's SQLite history: tasks, routing decisions and saved settings (``store``), the
aggregates the pages read (``queries``), and which process owns each live task (``owners``)."""
from __future__ import annotations

from .store import SCHEMA_VERSION, History

__all__ = ["SCHEMA_VERSION", "History"]
