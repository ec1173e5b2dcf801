"""Test support shipped with the channel: run the web app on a loopback port in a background thread, and a
collecting webhook receiver.

`ServerThread(app)` starts the same `WebService` the gateway runs (uvicorn on a real socket, and any
background services such as the webhook dispatcher), in its own event loop, so tests, benchmarks and other
channels' tests can drive it with a real HTTP client or browser. `WebhookReceiver` is a plain HTTP server
on 127.0.0.1 that keeps every POST it gets and can be told to fail the next ones.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .plugin import WebService


class ServerThread:
    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, background: list | None = None):
        self.service = WebService(app, host, port, background=background)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="web-test-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.service.host}:{self.service.port}"

    def _run(self) -> None:
        async def main():
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            try:
                await self.service.start()
            except BaseException as e:
                self._error = e
                self._ready.set()
                return
            self._ready.set()
            await self._stop.wait()
            await self.service.stop()

        asyncio.run(main())

    def __enter__(self) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(20):
            raise RuntimeError("the web server did not start within 20 s")
        if self._error is not None:
            raise RuntimeError(f"the web server did not start: {self._error}") from self._error
        return self

    def __exit__(self, *exc) -> None:
        if not self._thread.is_alive():  # stopped already
            return
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(20)


@dataclass
class Hook:
    """One POST the receiver took: its headers (lower-case names) and the raw body."""

    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 that answers 204 to every POST and keeps it; `fail(n)` answers the next n
    with an error instead (counted in `refused`)."""

    def __init__(self) -> None:
        self.received: list[Hook] = []
        self.refused = 0
        self._fail: list[int] = []
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver._cond:
                    status = receiver._fail.pop(0) if receiver._fail else 204
                    if status == 204:
                        receiver.received.append(Hook({k.lower(): v for k, v in self.headers.items()}, body))
                    else:
                        receiver.refused += 1
                    receiver._cond.notify_all()
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks"
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True)

    def fail(self, times: int, status: int = 503) -> None:
        with self._cond:
            self._fail += [status] * times

    def wait(self, count: int, timeout: float = 15.0) -> list[Hook]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"the receiver got {len(self.received)} webhook(s), expected {count}")
                self._cond.wait(left)
            return list(self.received)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
