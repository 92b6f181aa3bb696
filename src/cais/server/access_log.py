"""One line per request on stderr: method, path, status and duration.

A plain ASGI wrapper writing a formatted line: no logging records, handlers or per-request
objects, so the line costs a few microseconds (the serving benchmark's hot path sees it).
"""

from __future__ import annotations

import time
from typing import Any, Callable, TextIO

__all__ = ["AccessLog"]


class AccessLog:
    """`GET /health/ready 200 0.4ms` for every HTTP request `app` answers."""

    def __init__(self, app: Callable, stream: TextIO) -> None:
        self.app = app
        self.stream = stream

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets when the app fails before answering

        async def send_noting_status(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            milliseconds = (time.perf_counter() - started) * 1000
            self.stream.write(f"{scope['method']} {scope['path']} {status} {milliseconds:.1f}ms\n")
