"""Which requests the gateway answers at all: the Host and Origin rules, CORS, what a browser may POST,
and the API key. Pure (no ASGI here): ``app.RequestGuard`` applies these rules to every request.

Any web page the user opens can send requests to a gateway on their machine, so, as Ollama does:

- **Host** (against DNS rebinding, where a page on ``evil.example`` has its name re-pointed at the
  gateway and then reads the answers as its own): the Host header must be a name of this machine
  (``localhost``, ``*.localhost``, the machine's host name, the bind address), a private-use name
  (``*.local``, ``*.internal``: no public DNS answers for them), an IP literal (rebinding needs a
  name the attacker's DNS controls; a page that uses an IP is cross-origin and meets the Origin
  rule), or a name in ``HYDRA_ALLOWED_HOSTS`` (``*`` any, ``*.example.com`` a domain). The rule is
  the same whatever the bind address: a gateway on 0.0.0.0 answers its machine's name and any IP,
  and a DNS name that points at it (a reverse proxy, a Prometheus target) is added by the operator.
- **Origin** (a browser names the page that sends a request): allowed when absent (not a browser,
  or a same-origin GET), the gateway's own origin, a page of this machine (``http(s)://`` on
  localhost, 127.0.0.1, [::1], 0.0.0.0, ``*.localhost``, the machine's name or the bind address,
  any port: the app at :8501 is one), Ollama's desktop schemes (``app://``, ``file://``,
  ``tauri://``, ``vscode-webview://``, ``vscode-file://``), or ``HYDRA_ALLOWED_ORIGINS``, read as
  Ollama reads ``OLLAMA_ORIGINS``: a comma list, each entry exact or with one ``*`` (``*`` alone:
  any origin). A foreign origin gets 403 and no CORS headers, a preflight included.
- **Browser POST bodies**: a POST that carries an Origin must say ``Content-Type: application/json``.
  ``text/plain``, forms and multipart are the "simple" types a page may send to any site without a
  preflight; requiring JSON from browsers means no page can run a task by a plain form or fetch.
  Requests without an Origin (curl, the SDKs, scripts) are read as JSON whatever they declare, as
  Ollama does, so ``curl -d '{...}'`` (which declares a form) keeps working.

Decisions on Host and Origin values are cached (bounded), so the per-request cost is one dict lookup.
"""
from __future__ import annotations

import hmac
import ipaddress
import logging
import socket
from collections.abc import Iterable
from dataclasses import dataclass

log = logging.getLogger("hydra.gateway")

HOSTS_SETTING = "HYDRA_ALLOWED_HOSTS"
ORIGINS_SETTING = "HYDRA_ALLOWED_ORIGINS"
KEY_SETTING = "HYDRA_API_KEY"

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})
PRIVATE_SUFFIXES = (".localhost", ".local", ".internal")
WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::"})
DESKTOP_SCHEMES = ("app://", "file://", "tauri://", "vscode-webview://", "vscode-file://")

ALLOWED_METHODS = "GET, HEAD, POST, PUT, DELETE, OPTIONS"
_METHODS = frozenset(m.strip() for m in ALLOWED_METHODS.split(","))
# What the clients send: the SDKs' own headers (Ollama's list), Hydra's routing headers, the OpenAI SDKs'.
ALLOWED_HEADERS = frozenset({"authorization", "content-type", "accept", "user-agent", "x-requested-with",
                             "openai-beta", "openai-organization", "openai-project", "idempotency-key"})
ALLOWED_HEADER_PREFIXES = ("x-hydra-", "x-stainless-")
EXPOSED_HEADERS = "X-Hydra-Node, X-Hydra-Model, X-Hydra-Task-Id"
PREFLIGHT_MAX_AGE_S = 600
JSON_TYPES = frozenset({"application/json"})

_CACHE_LIMIT = 1024      # distinct Host / Origin values remembered; a flood of new ones is just not cached
_LOGGED_LIMIT = 64       # distinct refused values logged once each


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str
    kind: str = "permission_error"   # OpenAI's error type for the /v1 shape


