"""Node URLs, host names and bind addresses, checked by their syntax alone (never a DNS lookup).

One reading for every place that takes an address: ``NodeSpec`` (SOLLOL_NODES, the Nodes page, the
scan), OLLAMA_HOST (``read_ollama_host``, as Ollama's clients read it) and the gateway's bind host
(``parse_bind_host``). A URL is ``http(s)://[user:password@]host[:port]`` and nothing after the
port but a lone "/": Hydra appends Ollama's paths itself, so a path or query would be dropped or
doubled without a word. Credentials stay in the URL (it is what is *used*; ``redact`` hides them
wherever a URL is shown).

``shown`` is how every configuration message quotes a value: credentials masked, at most
``SHOWN_CHARS`` characters, so a 100,000-character mistake gives a one-line message.
"""
from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple

from .errors import ConfigError
from .redact import redact_text

OLLAMA_PORT = 11434
MAX_URL_CHARS = 2048
MAX_HOST_CHARS = 253                      # the longest DNS name
SHOWN_CHARS = 64
_REDACT_WINDOW = 1024                     # credentials are looked for this far past a cut

URL_SHAPE = "http://host:port or https://host:port"
IPV6_SHAPE = "an IPv6 address in brackets, such as http://[::1]:11434"
HOST_RULE = (f"an IP address or a host name of dot-separated labels (letters, digits, '-', '_'; "
             f"at most 63 each, {MAX_HOST_CHARS} in all)")
# Ollama's clients: a URL that names its scheme and no port means that scheme's port.
SCHEME_PORTS = {"http": 80, "https": 443}

