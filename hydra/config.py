"""Every Hydra setting, resolved as defaults < environment < saved overrides.

``SETTINGS`` is the one registry: the settings page, the reasoning page and
start-up validation all read it, so a variable is described once. Parsing
reuses the engine's pure parsers (``hydra.sollol.config``) so an environment
value means the same thing to ``load_settings`` and ``SollolConfig.from_env``.

A bad environment value stops start-up with a ``ConfigError`` naming the
variable, the value and what is allowed. A bad *saved* value (written by an
older version) is skipped with a warning: the user can fix it on the settings
page, which they could not reach if it blocked start-up.
"""
from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import Any

from platformdirs import user_data_dir

from .sollol.config import SollolConfig, format_node, parse_bool, parse_float, parse_int, parse_node, parse_nodes
from .sollol.errors import ConfigError
from .sollol.types import NodeSpec, RoutingMode

logger = logging.getLogger(__name__)

REASONING_MODES = ("auto", "off", "standard", "deep")
EMBEDDED_NODE_MODES = ("auto", "on", "off")
GROUPS = ("routing", "resources", "reasoning", "nodes", "storage")
# A /16 is 65,534 hosts; anything wider turns "discovery" into a network scan.
MAX_DISCOVERY_PREFIX = 16


# --- parsers: (variable, text) -> value, raising ConfigError -------------------

def _parse_choice(choices: tuple[str, ...], variable: str, text: str) -> str:
    value = str(text).strip().lower()
    if value not in choices:
        raise ConfigError(variable, text, "one of " + ", ".join(choices))
    return value


def _parse_mode(variable: str, text: str) -> RoutingMode:
    return RoutingMode.parse(text, variable)


def _parse_model_name(variable: str, text: str) -> str:
    value = str(text).strip()
    if not value or any(c.isspace() for c in value):
        raise ConfigError(variable, text, "a model name such as qwen3:14b (non-empty, no spaces)")
    return value


def _parse_node_list(variable: str, text: str) -> tuple[NodeSpec, ...]:
    return tuple(parse_nodes(str(text), variable))


def _parse_ollama_host(variable: str, text: str) -> NodeSpec | None:
    # Mirrors SollolConfig.from_env: a bare host gets Ollama's port.
    host = str(text).strip()
    if not host:
        return None
    try:
        return parse_node(host if "://" in host or ":" in host else host + ":11434", variable)
    except ConfigError:
        raise ConfigError(variable, text, "host, host:port or http://host:port (empty: none)") from None


def _parse_cidr(variable: str, text: str) -> str | None:
    value = str(text).strip()
    if not value:
        return None
    allowed = (f"an IPv4 network such as 127.0.0.0/24, prefix /{MAX_DISCOVERY_PREFIX} or longer "
               "(empty turns discovery off)")
    try:
        # strict=False: "127.0.0.5/24" means the network it lies in, as people write it.
        network = ipaddress.IPv4Network(value, strict=False)
    except ValueError:
        raise ConfigError(variable, text, allowed) from None
    if network.prefixlen < MAX_DISCOVERY_PREFIX:
        raise ConfigError(variable, text, allowed)
    return str(network)


def _parse_path(variable: str, text: str) -> Path:
    value = str(text).strip()
    if not value:
        raise ConfigError(variable, text, "a file path")
    return Path(value).expanduser()


def _parse_host(variable: str, text: str) -> str:
    host = text.strip()
    if not host or any(c.isspace() or c in "/:" for c in host.replace("::", "")):
        raise ConfigError(variable, text, "an address to bind, such as 127.0.0.1 or 0.0.0.0")
    return host


def _parse_key(variable: str, text: str) -> str:
    key = text.strip()
    if text and not key:
        # Blank is not "no key": someone meant to set one, and serving without it would be silent.
        raise ConfigError(variable, text, "a key without spaces; to serve without a key, unset the variable")
    if any(c.isspace() for c in key):
        raise ConfigError(variable, "***", "a key without spaces")
    return key


