"""SollolConfig: the engine's settings, parsed from the environment with errors a user can act on.

``ENV_VARIABLES`` is the one description of the engine's variables (SOLLOL_*, OLLAMA_HOST):
the field each sets, how its text is parsed and what it accepts. ``SollolConfig.from_env``
reads it, and so does ``hydra.config``, which adds Hydra's own settings on top and reuses the
small pure parsers here (``parse_bool``, ``parse_int``, ``parse_nodes``...).
"""
from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
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
        raise ConfigError(variable, value, range_text("an integer", minimum, maximum)) from None
    if not in_range(number, minimum, maximum):
        raise ConfigError(variable, value, range_text("an integer", minimum, maximum))
    return number


def parse_float(variable: str, value: str | float, *, minimum: float | None = None,
                maximum: float | None = None) -> float:
    try:
        number = float(str(value).strip())
    except ValueError:
        raise ConfigError(variable, value, range_text("a number", minimum, maximum)) from None
    if math.isnan(number) or not in_range(number, minimum, maximum):
        raise ConfigError(variable, value, range_text("a number", minimum, maximum))
    return number


def in_range(number: float, minimum: float | None, maximum: float | None) -> bool:
    return (minimum is None or number >= minimum) and (maximum is None or number <= maximum)


def range_text(kind: str, minimum: object, maximum: object) -> str:
    """What a bounded number setting accepts, as every message and the settings page say it."""
    if minimum is not None and maximum is not None:
        return f"{kind} from {minimum} to {maximum}"
    if minimum is not None:
        return f"{kind} >= {minimum}"
    return kind


def parse_mode(variable: str, value: str | RoutingMode) -> RoutingMode:
    return RoutingMode.parse(value, variable)


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


def parse_node_list(variable: str, value: str) -> tuple[NodeSpec, ...]:
    return tuple(parse_nodes(str(value), variable))


# --- OLLAMA_HOST: one more node, written as the ollama client reads it ---

OLLAMA_HOST_FORMAT = "host, host:port or http://host:port (empty: none)"


def parse_ollama_host(variable: str, value: str) -> NodeSpec | None:
    """OLLAMA_HOST's node, or None when it is empty. A bare host gets Ollama's port (NodeSpec's default)."""
    host = str(value).strip()
    if not host:
        return None
    try:
        return parse_node(host, variable)
    except ConfigError:
        raise ConfigError(variable, value, OLLAMA_HOST_FORMAT) from None


def with_ollama_host(nodes: Iterable[NodeSpec], host: NodeSpec | None) -> tuple[NodeSpec, ...]:
    """The configured nodes, then OLLAMA_HOST's node unless one of them already has its URL."""
    nodes = tuple(nodes)
    if host is None or any(n.url == host.url for n in nodes):
        return nodes
    return (*nodes, host)


# --- SOLLOL_DISCOVERY_CIDR: the opt-in scan, bounded ---

WIDEST_DISCOVERY_PREFIX = 20                            # a /20 is 4,096 addresses
MAX_SCAN_HOSTS = 2 ** (32 - WIDEST_DISCOVERY_PREFIX)
DISCOVERY_CIDR_FORMAT = (f"an IPv4 network such as 127.0.0.0/24, prefix /{WIDEST_DISCOVERY_PREFIX} or longer "
                         "(empty turns discovery off)")


def parse_discovery_cidr(variable: str, value: str) -> str | None:
    """The network to scan, normalised ("127.0.0.5/24" means the network it lies in, as people write it);
    None when empty."""
    text = str(value).strip()
    if not text:
        return None
    try:
        network = ipaddress.IPv4Network(text, strict=False)
    except ValueError:
        raise ConfigError(variable, value, DISCOVERY_CIDR_FORMAT) from None
    if network.prefixlen < WIDEST_DISCOVERY_PREFIX:
        raise ConfigError(variable, value, DISCOVERY_CIDR_FORMAT)
    return str(network)


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
class EnvVariable:
    """One environment variable of the engine: the SollolConfig field it sets and what it accepts."""

    name: str
    field: str | None                  # None for OLLAMA_HOST, which joins ``nodes`` (with_ollama_host)
    parse: Callable[[str, str], Any]   # (variable, text) -> value; raises ConfigError
    allowed: str                       # what it accepts, as messages and the settings page say it
    minimum: float | None = None       # bounds of number variables
    maximum: float | None = None
    choices: tuple[str, ...] = ()


