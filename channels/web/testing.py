"""Test support shipped with the channel: run the web app on a loopback port in a background thread.

`ServerThread(app)` starts the same `WebService` the gateway runs (uvicorn on a real socket), in its own
event loop, so tests, benchmarks and other channels' tests can drive it with a real HTTP client or browser.
"""

from __future__ import annotations

import asyncio
import threading

from .plugin import WebService


class ServerThread:
    def __init__(self, app, host: str = "127.0.0.1", port: int = 0):
        self.service = WebService(app, host, port)
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
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(20)
