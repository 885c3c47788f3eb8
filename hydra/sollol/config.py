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
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from .addresses import read_ollama_host, shown, without_credentials
from .errors import ConfigError
from .types import MAX_MODEL_B, MAX_SLOTS, MAX_VRAM_MB, NAME_RULE, NodeSpec, RoutingMode

_TRUE = {"1", "true", "yes", "on", "enabled"}
_FALSE = {"0", "false", "no", "off", "disabled"}

# Bounds every value keeps. The whole of a variable: 16 KB holds 64 nodes with long names and
# credentials; more is a mistake (a pasted file), and is refused before anything parses it.
MAX_VALUE_CHARS = 16 * 1024
MAX_NODES = 64
MAX_MIN_VRAM_MB = 1024 * 1024            # 1 TB: more than any one node's VRAM
_MAX_NUMBER_CHARS = 32
# ASCII only: int() and float() also take "１２" (full-width), "1_000" and "inf", which no one means.
_INT = re.compile(r"[+-]?[0-9]+\Z")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")   # tab and line breaks are spacing


def config_text(variable: str, value: object, max_chars: int = MAX_VALUE_CHARS) -> str:
    """``value`` as trimmed text; refused when longer than ``max_chars`` or holding control characters.
    Every parser starts here, so no value reaches a parser (or a message) unbounded."""
    text = str(value)
    if len(text) > max_chars:
        raise ConfigError(variable, shown(text), f"at most {max_chars:,} characters")
    if _CONTROL.search(text):
        raise ConfigError(variable, shown(text), "text without control characters")
    return text.strip()


def parse_bool(variable: str, value: str | bool) -> bool:
    if isinstance(value, bool):
        return value
    text = config_text(variable, value).lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(variable, shown(value), "true or false")


def _number_text(variable: str, value: object, pattern: re.Pattern[str], allowed: str) -> str:
    text = str(value).strip()
    if len(text) > _MAX_NUMBER_CHARS or not pattern.match(text):
        hint = "" if text.isascii() and "_" not in text else " (in ASCII digits 0-9, no '_')"
        raise ConfigError(variable, shown(value), allowed + hint)
    return text