def _int_variable(name: str, field: str, minimum: int, maximum: int | None = None) -> EnvVariable:
    return EnvVariable(name, field, partial(parse_int, minimum=minimum, maximum=maximum),
                       range_text("an integer", minimum, maximum), minimum, maximum)


def _bool_variable(name: str, field: str) -> EnvVariable:
    return EnvVariable(name, field, parse_bool, "true or false")


_MODES = tuple(m.value for m in RoutingMode)

ENV_VARIABLES: tuple[EnvVariable, ...] = (
    EnvVariable("SOLLOL_DEFAULT_ROUTING_MODE", "default_mode", parse_mode, "one of " + ", ".join(_MODES),
                choices=_MODES),
    _bool_variable("SOLLOL_PARALLEL_REQUESTS", "parallel_requests"),
    _int_variable("SOLLOL_MAX_CONCURRENT_REQUESTS", "max_concurrent_requests", 1, 1024),
    EnvVariable("SOLLOL_MIN_SUCCESS_RATE", "min_success_rate", partial(parse_float, minimum=0.0, maximum=1.0),
                range_text("a number", 0.0, 1.0), 0.0, 1.0),
    _bool_variable("SOLLOL_VRAM_MONITORING", "vram_monitoring"),
    _int_variable("SOLLOL_MIN_VRAM_MB", "min_vram_mb", 0),
    EnvVariable("SOLLOL_NODES", "nodes", parse_node_list, "comma-separated 'name=url;key=value' entries"),
    EnvVariable("OLLAMA_HOST", None, parse_ollama_host, OLLAMA_HOST_FORMAT),
    EnvVariable("SOLLOL_DISCOVERY_CIDR", "discovery_cidr", parse_discovery_cidr, DISCOVERY_CIDR_FORMAT),
    _bool_variable("SOLLOL_DISCOVER_LOCALHOST", "discover_localhost"),
    EnvVariable("SOLLOL_FIRST_TOKEN_TIMEOUT_S", "first_token_timeout_s",
                partial(parse_float, minimum=0.1, maximum=3600.0), range_text("a number", 0.1, 3600.0), 0.1, 3600.0),
)
ENV_BY_NAME: Mapping[str, EnvVariable] = {v.name: v for v in ENV_VARIABLES}


def config_values(parsed: Mapping[str, Any]) -> dict[str, Any]:
    """SollolConfig fields from parsed variables (name -> value; absent ones keep their defaults).
    OLLAMA_HOST's node joins the nodes."""
    values = {v.field: parsed[v.name] for v in ENV_VARIABLES if v.field is not None and v.name in parsed}
    values["nodes"] = with_ollama_host(parsed.get("SOLLOL_NODES", ()), parsed.get("OLLAMA_HOST"))
    return values


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
    # The ceiling of an attempt's first-token deadline, which follows what the node has to do (a
    # loaded model: from its measured first-token times; a cold load: from its size): watchdog.py.
    first_token_timeout_s: float = 180.0
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
        object.__setattr__(self, "default_mode", parse_mode("SOLLOL_DEFAULT_ROUTING_MODE", self.default_mode))
        for variable in ENV_VARIABLES:  # the bounds the environment's values must keep, for values set directly too
            if variable.field is not None and (variable.minimum is not None or variable.maximum is not None):
                value = getattr(self, variable.field)
                if not in_range(value, variable.minimum, variable.maximum):
                    raise ConfigError(variable.name, value, variable.allowed)

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
        """The engine's settings from the environment (``ENV_VARIABLES``); unset variables keep the defaults."""
        env = os.environ if env is None else env
        return cls(**config_values({v.name: v.parse(v.name, env[v.name]) for v in ENV_VARIABLES if v.name in env}))
