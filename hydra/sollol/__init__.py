"""SOLLOL: the routing engine. Pure Python; never imports streamlit, pandas or plotly."""
from __future__ import annotations

from .config import SollolConfig
from .errors import (
                     ConfigError,
                     HydraError,
                     NodeError,
                     NodeProtocolError,
                     NodeTimeoutError,
                     NodeUnavailableError,
                     NoRouteError,
                     QueueFullError,
                     RequestRejectedError,
                     ShutdownError,
                     TaskCancelledError,
                     TaskError,
                     TaskInterruptedError,
                     TaskTimeoutError,
)
from .handle import TaskHandle
from .router import Router
from .types import (
                     Candidate,
                     Chunk,
                     ClusterSnapshot,
                     NodeSnapshot,
                     NodeSpec,
                     Placement,
                     RoutingDecision,
                     RoutingMode,
                     Task,
                     TaskEvent,
                     TaskResult,
                     TaskStatus,
                     TaskView,
                     TierEntry,
)

__all__ = sorted([
    "Candidate", "Chunk", "ClusterSnapshot", "ConfigError", "HydraError", "NoRouteError", "NodeError",
    "NodeProtocolError", "NodeSnapshot", "NodeSpec", "NodeTimeoutError", "NodeUnavailableError", "Placement",
    "QueueFullError", "RequestRejectedError", "Router", "RoutingDecision", "RoutingMode", "ShutdownError",
    "SollolConfig", "Task", "TaskCancelledError", "TaskError", "TaskEvent", "TaskHandle", "TaskInterruptedError",
    "TaskResult", "TaskStatus", "TaskTimeoutError", "TaskView", "TierEntry",
])
