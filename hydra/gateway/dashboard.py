"""The SOLLOL Dashboard the seed promises at http://localhost:8080: a live page of the cluster,
served by the gateway itself (so ``python -m hydra serve`` alone has it).

A browser asking for ``/`` (its Accept header prefers HTML) gets the page; API clients asking for
``/`` still get Ollama's "Ollama is running", which some of them probe for. The page is three
static files shipped in the package (no CDN, no third-party request: a strict Content-Security-Policy
says so to the browser too); its script reads ``/api/hydra/status`` every two seconds and renders
with ``textContent`` only, so nothing a node or a model says can become markup.
"""
from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

STATIC = Path(__file__).with_name("static")
# Everything from this origin only; no inline script or style, no frames, no forms elsewhere.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_TYPES = {"dashboard.html": "text/html; charset=utf-8", "dashboard.js": "text/javascript; charset=utf-8",
          "dashboard.css": "text/css; charset=utf-8"}
_FILES = {name: (STATIC / name).read_bytes() for name in _TYPES}  # read once: they never change at run time


def wants_html(request: Request) -> bool:
    """A browser navigating here: its Accept names text/html (API clients send */* or JSON)."""
    return "text/html" in request.headers.get("accept", "")


def asset(name: str) -> Response:
    return Response(_FILES[name], media_type=_TYPES[name],
                    headers={"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                             "Cache-Control": "no-cache", "Referrer-Policy": "no-referrer"})


async def page(request: Request) -> Response:
    return asset("dashboard.html")


async def script(request: Request) -> Response:
    return asset("dashboard.js")


async def style(request: Request) -> Response:
    return asset("dashboard.css")
