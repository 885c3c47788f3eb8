"""The gateway guard's rules, one table each: Host, Origin, browser bodies, preflight, the API key."""
from __future__ import annotations

import pytest

from hydra.config import load_settings
from hydra.gateway.guard import ApiKey, Guard, Refusal, cors_headers, preflight_headers, split_host
from hydra.sollol.errors import ConfigError

OWN = ("gpu-box.lan", "gpu-box")  # what socket.gethostname() would give, fixed for the table


def guard(bind: str = "127.0.0.1", hosts: tuple[str, ...] = (), origins: tuple[str, ...] = ()) -> Guard:
    return Guard(bind_host=bind, allowed_hosts=hosts, allowed_origins=origins, own_names=OWN)


SPLIT = [("localhost:8080", "localhost"), ("LOCALHOST", "localhost"), ("[::1]:8080", "::1"), ("[::1]", "::1"),
         ("::1", "::1"), ("example.com.:80", "example.com"), ("127.0.0.1", "127.0.0.1"), ("", "")]


@pytest.mark.parametrize(("authority", "host"), SPLIT)
def test_split_host(authority: str, host: str) -> None:
    assert split_host(authority) == host


HOSTS = [
    # (bind, HYDRA_ALLOWED_HOSTS, Host header, allowed)
    ("127.0.0.1", (), "localhost:8080", True),
    ("127.0.0.1", (), "127.0.0.1:8080", True),
    ("127.0.0.1", (), "[::1]:8080", True),
    ("127.0.0.1", (), "app.localhost:8080", True),
    ("127.0.0.1", (), "gpu-box:8080", True),                 # the machine's name
    ("127.0.0.1", (), "GPU-BOX.LAN:8080", True),
    ("127.0.0.1", (), "printer.local", True),                # private-use names: no public DNS answers them
    ("127.0.0.1", (), "host.docker.internal:8080", True),    # a container reaching its host
    ("127.0.0.1", (), "127.9.8.7:8080", True),               # an IP literal cannot be rebound
    ("127.0.0.1", (), "[fe80::1]:8080", True),
    ("127.0.0.1", (), "", True),                             # HTTP/1.0 without Host: not a browser
    ("127.0.0.1", (), "evil.example:8080", False),           # DNS rebinding
    ("127.0.0.1", (), "evil.example", False),
    ("127.0.0.1", (), "localhost.evil.example", False),
    ("127.0.0.1", (), "evil-localhost:8080", False),
    ("127.0.0.1", (), "gpu-box.evil.example", False),
    ("0.0.0.0", (), "gpu-box:8080", True),                   # bound to every address: the machine's name works
    ("0.0.0.0", (), "127.20.1.20:8080", True),
    ("0.0.0.0", (), "hydra.example.com", False),             # a DNS name is the operator's to add
    ("::", (), "hydra.example.com", False),
    ("hydra.example.com", (), "hydra.example.com:8080", True),  # the bind address itself
    ("0.0.0.0", ("hydra.example.com",), "hydra.example.com:443", True),
    ("0.0.0.0", ("HYDRA.example.com",), "hydra.example.com", True),
    ("0.0.0.0", ("*.example.com",), "a.b.example.com", True),
    ("0.0.0.0", ("*.example.com",), "example.com.evil.test", False),
    ("0.0.0.0", ("*.example.com",), "badexample.com", False),
    ("0.0.0.0", ("*",), "anything.test", True),
]


@pytest.mark.parametrize(("bind", "hosts", "header", "allowed"), HOSTS,
                         ids=[f"{b}-{','.join(h)}-{x or 'none'}" for b, h, x, _ in HOSTS])
def test_host_rule(bind: str, hosts: tuple[str, ...], header: str, allowed: bool) -> None:
    assert guard(bind, hosts).host_allowed(header) is allowed


ORIGINS = [
    # (HYDRA_ALLOWED_ORIGINS, Origin, Host the request came to, allowed)
    ((), "http://localhost:8501", "127.0.0.1:8080", True),     # the app
    ((), "http://127.0.0.1:8501", "127.0.0.1:8080", True),
    ((), "https://localhost", "127.0.0.1:8080", True),
    ((), "http://[::1]:3000", "127.0.0.1:8080", True),
    ((), "http://0.0.0.0:3000", "127.0.0.1:8080", True),
    ((), "http://chat.localhost:3000", "127.0.0.1:8080", True),
    ((), "http://gpu-box:8501", "gpu-box:8080", True),         # a page of this machine, by its name
    ((), "http://127.0.0.1:8080", "127.0.0.1:8080", True),     # the gateway's own origin
    ((), "tauri://localhost", "127.0.0.1:8080", True),         # Ollama's desktop schemes
    ((), "vscode-webview://abc", "127.0.0.1:8080", True),
    ((), "http://evil.example", "127.0.0.1:8080", False),
    ((), "https://localhost.evil.example", "127.0.0.1:8080", False),
    ((), "http://evil.example:8080", "evil.example:8080", False),  # same-origin by a Host no rule names
    ((), "ftp://localhost", "127.0.0.1:8080", False),
    ((), "null", "127.0.0.1:8080", False),                     # sandboxed pages
    ((), "chrome-extension://abcdef", "127.0.0.1:8080", False),
    (("https://chat.example.com",), "https://chat.example.com", "127.0.0.1:8080", True),
    (("https://chat.example.com",), "https://chat.example.com:8443", "127.0.0.1:8080", False),
    (("https://chat.example.com/",), "https://chat.example.com", "127.0.0.1:8080", True),
    (("chrome-extension://*",), "chrome-extension://abcdef", "127.0.0.1:8080", True),
    (("https://*.example.com",), "https://a.example.com", "127.0.0.1:8080", True),
    (("https://*.example.com",), "https://a.example.com.evil.test", "127.0.0.1:8080", False),
    (("*",), "http://evil.example", "127.0.0.1:8080", True),
    (("*",), "null", "127.0.0.1:8080", True),
    (("null",), "null", "127.0.0.1:8080", True),
]