def split_host(authority: str) -> str:
    """The host of ``host[:port]`` or ``[v6][:port]``, lower-case, without brackets or a final dot."""
    value = authority.strip().lower()
    if value.startswith("["):
        value = value[1:].partition("]")[0]
    elif value.count(":") == 1:
        value = value.partition(":")[0]
    return value.removesuffix(".")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def machine_names() -> frozenset[str]:
    """This machine's host name, and its first label ("box" of "box.lan")."""
    name = socket.gethostname().strip().lower().rstrip(".")
    return frozenset(n for n in (name, name.partition(".")[0]) if n)


def _bounded_put(cache: dict[str, bool], key: str, value: bool) -> bool:
    if len(cache) < _CACHE_LIMIT:
        cache[key] = value
    return value


class Guard:
    """The rules above for one gateway (its bind address and port), with the operator's additions."""

    def __init__(self, *, bind_host: str = "127.0.0.1", allowed_hosts: Iterable[str] = (),
                 allowed_origins: Iterable[str] = (), own_names: Iterable[str] | None = None) -> None:
        own = set(machine_names() if own_names is None else own_names) | LOOPBACK_NAMES
        bind = split_host(bind_host)
        if bind not in WILDCARD_BINDS:
            own.add(bind)
        self.own_names = frozenset(own)
        self._host_names, self._host_suffixes, self.any_host = _host_rules(allowed_hosts)
        self._origins, self._origin_patterns, self.any_origin = _origin_rules(allowed_origins)
        self._host_cache: dict[str, bool] = {}
        self._origin_cache: dict[str, bool] = {}
        self._logged: set[str] = set()

    # --- Host ---

    def host_allowed(self, host: str) -> bool:
        return self.any_host or self._host_named(host)

    def _host_named(self, host: str) -> bool:
        """Allowed by a rule that names it (not by ``*``)."""
        known = self._host_cache.get(host)
        return known if known is not None else _bounded_put(self._host_cache, host, self._judge_host(host))

    def _judge_host(self, header: str) -> bool:
        host = split_host(header)
        if not host or host in self.own_names or host in self._host_names:
            return True  # no Host at all is HTTP/1.0 from a script: no browser sends that
        return host.endswith(PRIVATE_SUFFIXES) or host.endswith(self._host_suffixes) or _is_ip(host)

    # --- Origin ---

    def origin_allowed(self, origin: str, host: str) -> bool:
        """Whether a page at ``origin`` may call the gateway it reached as ``host`` (already allowed)."""
        if origin in (f"http://{host}", f"https://{host}") and self._host_named(host):
            # The gateway's own origin. Not when only HYDRA_ALLOWED_HOSTS=* let the Host in: then a
            # rebinding page's origin matches its Host too, and it must still be an allowed origin.
            return True
        known = self._origin_cache.get(origin)
        return known if known is not None else _bounded_put(self._origin_cache, origin, self._judge_origin(origin))

    def _judge_origin(self, origin: str) -> bool:
        value = origin.strip().lower()
        if self.any_origin or value in self._origins:
            return True
        if any(value.startswith(prefix) and value.endswith(suffix) and len(value) >= len(prefix) + len(suffix)
               for prefix, suffix in self._origin_patterns):
            return True
        scheme, sep, authority = value.partition("://")
        if not sep:
            return False  # "null" (a sandboxed or file page in some browsers) and anything malformed
        if value.startswith(DESKTOP_SCHEMES):
            return True
        host = split_host(authority)
        return scheme in ("http", "https") and (host in self.own_names or host.endswith(".localhost"))

    # --- one request ---

    def refusal(self, method: str, host: str, origin: str | None, content_type: str | None) -> Refusal | None:
        """Why this request is refused before it reaches a route, or None (the order is the rules' order)."""
        if not self.host_allowed(host):
            self._log_once("host", host)
            return Refusal(403, f"Host {host!r} is not allowed here (it may be a page using DNS rebinding); "
                                f"to serve this name, add it to {HOSTS_SETTING} (comma-separated, * for any)")
        if origin is None:
            return None
        if not self.origin_allowed(origin, host):
            self._log_once("origin", origin)
            return Refusal(403, f"Origin {origin!r} is not allowed to call the gateway; to let pages from it "
                                f"call, add it to {ORIGINS_SETTING} (comma-separated, * for any)")
        if method == "POST" and media_type(content_type) not in JSON_TYPES:
            return Refusal(415, f"a request from a web page must send a JSON body with Content-Type: "
                                f"application/json, not {content_type or 'none'!r}", "invalid_request_error")
        return None

    def preflight_refusal(self, requested_method: str) -> Refusal | None:
        if requested_method.strip().upper() in _METHODS:
            return None
        return Refusal(403, f"method {requested_method!r} is not allowed; allowed: {ALLOWED_METHODS}")

    def _log_once(self, what: str, value: str) -> None:
        key = f"{what}:{value}"
        if key in self._logged or len(self._logged) >= _LOGGED_LIMIT:
            return
        self._logged.add(key)
        setting = HOSTS_SETTING if what == "host" else ORIGINS_SETTING
        log.warning("gateway: refused a request with %s %r (add it to %s to allow it; logged once)",
                    what.capitalize(), value, setting)


