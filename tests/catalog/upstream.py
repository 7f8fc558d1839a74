"""A real HTTP server on 127.0.0.1 that plays CivitAI or Hugging Face for the catalog's real clients.

Routes map a path to a queue of responses (the last one repeats) or to a function of the request; every
request is recorded so tests can check what the client sent (cursors, Range, Authorization).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        status, json.dumps(data).encode(), {"Content-Type": "application/json", **(headers or {})}
    )


def file_response(data: bytes) -> Callable[[Request], Response]:
    """Serve bytes with HTTP Range support (what resumable downloads need)."""

    def handler(request: Request) -> Response:
        wanted = request.headers.get("range", "")
        if wanted.startswith("bytes=") and wanted.endswith("-"):
            start = int(wanted[6:-1])
            if start >= len(data):
                return Response(416, b"", {"Content-Range": f"bytes */{len(data)}"})
            return Response(
                206,
                data[start:],
                {
                    "Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}",
                    "Content-Type": "application/octet-stream",
                },
            )
        return Response(200, data, {"Content-Type": "application/octet-stream"})

    return handler


Route = list[Response] | Callable[[Request], Response]


class FakeUpstream:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._answer("GET")

            def do_HEAD(self) -> None:  # noqa: N802
                self._answer("HEAD")

            def _answer(self, method: str) -> None:
                parts = urlsplit(self.path)
                request = Request(
                    method, parts.path, parse_qs(parts.query), {k.lower(): v for k, v in self.headers.items()}
                )
                response = upstream.respond(request)
                self.send_response(response.status)
                for key, value in response.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                if method != "HEAD":
                    self.wfile.write(response.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeUpstream:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add(self, path: str, *responses: Response) -> None:
        self.routes[path] = list(responses)

    def add_handler(self, path: str, handler: Callable[[Request], Response]) -> None:
        self.routes[path] = handler

    def remove(self, path: str) -> None:
        self.routes.pop(path, None)

    def respond(self, request: Request) -> Response:
        with self._lock:
            self.requests.append(request)
            route = self.routes.get(request.path)
            if route is None:
                return json_response({"error": "Not found"}, 404)
            if callable(route):
                return route(request)
            return route.pop(0) if len(route) > 1 else route[0]

    def requests_to(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]