@pytest.mark.parametrize(("origins", "origin", "host", "allowed"), ORIGINS,
                         ids=[f"{','.join(o)}-{x}" for o, x, _, _ in ORIGINS])
def test_origin_rule(origins: tuple[str, ...], origin: str, host: str, allowed: bool) -> None:
    assert guard(origins=origins).origin_allowed(origin, host) is allowed


def test_any_host_does_not_make_a_rebinding_page_its_own_origin() -> None:
    opened = guard("0.0.0.0", hosts=("*",))
    assert opened.refusal("GET", "evil.example:8080", None, None) is None
    refused = opened.refusal("POST", "evil.example:8080", "http://evil.example:8080", "application/json")
    assert refused is not None and refused.status == 403


JSON_CT = "application/json"
REQUESTS = [
    # (method, Host, Origin, Content-Type, status or None)
    ("POST", "127.0.0.1:8080", None, JSON_CT, None),
    ("POST", "127.0.0.1:8080", None, "application/x-www-form-urlencoded", None),  # curl -d
    ("POST", "127.0.0.1:8080", None, None, None),
    ("POST", "127.0.0.1:8080", "http://localhost:3000", JSON_CT, None),
    ("POST", "127.0.0.1:8080", "http://localhost:3000", "application/json; charset=utf-8", None),
    ("POST", "127.0.0.1:8080", "http://localhost:3000", "Application/JSON", None),
    ("POST", "127.0.0.1:8080", "http://localhost:3000", "text/plain;charset=UTF-8", 415),
    ("POST", "127.0.0.1:8080", "http://localhost:3000", "application/x-www-form-urlencoded", 415),
    ("POST", "127.0.0.1:8080", "http://localhost:3000", "multipart/form-data; boundary=x", 415),
    ("POST", "127.0.0.1:8080", "http://localhost:3000", None, 415),
    ("POST", "127.0.0.1:8080", "http://evil.example", "text/plain", 403),
    ("POST", "127.0.0.1:8080", "http://evil.example", JSON_CT, 403),
    ("GET", "127.0.0.1:8080", "http://localhost:3000", None, None),
    ("GET", "127.0.0.1:8080", "http://evil.example", None, 403),
    ("OPTIONS", "127.0.0.1:8080", "http://evil.example", None, 403),
    ("OPTIONS", "127.0.0.1:8080", "http://localhost:3000", None, None),
    ("GET", "evil.example:8080", None, None, 403),
    ("POST", "evil.example:8080", "http://localhost:3000", JSON_CT, 403),
]


@pytest.mark.parametrize(("method", "host", "origin", "content_type", "status"), REQUESTS,
                         ids=[f"{m}-{h}-{o}-{c}" for m, h, o, c, _ in REQUESTS])
def test_request_rule(method: str, host: str, origin: str | None, content_type: str | None,
                      status: int | None) -> None:
    refusal = guard().refusal(method, host, origin, content_type)
    assert (refusal.status if refusal else None) == status


def test_refusals_name_the_setting_that_opens_them() -> None:
    host = guard().refusal("GET", "evil.example:8080", None, None)
    origin = guard().refusal("GET", "localhost:8080", "http://evil.example", None)
    body = guard().refusal("POST", "localhost:8080", "http://localhost:3000", "text/plain")
    assert isinstance(host, Refusal) and "HYDRA_ALLOWED_HOSTS" in host.message and "evil.example" in host.message
    assert isinstance(origin, Refusal) and "HYDRA_ALLOWED_ORIGINS" in origin.message
    assert isinstance(body, Refusal) and "application/json" in body.message


