"""SOLLOL: the routing engine. Pure Python; never imports streamlit, pandas or plotly, nor any
part of Hydra outside this package (tiers and the classifier are given to the Router)."""
from __future__ import annotations

from .config import SollolConfig
from .errors import (
    ConfigError,
    HydraError,
    NodeError,
    NodeProtocolError,
    NodeTimeoutError,
    NodeUnavailableError,
    QueueFullError,
    RequestRejectedError,
    ShutdownError,
    TaskError,
    TaskTimeoutError,
)
from .handle import TaskHandle
from .prefix_cache import NodeCacheStats, PrefixCacheSnapshot
from .router import Router
from .types import (
    Candidate,
    Chunk,
    ClusterSnapshot,
    FailureKind,
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

__all__ = [
    "Candidate",
    "Chunk",
    "ClusterSnapshot",
    "ConfigError",
    "FailureKind",
    "HydraError",
    "NodeCacheStats",
    "NodeError",
    "NodeProtocolError",
    "NodeSnapshot",
    "NodeSpec",
    "NodeTimeoutError",
    "NodeUnavailableError",
    "Placement",
    "PrefixCacheSnapshot",
    "QueueFullError",
    "RequestRejectedError",
    "Router",
    "RoutingDecision",
    "RoutingMode",
    "ShutdownError",
    "SollolConfig",
    "Task",
    "TaskError",
    "TaskEvent",
    "TaskHandle",
    "TaskResult",
    "TaskStatus",
    "TaskTimeoutError",
    "TaskView",
    "TierEntry",
]