def _parse_name_list(kind: str, variable: str, text: str) -> tuple[str, ...]:
    # Comma-separated, spaces and quotes trimmed as Ollama trims OLLAMA_ORIGINS; the gateway's guard
    # applies the entries (hydra/gateway/guard.py), this only refuses what could never match.
    entries = tuple(e.strip().strip("\"'").strip() for e in str(text).strip().strip("\"'").split(","))
    entries = tuple(e for e in entries if e)
    if any(_unusable_entry(kind, e) for e in entries):
        raise ConfigError(variable, text, _NAME_LISTS[kind])
    return entries


def _unusable_entry(kind: str, entry: str) -> bool:
    if len(entry) > 253 or entry.count("*") > 1 or any(c.isspace() for c in entry):
        return True
    if kind == "host":
        return "/" in entry
    scheme, sep, rest = entry.partition("://")
    return entry != "*" and (not sep or not scheme or "/" in rest)


_NAME_LISTS = {
    "host": "comma-separated host names such as gpu-box.lan or *.example.com, no scheme or path (* allows any)",
    "origin": "comma-separated origins such as https://chat.example.com or chrome-extension://*, "
              "no path (* allows any)",
}


def _parse_embedded(variable: str, text: str) -> str:
    # on/off read like the boolean variables do (true, 1, yes ...), so either spelling works.
    value = str(text).strip().lower()
    if value in EMBEDDED_NODE_MODES:
        return value
    try:
        return "on" if parse_bool(variable, value) else "off"
    except ConfigError:
        raise ConfigError(variable, text, "one of " + ", ".join(EMBEDDED_NODE_MODES)) from None


# --- formatters: value -> canonical text (what is saved and displayed) -----------