def parse_int(variable: str, value: str | int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    allowed = range_text("an integer", minimum, maximum)
    number = int(_number_text(variable, value, _INT, allowed))
    if not in_range(number, minimum, maximum):
        raise ConfigError(variable, shown(value), allowed)
    return number


def parse_float(variable: str, value: str | float, *, minimum: float | None = None,
                maximum: float | None = None, allowed: str | None = None) -> float:
    allowed = allowed or range_text("a number", minimum, maximum)
    number = float(_number_text(variable, value, _FLOAT, allowed))
    if not math.isfinite(number) or not in_range(number, minimum, maximum):   # "1e400" is inf
        raise ConfigError(variable, shown(value), allowed)
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
    if isinstance(value, RoutingMode):
        return value
    try:
        return RoutingMode.parse(config_text(variable, value), variable)
    except ConfigError as exc:
        raise ConfigError(variable, shown(value), exc.allowed) from None


# --- SOLLOL_NODES ---

MODEL_B_RULE = f"a number above 0 and at most {MAX_MODEL_B:g} (billions of parameters)"
NODES_FORMAT = ("comma-separated 'url' or 'name=url' entries, each optionally followed by ';key=value' "
                "(max_model_b, gpu, vram_mb, slots, local)")


def _parse_model_b(variable: str, value: str) -> float:
    number = parse_float(variable, value, minimum=0.0, maximum=MAX_MODEL_B, allowed=MODEL_B_RULE)
    if number <= 0:
        raise ConfigError(variable, shown(value), MODEL_B_RULE)
    return number


_NODE_ATTRS: Mapping[str, Callable[[str, str], Any]] = {
    "max_model_b": _parse_model_b,
    "gpu": parse_bool,
    "vram_mb": partial(parse_int, minimum=1, maximum=MAX_VRAM_MB),
    "slots": partial(parse_int, minimum=1, maximum=MAX_SLOTS),
    "local": parse_bool,
}


def parse_node(entry: str, variable: str = "SOLLOL_NODES") -> NodeSpec:
    """One ``name=url;key=value;...`` entry of SOLLOL_NODES."""
    head, *attr_parts = [p.strip() for p in config_text(variable, entry).split(";")]
    name, url = "", head
    if "=" in head and "://" not in head.split("=", 1)[0]:
        name, url = (s.strip() for s in head.split("=", 1))
        if not name:
            raise ConfigError(variable, shown(entry), f"{NAME_RULE} before '='; {NODES_FORMAT}")
    if not url or any(c.isspace() for c in url):
        raise ConfigError(variable, shown(entry), NODES_FORMAT)
    attrs: dict[str, Any] = {}
    for part in filter(None, attr_parts):
        key, sep, value = (s.strip() for s in part.partition("="))
        if not sep or key not in _NODE_ATTRS:
            raise ConfigError(variable, shown(entry), NODES_FORMAT)
        if key in attrs:
            raise ConfigError(variable, shown(entry), f"each attribute once ({key} is given twice)")
        attrs[key] = _NODE_ATTRS[key](f"{variable} ({key} of {shown(name or url)})", value)
    try:
        return NodeSpec(url=url, name=name, **attrs)
    except ConfigError as exc:
        raise ConfigError(variable, shown(entry), f"{exc.allowed}; {NODES_FORMAT}") from None


def parse_nodes(value: str, variable: str = "SOLLOL_NODES") -> list[NodeSpec]:
    entries = [e for e in config_text(variable, value).split(",") if e.strip()]
    if len(entries) > MAX_NODES:
        raise ConfigError(variable, shown(value), f"at most {MAX_NODES} nodes ({len(entries)} given)")
    specs = [parse_node(e, variable) for e in entries]
    refuse_duplicates(variable, value, specs)
    return specs


def refuse_duplicates(variable: str, value: object, specs: Iterable[NodeSpec]) -> None:
    """One name per node and one node per name: either repeat would drop a node without a word."""
    by_name: dict[str, NodeSpec] = {}
    by_address: dict[str, NodeSpec] = {}
    for spec in specs:
        first = by_name.setdefault(spec.name, spec)
        if first is not spec:
            raise ConfigError(variable, shown(value), f"distinct node names (repeated: {shown(spec.name)}, "
                              f"for {shown(first.url)} and {shown(spec.url)})")
        address = without_credentials(spec.url)   # http://a:b@h:1 and http://h:1 are one node
        first = by_address.setdefault(address, spec)
        if first is not spec:
            raise ConfigError(variable, shown(value), f"one name per node ({shown(address)} is named "
                              f"both {shown(first.name)} and {shown(spec.name)})")


def parse_node_list(variable: str, value: str) -> tuple[NodeSpec, ...]:
    return tuple(parse_nodes(str(value), variable))


# --- OLLAMA_HOST: one more node, written as the ollama client reads it ---

OLLAMA_HOST_FORMAT = "host, host:port or http://host:port (empty: none)"


def parse_ollama_host(variable: str, value: str) -> NodeSpec | None:
    """OLLAMA_HOST's node, or None when it is empty (``addresses.read_ollama_host`` says how it is read:
    as Ollama's clients do, 0.0.0.0 included)."""
    text = config_text(variable, value)
    try:
        address = read_ollama_host(variable, text)
        return None if address is None else NodeSpec(url=address.url)
    except ConfigError as exc:
        raise ConfigError(variable, shown(value), f"{exc.allowed}; {OLLAMA_HOST_FORMAT}") from None


def with_ollama_host(nodes: Iterable[NodeSpec], host: NodeSpec | None) -> tuple[NodeSpec, ...]:
    """The configured nodes, then OLLAMA_HOST's node unless one of them already has its address."""
    nodes = tuple(nodes)
    if host is None or any(without_credentials(n.url) == without_credentials(host.url) for n in nodes):
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
    text = config_text(variable, value)
    if not text:
        return None
    try:
        network = ipaddress.IPv4Network(text, strict=False)
    except ValueError:
        raise ConfigError(variable, shown(value), DISCOVERY_CIDR_FORMAT) from None
    if network.prefixlen < WIDEST_DISCOVERY_PREFIX:
        raise ConfigError(variable, shown(value), DISCOVERY_CIDR_FORMAT)
    return str(network)


def format_node(spec: NodeSpec) -> str:
    """The inverse of ``parse_node`` (for saving nodes added at run time): the name and ``local`` are
    written only when they differ from what the URL gives (an IPv6 default name holds no '=' or ',')."""
    inferred = NodeSpec(url=spec.url)
    parts = [spec.url if spec.name == inferred.name else f"{spec.name}={spec.url}"]
    for key in ("max_model_b", "gpu", "vram_mb"):
        value = getattr(spec, key)
        if value is not None:
            parts.append(f"{key}={str(value).lower() if isinstance(value, bool) else value}")
    parts.append(f"slots={spec.slots}")
    if spec.local != inferred.local:
        parts.append(f"local={str(spec.local).lower()}")
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
    _bool_variable("SOLLOL_PREFIX_AFFINITY", "prefix_affinity"),
    _int_variable("SOLLOL_MIN_VRAM_MB", "min_vram_mb", 0, MAX_MIN_VRAM_MB),
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
    # Prefix-aware placement: a follow-up goes where its conversation's prompt is still in the KV cache,
    # when that finishes sooner (prefix_cache.py). Off: routing ignores the nodes' caches.
    prefix_affinity: bool = True
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
            raise ConfigError("setting", shown(", ".join(sorted(unknown))),
                              "one of " + ", ".join(f.name for f in dataclasses.fields(self)))
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SollolConfig:
        """The engine's settings from the environment (``ENV_VARIABLES``); unset variables keep the defaults."""
        env = os.environ if env is None else env
        return cls(**config_values({v.name: v.parse(v.name, env[v.name]) for v in ENV_VARIABLES if v.name in env}))
