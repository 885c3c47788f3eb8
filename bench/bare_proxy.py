"""A bare streaming proxy for /api/chat (uvicorn + Starlette + httpx, the gateway's stack, and nothing
else: no routing, no history): the floor for what one extra HTTP hop in Python costs on this machine.

    python -m bench.bare_proxy NODE_URL PORT
"""
from __future__ import annotations

import sys

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route


def app_for(node_url: str) -> Starlette:
    client: list[httpx.AsyncClient] = []

    async def chat(request: Request) -> StreamingResponse:
        if not client:
            client.append(httpx.AsyncClient(base_url=node_url, timeout=30))
        upstream = await client[0].send(client[0].build_request("POST", "/api/chat", content=await request.body()),
                                        stream=True)

        async def pieces():
            try:
                async for piece in upstream.aiter_raw():
                    yield piece
            finally:
                await upstream.aclose()
        return StreamingResponse(pieces(), media_type="application/x-ndjson")

    return Starlette(routes=[Route("/api/chat", chat, methods=["POST"])])


if __name__ == "__main__":
    uvicorn.run(app_for(sys.argv[1]), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False)
