"""Hydra's SQLite history: tasks, routing decisions and saved settings (``store``, its rows in
``rows``), the aggregates the pages read (``queries``, over the ``readers`` pool), whether it can
write (``health``: a task it cannot record is refused), the file at start-up (``files``: a corrupt
one is moved aside), which process owns each live task (``owners``), the threads that record a
running router into it (``recorder``), and a full disk for tests (``testing``)."""
from __future__ import annotations

from .health import HistoryHealth, HistoryUnavailableError
from .store import SCHEMA_VERSION, History

__all__ = ["SCHEMA_VERSION", "History", "HistoryHealth", "HistoryUnavailableError"]
