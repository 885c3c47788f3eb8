"""SollolConfig: the engine's settings, parsed from the environment with errors a user can act on.

Parsers are small pure functions (``parse_bool``, ``parse_int``, ``parse_nodes``)
so ``hydra.config`` reuses them for the settings it adds on top.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError
from .types import NodeSpec, RoutingMode

_TRUE = {"1", "true", "yes", "on", "enabled"}
_FALSE = {"0", "false", "no", "off", "disabled"}


def parse_bool(variable: str, value: str | bool) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(variable, value, "true or false")


def parse_int(variable: str, value: str | int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ConfigError(variable, value, _range_text("an integer", minimum, maximum)) from None
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise ConfigError(variable, value, _range_text("an integer", minimum, maximum))
    return number


def parse_float(variable: str, value: str | float, *, minimum: float | None = None,
                maximum: float | None = None) -> float:
    try:
        number = float(str(value).strip())
    except ValueError:
        raise ConfigError(variable, value, _range_text("a number", minimum, maximum)) from None
    if number != number or (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise ConfigError(variable, value, _range_text("a number", minimum, maximum))
    return number


def _range_text(kind: str, minimum: object, maximum: object) -> str:
    if minimum is not None and maximum is not None:
        return f"{kind} from {minimum} to {maximum}"
    if minimum is not None:
        return f"{kind} >= {minimum}"
    return kind


_NODE_ATTRS = {"max_model_b", "gpu", "vram_mb", "slots", "local"}
NODES_FORMAT = ("comma-separated entries 'url' or 'name=url', each optionally followed by "
                "';key=value' attributes (max_model_b, gpu, vram_mb, slots, local), "
                "e.g. 'light=http://127.0.0.1:11434;max_model_b=30;gpu=false'")


def parse_node(entry: str, variable: str = "SOLLOL_NODES") -> NodeSpec:
    """One ``name=url;key=value;...`` entry of SOLLOL_NODES."""
    head, *attr_parts = [p.strip() for p in entry.strip().split(";")]
    name, url = "", head
    if "=" in head and "://" not in head.split("=", 1)[0]:
        name, url = (s.strip() for s in head.split("=", 1))
    if not url or any(c.isspace() for c in url):
        raise ConfigError(variable, entry, NODES_FORMAT)
    attrs: dict[str, Any] = {}
    for part in filter(None, attr_parts):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in _NODE_ATTRS:
            raise ConfigError(variable, entry, NODES_FORMAT)
        label = f"{variable} ({key} of {name or url})"
        if key in ("gpu", "local"):
            attrs[key] = parse_bool(label, value)
        elif key == "max_model_b":
            attrs[key] = parse_float(label, value, minimum=0.0)
        else:
            attrs[key] = parse_int(label, value, minimum=1 if key == "slots" else 0)
    try:
        return NodeSpec(url=url, name=name, **attrs)
    except ConfigError as exc:
        raise ConfigError(variable, entry, f"{exc.allowed}; {NODES_FORMAT}") from None


def parse_nodes(value: str, variable: str = "SOLLOL_NODES") -> list[NodeSpec]:
    specs = [parse_node(e, variable) for e in value.split(",") if e.strip()]
    names = [s.name for s in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(variable, value, f"distinct node names (repeated: {', '.join(duplicates)})")
    return specs


def format_node(spec: NodeSpec) -> str:
    """The inverse of ``parse_node`` (for saving nodes added at run time)."""
    parts = [f"{spec.name}={spec.url}"]
    for key in ("max_model_b", "gpu", "vram_mb"):
        value = getattr(spec, key)
        if value is not None:
            parts.append(f"{key}={str(value).lower() if isinstance(value, bool) else value}")
    parts.append(f"slots={spec.slots}")
    return ";".join(parts)


@dataclass(frozen=True)
class SollolConfig:
    """Engine settings. Defaults are the seed's."""

    default_mode: RoutingMode = RoutingMode.ASYNC
    parallel_requests: bool = True
    max_concurrent_requests: int = 4
    vram_monitoring: bool = True
    min_vram_mb: int = 100
    min_success_rate: float = 0.98
    # A model of at least this many billion parameters counts as a "large load"
    # that a GPU node low on VRAM refuses.
    large_model_b: float = 3.0
    connect_timeout_s: float = 3.0
    first_token_timeout_s: float = 180.0   # cold loads of big models included
    idle_timeout_s: float = 60.0
    poll_interval_s: float = 2.0
    max_backoff_s: float = 30.0
    breaker_threshold: int = 3             # consecutive node failures that open the circuit
    breaker_cooldown_s: float = 5.0        # open -> half-open after this long
    max_attempts: int = 3                  # nodes tried per task
    no_route_wait_s: float = 30.0          # how long a task waits for a node that is down to come back
    max_queue: int = 10_000
    aging_s: float = 10.0                  # a queued task gains one priority level per aging_s
    stats_window: int = 50                 # requests in the rolling success/latency window
    discovery_cidr: str | None = None
    discover_localhost: bool = True
    nodes: tuple[NodeSpec, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        object.__setattr__(self, "default_mode", RoutingMode.parse(self.default_mode, "SOLLOL_DEFAULT_ROUTING_MODE"))
        if self.max_concurrent_requests < 1:
            raise ConfigError("SOLLOL_MAX_CONCURRENT_REQUESTS", self.max_concurrent_requests, "an integer >= 1")
        if self.min_vram_mb < 0:
            raise ConfigError("SOLLOL_MIN_VRAM_MB", self.min_vram_mb, "an integer >= 0")
        if not 0.0 <= self.min_success_rate <= 1.0:
            raise ConfigError("SOLLOL_MIN_SUCCESS_RATE", self.min_success_rate, "a number from 0 to 1")

    @property
    def effective_concurrency(self) -> int:
        """Global in-flight cap: one at a time when parallel requests are off."""
        return self.max_concurrent_requests if self.parallel_requests else 1

    def replace(self, **changes: Any) -> SollolConfig:
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError("setting", ", ".join(sorted(unknown)),
                              "one of " + ", ".join(f.name for f in dataclasses.fields(self)))
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SollolConfig:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        if "SOLLOL_DEFAULT_ROUTING_MODE" in env:
            values["default_mode"] = RoutingMode.parse(env["SOLLOL_DEFAULT_ROUTING_MODE"], "SOLLOL_DEFAULT_ROUTING_MODE")
        if "SOLLOL_PARALLEL_REQUESTS" in env:
            values["parallel_requests"] = parse_bool("SOLLOL_PARALLEL_REQUESTS", env["SOLLOL_PARALLEL_REQUESTS"])
        if "SOLLOL_MAX_CONCURRENT_REQUESTS" in env:
            values["max_concurrent_requests"] = parse_int(
                "SOLLOL_MAX_CONCURRENT_REQUESTS", env["SOLLOL_MAX_CONCURRENT_REQUESTS"], minimum=1, maximum=1024)
        if "SOLLOL_VRAM_MONITORING" in env:
            values["vram_monitoring"] = parse_bool("SOLLOL_VRAM_MONITORING", env["SOLLOL_VRAM_MONITORING"])
        if "SOLLOL_MIN_VRAM_MB" in env:
            values["min_vram_mb"] = parse_int("SOLLOL_MIN_VRAM_MB", env["SOLLOL_MIN_VRAM_MB"], minimum=0)
        if "SOLLOL_MIN_SUCCESS_RATE" in env:
            values["min_success_rate"] = parse_float(
                "SOLLOL_MIN_SUCCESS_RATE", env["SOLLOL_MIN_SUCCESS_RATE"], minimum=0.0, maximum=1.0)
        if env.get("SOLLOL_DISCOVERY_CIDR", "").strip():
            values["discovery_cidr"] = env["SOLLOL_DISCOVERY_CIDR"].strip()
        if "SOLLOL_DISCOVER_LOCALHOST" in env:
            values["discover_localhost"] = parse_bool("SOLLOL_DISCOVER_LOCALHOST", env["SOLLOL_DISCOVER_LOCALHOST"])
        nodes = parse_nodes(env.get("SOLLOL_NODES", ""))
        host = env.get("OLLAMA_HOST", "").strip()
        if host:
            spec = parse_node(host if "://" in host or ":" in host else host + ":11434", "OLLAMA_HOST")
            if all(n.url != spec.url for n in nodes):
                nodes.append(spec)
        values["nodes"] = tuple(nodes)
        return cls(**values)