def test_preflight_answers_with_the_origin_and_the_headers_clients_send() -> None:
    asked = "authorization, content-type, x-stainless-retry-count, x-hydra-mode, x-evil-header"
    headers = dict(preflight_headers("http://localhost:3000", asked))
    assert headers["access-control-allow-origin"] == "http://localhost:3000"
    assert headers["vary"] == "Origin"
    assert set(headers["access-control-allow-methods"].split(", ")) >= {"GET", "POST", "DELETE"}
    allowed = headers["access-control-allow-headers"].split(", ")
    assert allowed == ["authorization", "content-type", "x-stainless-retry-count", "x-hydra-mode"]
    assert int(headers["access-control-max-age"]) > 0
    assert guard().preflight_refusal("POST") is None and guard().preflight_refusal("post") is None
    refused = guard().preflight_refusal("TRACE")
    assert refused is not None and refused.status == 403


def test_answers_to_an_allowed_origin_expose_the_hydra_headers() -> None:
    headers = dict(cors_headers("http://localhost:3000"))
    assert headers["access-control-allow-origin"] == "http://localhost:3000" and headers["vary"] == "Origin"
    exposed = {h.strip() for h in headers["access-control-expose-headers"].split(",")}
    assert exposed == {"X-Hydra-Node", "X-Hydra-Model", "X-Hydra-Task-Id"}


KEYS = [(b"Bearer k3y", True), (b"bearer k3y", True), (b"BEARER k3y", True), (b"Bearer  k3y ", True),
        (b"Bearer k3y2", False), (b"Bearer k3", False), (b"Basic k3y", False), (b"k3y", False),
        (b"Bearer", False), (b"", False), (b"Bearerk3y", False)]


@pytest.mark.parametrize(("header", "ok"), KEYS, ids=[h.decode() or "empty" for h, _ in KEYS])
def test_bearer_scheme_in_any_case(header: bytes, ok: bool) -> None:
    assert ApiKey("k3y").matches(header) is ok


@pytest.mark.parametrize("blank", ["", " ", "\t\n"])
def test_a_blank_key_is_refused(blank: str) -> None:
    with pytest.raises(ValueError, match="HYDRA_API_KEY"):
        ApiKey(blank)


def test_decisions_are_cached_but_bounded() -> None:
    g = guard()
    for i in range(5000):
        g.host_allowed(f"evil{i}.example")
    assert len(g._host_cache) <= 1024
    assert g.host_allowed("localhost:8080") is True and g.host_allowed("evil0.example") is False


# --- the settings that open the guard, and the key ---

@pytest.mark.parametrize(("name", "text", "value"), [
    ("HYDRA_ALLOWED_HOSTS", "", ()),
    ("HYDRA_ALLOWED_HOSTS", " hydra.example.com , *.lan.example ", ("hydra.example.com", "*.lan.example")),
    ("HYDRA_ALLOWED_HOSTS", "'gpu-box.lan:8080'", ("gpu-box.lan:8080",)),
    ("HYDRA_ALLOWED_HOSTS", "*", ("*",)),
    ("HYDRA_ALLOWED_ORIGINS", "", ()),
    ("HYDRA_ALLOWED_ORIGINS", '"https://chat.example.com,chrome-extension://*"',
     ("https://chat.example.com", "chrome-extension://*")),
    ("HYDRA_ALLOWED_ORIGINS", "*", ("*",)),
    ("HYDRA_API_KEY", "", ""),
    ("HYDRA_API_KEY", " k3y\n", "k3y"),
])
def test_settings_parse(name: str, text: str, value: object) -> None:
    assert load_settings({name: text})[name] == value


@pytest.mark.parametrize(("name", "text"), [
    ("HYDRA_ALLOWED_HOSTS", "http://hydra.example.com"), ("HYDRA_ALLOWED_HOSTS", "hydra.example.com/x"),
    ("HYDRA_ALLOWED_HOSTS", "a b"), ("HYDRA_ALLOWED_HOSTS", "*.*.example.com"),
    ("HYDRA_ALLOWED_HOSTS", "x" * 300),
    ("HYDRA_ALLOWED_ORIGINS", "chat.example.com"), ("HYDRA_ALLOWED_ORIGINS", "https://chat.example.com/app"),
    ("HYDRA_ALLOWED_ORIGINS", "://x"), ("HYDRA_ALLOWED_ORIGINS", "https://*.*.example.com"),
    ("HYDRA_API_KEY", " "), ("HYDRA_API_KEY", "\t\n"), ("HYDRA_API_KEY", "two words"),
])
def test_bad_settings_are_refused_by_name(name: str, text: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings({name: text})


def test_a_blank_key_says_how_to_serve_without_one() -> None:
    with pytest.raises(ConfigError, match="unset the variable"):
        load_settings({"HYDRA_API_KEY": "   "})


def test_the_settings_reach_the_accessors() -> None:
    settings = load_settings({"HYDRA_ALLOWED_HOSTS": "a.example", "HYDRA_ALLOWED_ORIGINS": "https://b.example"})
    assert settings.allowed_hosts == ("a.example",) and settings.allowed_origins == ("https://b.example",)
    assert settings.as_text("HYDRA_ALLOWED_HOSTS") == "a.example"