def _format_scalar(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


def _format_nodes(value: Iterable[NodeSpec]) -> str:
    return ",".join(format_node(spec) for spec in value)


def _format_host(value: NodeSpec | None) -> str:
    return value.url if value is not None else ""


@dataclass(frozen=True)
class Setting:
    """One environment variable: its default, what it accepts and where it belongs."""

    name: str
    default: str                      # as text, parsed like any environment value
    kind: str                         # choice / bool / int / float / text / nodes / url / cidr / path
    allowed: str                      # what the settings page shows next to the input
    description: str
    parse: Callable[[str, str], Any]  # (variable, text) -> value; raises ConfigError
    runtime: bool                     # may change while Hydra runs (and be saved)
    group: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None      # bounds of int/float settings, for number inputs
    maximum: float | None = None
    format: Callable[[Any], str] = field(default=_format_scalar)


def _int(name: str, default: str, minimum: int, maximum: int | None, description: str, runtime: bool,
         group: str) -> Setting:
    allowed = f"an integer from {minimum} to {maximum}" if maximum is not None else f"an integer >= {minimum}"
    return Setting(name, default, "int", allowed, description, partial(parse_int, minimum=minimum, maximum=maximum),
                   runtime, group, minimum=minimum, maximum=maximum)


def _float(name: str, default: str, minimum: float, maximum: float, description: str, runtime: bool,
           group: str) -> Setting:
    return Setting(name, default, "float", f"a number from {minimum} to {maximum}", description,
                   partial(parse_float, minimum=minimum, maximum=maximum), runtime, group,
                   minimum=minimum, maximum=maximum)


def _choice(choices: tuple[str, ...]) -> Callable[[str, str], str]:
    return partial(_parse_choice, choices)


_MODES = tuple(m.value for m in RoutingMode)

SETTINGS: tuple[Setting, ...] = (
    # routing
    Setting("SOLLOL_DEFAULT_ROUTING_MODE", "async", "choice", "one of " + ", ".join(_MODES),
            "How a node is chosen when a task names no mode.", _parse_mode, True, "routing", _MODES),
    Setting("SOLLOL_PARALLEL_REQUESTS", "true", "bool", "true or false",
            "Run several requests at once across the nodes (off: one at a time).", parse_bool, True, "routing"),
    _int("SOLLOL_MAX_CONCURRENT_REQUESTS", "4", 1, 1024,
         "Requests in flight at once, across all nodes.", True, "routing"),
    _float("SOLLOL_MIN_SUCCESS_RATE", "0.98", 0.0, 1.0,
           "Reliable mode only uses nodes with at least this recent success rate.", True, "routing"),
    # resources
    Setting("SOLLOL_VRAM_MONITORING", "true", "bool", "true or false",
            "Watch GPU memory and keep large model loads off nodes that are short of it.",
            parse_bool, True, "resources"),
    _int("SOLLOL_MIN_VRAM_MB", "100", 0, None,
         "A GPU node with less free VRAM than this (MB) takes no new large model.", True, "resources"),
    # reasoning
    Setting("HYDRA_REASONING_MODE", "auto", "choice", "one of " + ", ".join(REASONING_MODES),
            "auto adapts the thinking level to the task's complexity; off, standard, deep fix it.",
            _choice(REASONING_MODES), True, "reasoning", REASONING_MODES),
    Setting("HYDRA_REASONING_MODEL", "qwen3:14b", "text", "a model name such as qwen3:14b (no spaces)",
            "Model used for reasoning tasks.", _parse_model_name, True, "reasoning"),
    Setting("HYDRA_USE_REASONING_MODEL", "true", "bool", "true or false",
            "Send reasoning and math tasks to the reasoning model.", parse_bool, True, "reasoning"),
    _int("HYDRA_MAX_THINKING_TOKENS", "6000", 1, 200_000, "Largest thinking budget, in tokens.", True, "reasoning"),
    _float("HYDRA_DEEP_THINKING_THRESHOLD", "9.5", 0.0, 10.0,
           "Complexity score (0-10) from which deep thinking is used.", True, "reasoning"),
    # nodes
    Setting("SOLLOL_NODES", "", "nodes", "comma-separated 'name=url;key=value' entries",
            "Ollama nodes to route to.", _parse_node_list, True, "nodes", format=_format_nodes),
    Setting("OLLAMA_HOST", "", "url", "host, host:port or http://host:port (empty: none)",
            "One more Ollama node, as the ollama client reads it.", _parse_ollama_host, False, "nodes",
            format=_format_host),
    Setting("SOLLOL_DISCOVERY_CIDR", "", "cidr", f"an IPv4 network, /{MAX_DISCOVERY_PREFIX} or narrower",
            "Scan this network for Ollama nodes at start (empty: no scan).", _parse_cidr, False, "nodes"),
    Setting("SOLLOL_DISCOVER_LOCALHOST", "true", "bool", "true or false",
            "Use the Ollama at localhost:11434 when one answers there.", parse_bool, False, "nodes"),
    Setting("HYDRA_EMBEDDED_NODE", "auto", "choice", "one of " + ", ".join(EMBEDDED_NODE_MODES),
            "Built-in llama.cpp node; auto starts it when no other node is configured or answering.",
            _parse_embedded, False, "nodes", EMBEDDED_NODE_MODES),
    # storage: what the process fixes at start (its database, the port it serves on)
    Setting("HYDRA_DB", str(Path(user_data_dir("hydra")) / "hydra.db"), "path", "a file path",
            "SQLite file holding task history, routing decisions and saved settings.",
            _parse_path, False, "storage"),
    _int("HYDRA_GATEWAY_PORT", "8080", 0, 65535,
         "Port of the Ollama/OpenAI-compatible HTTP gateway and /metrics (0: no gateway).", False, "storage"),
    Setting("HYDRA_GATEWAY_HOST", "127.0.0.1", "text", "an address to bind, such as 127.0.0.1 or 0.0.0.0",
            "Address the gateway listens on (loopback unless you open it).", _parse_host, False, "storage"),
    Setting("HYDRA_API_KEY", "", "text", "any string without spaces (empty: no key)",
            "When set, every gateway route but / needs 'Authorization: Bearer <key>'.", _parse_key, False,
            "storage", format=lambda value: "***" if value else ""),
    Setting("HYDRA_ALLOWED_HOSTS", "", "text", _NAME_LISTS["host"],
            "More Host names the gateway answers to, besides this machine's names and IP addresses "
            "(a reverse proxy's or a DNS name of this machine).", partial(_parse_name_list, "host"), False,
            "storage", format=",".join),
    Setting("HYDRA_ALLOWED_ORIGINS", "", "text", _NAME_LISTS["origin"],
            "Web pages, besides this machine's, that may call the gateway from a browser "
            "(as OLLAMA_ORIGINS does for Ollama).", partial(_parse_name_list, "origin"), False,
            "storage", format=",".join),
)

SETTINGS_BY_NAME: Mapping[str, Setting] = MappingProxyType({s.name: s for s in SETTINGS})


def get_setting(name: str) -> Setting:
    try:
        return SETTINGS_BY_NAME[name]
    except KeyError:
        raise ConfigError("setting", name, "one of " + ", ".join(SETTINGS_BY_NAME)) from None


def parse_value(name: str, text: Any) -> Any:
    """Parse one setting's text (the settings page refuses bad input with the message)."""
    setting = get_setting(name)
    return setting.parse(name, text)


def _coerce(setting: Setting, value: Any) -> Any:
    # Already-parsed values go through their text form, so they are validated
    # and canonicalised exactly like typed input.
    text = value if isinstance(value, str) else setting.format(value)
    return setting.parse(setting.name, text)


@dataclass(frozen=True)
class SettingDiff:
    name: str
    env_value: Any   # what the environment (or the default) gives
    value: Any       # what is in force


@dataclass(frozen=True)
class Settings:
    """Resolved settings. Immutable: changes return a new ``Settings``."""

    values: Mapping[str, Any]
    sources: Mapping[str, str]         # "default" | "env" | "saved"
    env_values: Mapping[str, Any]      # defaults < environment, before saved overrides
    env_sources: Mapping[str, str] = field(default_factory=dict)  # "default" | "env", for resets

    def __getitem__(self, name: str) -> Any:
        get_setting(name)
        return self.values[name]

    def as_text(self, name: str) -> str:
        return get_setting(name).format(self[name])

    def with_value(self, name: str, value: Any) -> Settings:
        """A copy with ``name`` overridden (as the settings page saves it)."""
        setting = get_setting(name)
        if not setting.runtime:
            raise ConfigError(name, value, "a setting that can change while Hydra runs; "
                              "this one is read at start-up, set it in the environment")
        return self._replace(name, _coerce(setting, value), "saved")

    def without_override(self, name: str) -> Settings:
        """A copy with ``name`` back to what the environment (or the default) says."""
        get_setting(name)
        return self._replace(name, self.env_values[name], self.env_sources.get(name, "default"))

    def overridden(self) -> list[SettingDiff]:
        """Saved values that differ from the environment, in registry order."""
        return [SettingDiff(s.name, self.env_values[s.name], self.values[s.name]) for s in SETTINGS
                if self.sources[s.name] == "saved" and self.values[s.name] != self.env_values[s.name]]

    def _replace(self, name: str, value: Any, source: str) -> Settings:
        values = dict(self.values, **{name: value})
        sources = dict(self.sources, **{name: source})
        return Settings(MappingProxyType(values), MappingProxyType(sources), self.env_values, self.env_sources)

    # --- typed views ----------------------------------------------------------
    @property
    def default_mode(self) -> RoutingMode:
        return self.values["SOLLOL_DEFAULT_ROUTING_MODE"]

    @property
    def parallel_requests(self) -> bool:
        return self.values["SOLLOL_PARALLEL_REQUESTS"]

    @property
    def max_concurrent_requests(self) -> int:
        return self.values["SOLLOL_MAX_CONCURRENT_REQUESTS"]

    @property
    def min_success_rate(self) -> float:
        return self.values["SOLLOL_MIN_SUCCESS_RATE"]

    @property
    def vram_monitoring(self) -> bool:
        return self.values["SOLLOL_VRAM_MONITORING"]

    @property
    def min_vram_mb(self) -> int:
        return self.values["SOLLOL_MIN_VRAM_MB"]

    @property
    def reasoning_mode(self) -> str:
        return self.values["HYDRA_REASONING_MODE"]

    @property
    def reasoning_model(self) -> str:
        return self.values["HYDRA_REASONING_MODEL"]

    @property
    def use_reasoning_model(self) -> bool:
        return self.values["HYDRA_USE_REASONING_MODEL"]

    @property
    def max_thinking_tokens(self) -> int:
        return self.values["HYDRA_MAX_THINKING_TOKENS"]

    @property
    def deep_thinking_threshold(self) -> float:
        return self.values["HYDRA_DEEP_THINKING_THRESHOLD"]

    @property
    def nodes(self) -> tuple[NodeSpec, ...]:
        """SOLLOL_NODES only; ``all_nodes`` adds OLLAMA_HOST."""
        return self.values["SOLLOL_NODES"]

    @property
    def ollama_host(self) -> NodeSpec | None:
        return self.values["OLLAMA_HOST"]

    @property
    def all_nodes(self) -> tuple[NodeSpec, ...]:
        # Same rule as SollolConfig.from_env: OLLAMA_HOST joins unless already listed.
        host = self.ollama_host
        if host is None or any(n.url == host.url for n in self.nodes):
            return self.nodes
        return (*self.nodes, host)

    @property
    def discovery_cidr(self) -> str | None:
        return self.values["SOLLOL_DISCOVERY_CIDR"]

    @property
    def discover_localhost(self) -> bool:
        return self.values["SOLLOL_DISCOVER_LOCALHOST"]

    @property
    def embedded_node(self) -> str:
        return self.values["HYDRA_EMBEDDED_NODE"]

    @property
    def db_path(self) -> Path:
        return self.values["HYDRA_DB"]

    @property
    def gateway_port(self) -> int:
        return self.values["HYDRA_GATEWAY_PORT"]

    @property
    def gateway_host(self) -> str:
        return self.values["HYDRA_GATEWAY_HOST"]

    @property
    def api_key(self) -> str:
        return self.values["HYDRA_API_KEY"]

    @property
    def allowed_hosts(self) -> tuple[str, ...]:
        return self.values["HYDRA_ALLOWED_HOSTS"]

    @property
    def allowed_origins(self) -> tuple[str, ...]:
        return self.values["HYDRA_ALLOWED_ORIGINS"]

    def sollol_config(self, **extra: Any) -> SollolConfig:
        """The engine's config; ``extra`` sets SollolConfig fields Hydra does not expose."""
        config = SollolConfig(
            default_mode=self.default_mode,
            parallel_requests=self.parallel_requests,
            max_concurrent_requests=self.max_concurrent_requests,
            vram_monitoring=self.vram_monitoring,
            min_vram_mb=self.min_vram_mb,
            min_success_rate=self.min_success_rate,
            discovery_cidr=self.discovery_cidr,
            discover_localhost=self.discover_localhost,
            nodes=self.all_nodes,
        )
        return config.replace(**extra) if extra else config


def load_settings(env: Mapping[str, str] | None = None, saved: Mapping[str, str] | None = None) -> Settings:
    """Defaults, then the environment (strict), then saved overrides (lenient)."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for setting in SETTINGS:
        if setting.name in env:
            values[setting.name] = setting.parse(setting.name, env[setting.name])
            sources[setting.name] = "env"
        else:
            values[setting.name] = setting.parse(setting.name, setting.default)
            sources[setting.name] = "default"
    env_values, env_sources = dict(values), dict(sources)
    for name, text in (saved or {}).items():
        setting = SETTINGS_BY_NAME.get(name)
        if setting is None:
            # The settings table may hold keys other parts of Hydra save; not ours to judge.
            logger.debug("saved key %s is not a setting; ignored", name)
            continue
        if not setting.runtime:
            logger.warning("ignoring saved %s=%r: it is read from the environment at start-up only", name, text)
            continue
        try:
            values[name] = setting.parse(name, text)
        except ConfigError as exc:
            logger.warning("ignoring saved setting: %s (using %s)", exc, setting.format(values[name]) or "empty")
            continue
        sources[name] = "saved"
    return Settings(MappingProxyType(values), MappingProxyType(sources),
                    MappingProxyType(env_values), MappingProxyType(env_sources))
