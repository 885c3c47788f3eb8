"""The SOLLOL Dashboard on the gateway: browsers get the live page at /, API clients get Ollama's
answer; the page is self-contained (nothing from elsewhere) and works with an API key set.
What only a browser shows (the page filling itself in) is in tests/e2e/test_dashboard.py."""
from __future__ import annotations

import re
from typing import Any

import httpx
import ollama

from hydra.gateway import Gateway

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def test_a_browser_at_the_root_gets_the_dashboard(seed_gateway: Any) -> None:
    page = httpx.get(seed_gateway.url + "/", headers={"Accept": BROWSER_ACCEPT})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "SOLLOL Dashboard" in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    for asset in re.findall(r'(?:src|href)="([^"]+)"', page.text):
        assert asset.startswith("/dashboard/"), asset
        assert httpx.get(seed_gateway.url + asset).status_code == 200


def test_api_clients_at_the_root_still_get_ollamas_answer(seed_gateway: Any) -> None:
    plain = httpx.get(seed_gateway.url + "/")
    assert (plain.status_code, plain.text) == (200, "Ollama is running")
    assert httpx.get(seed_gateway.url + "/", headers={"Accept": "*/*"}).text == "Ollama is running"
    assert ollama.Client(host=seed_gateway.url).list().models  # the client's own calls are untouched


def test_the_dashboard_names_no_other_host() -> None:
    from hydra.gateway import dashboard
    for name in ("dashboard.html", "dashboard.js", "dashboard.css"):
        text = (dashboard.STATIC / name).read_text(encoding="utf-8")
        assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.IGNORECASE), name
        assert "innerHTML" not in text  # node and model text is rendered as text only


def test_with_a_key_the_page_loads_and_its_data_needs_the_key(seed_gateway: Any) -> None:
    with Gateway(seed_gateway.service, port=0, api_key="s3cret") as keyed:
        assert "SOLLOL Dashboard" in httpx.get(keyed.url + "/dashboard").text
        assert httpx.get(keyed.url + "/dashboard/dashboard.js").status_code == 200
        assert httpx.get(keyed.url + "/api/hydra/status").status_code == 401
        status = httpx.get(keyed.url + "/api/hydra/status", headers={"Authorization": "Bearer s3cret"})
        assert status.status_code == 200 and len(status.json()["nodes"]) == 2