def media_type(content_type: str | None) -> str:
    return (content_type or "").partition(";")[0].strip().lower()


def preflight_headers(origin: str, requested_headers: str) -> list[tuple[str, str]]:
    """The answer to an allowed preflight: the origin itself, the methods, and the requested headers
    that are allowed (the browser then refuses the request itself if one it needs is missing)."""
    asked = [h.strip().lower() for h in requested_headers.split(",") if h.strip()]
    allowed = [h for h in asked if h in ALLOWED_HEADERS or h.startswith(ALLOWED_HEADER_PREFIXES)]
    return [*cors_headers(origin),
            ("access-control-allow-methods", ALLOWED_METHODS),
            ("access-control-allow-headers", ", ".join(allowed or sorted(ALLOWED_HEADERS))),
            ("access-control-max-age", str(PREFLIGHT_MAX_AGE_S))]


def cors_headers(origin: str) -> list[tuple[str, str]]:
    """What every answer to an allowed cross-origin request carries."""
    return [("access-control-allow-origin", origin), ("vary", "Origin"),
            ("access-control-expose-headers", EXPOSED_HEADERS)]


class ApiKey:
    """``Authorization: Bearer <key>``, the scheme in any case (RFC 9110: schemes are case-insensitive),
    the key compared in constant time."""

    def __init__(self, key: str) -> None:
        if not key.strip():
            raise ValueError(f"{KEY_SETTING} is blank: set a key, or unset it to serve without one")
        self._key = key.encode()

    def matches(self, authorization: bytes) -> bool:
        scheme, _, credentials = authorization.strip().partition(b" ")
        # compare_digest runs whether or not the scheme matched, so a wrong scheme costs what a wrong key does.
        right_key = hmac.compare_digest(credentials.strip(), self._key)
        return scheme.lower() == b"bearer" and right_key


# --- the operator's lists, as the settings give them ---

def _entries(values: Iterable[str]) -> list[str]:
    # Trimmed of spaces and quotes, as Ollama trims OLLAMA_ORIGINS; empty entries dropped.
    return [v.strip().strip("\"'").strip().lower() for v in values if v.strip().strip("\"'").strip()]


def _host_rules(values: Iterable[str]) -> tuple[frozenset[str], tuple[str, ...], bool]:
    entries = _entries(values)
    names = frozenset(split_host(e) for e in entries if not e.startswith("*"))
    suffixes = tuple(e[1:] for e in entries if e.startswith("*.") and len(e) > 2)
    return names, suffixes, "*" in entries


def _origin_rules(values: Iterable[str]) -> tuple[frozenset[str], tuple[tuple[str, str], ...], bool]:
    entries = [e.rstrip("/") for e in _entries(values)]
    exact = frozenset(e for e in entries if "*" not in e)
    patterns = tuple((prefix, suffix) for prefix, _, suffix in (e.partition("*") for e in entries if "*" in e))
    return exact, patterns, "*" in entries