_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\Z")
_NUMERIC_HOST = re.compile(r"[0-9.]+\Z")
_PORT = re.compile(r"[0-9]{1,5}\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def shown(value: object) -> str:
    """``value`` as a message quotes it: credentials masked, long text cut (its length said instead)."""
    text = str(value)
    if len(text) <= SHOWN_CHARS:
        return redact_text(text)
    # Redact a bounded window before cutting: a cut inside "user:secret@" must not leave the secret,
    # and the redaction pattern must never run over 100,000 characters.
    head = redact_text(text[:SHOWN_CHARS + _REDACT_WINDOW])[:SHOWN_CHARS - 16]
    return f"{head}... ({len(text):,} characters)"


class Address(NamedTuple):
    """A node's address, normalised: lower-case scheme and host, IPv6 in brackets, an explicit port."""

    scheme: str
    userinfo: str    # "user:password" or "" (kept: the node may need it)
    host: str        # as written in a URL: "[::1]" for IPv6
    port: int

    @property
    def url(self) -> str:
        credentials = f"{self.userinfo}@" if self.userinfo else ""
        return f"{self.scheme}://{credentials}{self.host}:{self.port}"

    @property
    def host_port(self) -> str:
        """The address without scheme or credentials ("127.0.0.1:11434", "[::1]:11434"): a node's default name."""
        return f"{self.host}:{self.port}"

    @property
    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        try:
            return ipaddress.ip_address(self.host.strip("[]"))
        except ValueError:
            return None


def without_credentials(url: str) -> str:
    """A normalised node URL without its ``user:password@``: what makes two URLs one node."""
    scheme, sep, rest = url.partition("://")
    authority, slash, tail = rest.partition("/")
    return f"{scheme}{sep}{authority.rpartition('@')[2]}{slash}{tail}"


def host_problem(host: str) -> str | None:
    """What is wrong with a bare host (no brackets, no port), or None when its syntax is valid."""
    if not host:
        return "a host"
    if not host.isascii():
        return "a host in ASCII (write an international name in its xn-- form)"
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return IPV6_SHAPE
        return None
    if _NUMERIC_HOST.match(host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return "an IPv4 address of four numbers from 0 to 255, such as 127.0.0.1"
        return None
    if len(host) > MAX_HOST_CHARS or not all(_LABEL.match(label) for label in host.split(".")):
        return HOST_RULE
    return None


def parse_url(variable: str, text: str, *, default_port: int = OLLAMA_PORT, scheme_ports: bool = False) -> Address:
    """``text`` as a node URL; a missing scheme means http, a missing port ``default_port`` (or, with
    ``scheme_ports``, the named scheme's own port, as Ollama's clients read OLLAMA_HOST)."""
    raw = text.strip()
    if len(raw) > MAX_URL_CHARS:
        raise ConfigError(variable, shown(text), f"a URL of at most {MAX_URL_CHARS} characters ({URL_SHAPE})")
    if not raw.isascii() or _CONTROL.search(raw) or any(c.isspace() or c in ",;" for c in raw):
        # ',' and ';' separate SOLLOL_NODES' entries and attributes: in credentials they are %2C and %3B.
        raise ConfigError(variable, shown(text), f"a URL in ASCII without spaces, ',' or ';' ({URL_SHAPE})")
    scheme, sep, rest = raw.partition("://")
    if not sep:
        scheme, rest = "http", raw
    scheme = scheme.lower()
    if scheme not in SCHEME_PORTS:
        raise ConfigError(variable, shown(text), f"an http or https URL ({URL_SHAPE})")
    if sep and scheme_ports:
        default_port = SCHEME_PORTS[scheme]
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:cut], rest[cut:]
    if tail not in ("", "/"):
        raise ConfigError(variable, shown(text), f"no path, query or fragment after the port ({URL_SHAPE})")
    userinfo, at, host_port = authority.rpartition("@")
    if at and not userinfo:
        raise ConfigError(variable, shown(text), f"credentials as user:password@ before the host ({URL_SHAPE})")
    host, port = _split_host_port(variable, text, host_port, default_port)
    return Address(scheme, userinfo, host, port)


def _split_host_port(variable: str, text: str, host_port: str, default_port: int) -> tuple[str, int]:
    """("127.0.0.1", 11434) from "127.0.0.1:11434"; IPv6 comes back in brackets ("[::1]")."""
    if host_port.startswith("["):
        inside, bracket, after = host_port[1:].partition("]")
        if not bracket or host_problem(inside) is not None or ":" not in inside:
            raise ConfigError(variable, shown(text), IPV6_SHAPE)
        host, port_text = f"[{inside.lower()}]", after
        if port_text and not port_text.startswith(":"):
            raise ConfigError(variable, shown(text), f"a port after the brackets ({IPV6_SHAPE})")
    else:
        if host_port.count(":") > 1:
            raise ConfigError(variable, shown(text), f"host:port with one ':' ({IPV6_SHAPE})")
        host = host_port.partition(":")[0]
        port_text = host_port[len(host):]     # ":11434" or ""
        problem = host_problem(host)
        if problem is not None:
            raise ConfigError(variable, shown(text), f"{problem} in the URL")
        host = host.lower()
    if not port_text:
        return host, default_port
    digits = port_text[1:]
    if not _PORT.match(digits) or not 1 <= int(digits) <= 65535:
        raise ConfigError(variable, shown(text), f"a numeric port from 1 to 65535 ({URL_SHAPE})")
    return host, int(digits)


def read_ollama_host(variable: str, text: str) -> Address | None:
    """OLLAMA_HOST as Ollama's clients read it; None when empty.

    No scheme means http; no port means 11434, or 80/443 when the scheme is written (``http://gpu-box``
    is port 80 to the ollama client too); no host (":11500") means this machine. ``0.0.0.0`` and ``::``,
    which tell a *server* to listen everywhere, mean this machine to a client: 127.0.0.1 and [::1]."""
    raw = text.strip()
    if not raw:
        return None
    scheme, sep, rest = raw.partition("://")
    host_part = rest if sep else raw
    if host_part.rstrip("/") == "::":
        host_part = "[::]"                 # the one bare IPv6 address Ollama's documentation writes
    elif host_part.startswith(":"):
        host_part = "127.0.0.1" + host_part
    address = parse_url(variable, f"{scheme}://{host_part}" if sep else host_part, scheme_ports=True)
    ip = address.ip
    if ip is not None and ip.is_unspecified:
        return address._replace(host="127.0.0.1" if ip.version == 4 else "[::1]")
    return address


def parse_bind_host(variable: str, text: str) -> str:
    """An address to listen on: an IP literal (IPv6 with or without brackets) or a host name; no port."""
    host = text.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if "/" in host or host.count(":") == 1:
        problem: str | None = "just the address: no scheme, path or port (the port is a setting of its own)"
    elif ":" in host:
        problem = None if host_problem(host) is None else "an IPv6 address such as ::1 or ::"
    else:
        problem = host_problem(host) if len(host) <= MAX_HOST_CHARS else HOST_RULE
    if problem is not None:
        raise ConfigError(variable, shown(text), f"an address to bind such as 127.0.0.1, 0.0.0.0 or ::; {problem}")
    return host.lower()
