"""The web channel's entry point: `load(ctx)` builds the ASGI app and a service that serves it with uvicorn.

The server runs inside the gateway's event loop (no thread, no second process): `start()` returns once the
socket listens, `stop()` lets requests in flight finish. The `Desk` (ticket reads and lifecycle actions)
comes from the context, so the adapter never touches the database itself. When `[[web.webhooks]]` are
configured, the webhook dispatcher runs beside the server and stops after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket

import uvicorn

from channels.services import start_all, stop_all

from .app import create_app

log = logging.getLogger("channels.web")


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):
        # The gateway owns SIGTERM/SIGINT and stops every channel in order; uvicorn must not take them over.
        yield


class WebService:
    name = "web"

    def __init__(self, app, host: str, port: int, mounts: dict | None = None, background: list | None = None,
                 reuse_port: bool = False):
        self.app, self.host, self.port = app, host, port
        # SO_REUSEPORT: several processes serving the same app each listen on the port and the kernel spreads the
        # connections between them (Linux 3.9+). Only `bench/web.py --processes` uses it for now: each process
        # would keep its own rate-limit counts, and on SQLite their commits wait on one another's write lock.
        self.reuse_port = reuse_port
        self.mounts = mounts if mounts is not None else {}  # other channels' ASGI apps, filled in at their load
        self.background = list(background or ())  # services with start()/stop() that run beside the server
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        for prefix, app in self.mounts.items():
            if not any(getattr(r, "path", None) == prefix for r in self.app.routes):
                self.app.mount(prefix, app)
                log.info("web channel serves %s for another channel", prefix)
        config = uvicorn.Config(
            self.app, host=self.host, port=self.port, log_config=None, access_log=False,
            proxy_headers=False, server_header=False, lifespan="off", timeout_graceful_shutdown=10,
        )
        server = _Server(config)
        self._server = server
        sockets = [self._reuse_port_socket()] if self.reuse_port else None
        self._task = asyncio.create_task(server.serve(sockets=sockets), name="web-server")
        while not server.started:
            if self._task.done():  # it could not bind: report why instead of waiting forever
                await self._task
                raise RuntimeError(f"the web server did not start on {self.host}:{self.port}")
            await asyncio.sleep(0.02)
        if self.port == 0:
            self.port = server.servers[0].sockets[0].getsockname()[1]
        log.info("web channel listening on http://%s:%d/", self.host, self.port)
        try:
            await start_all(self.background)
        except BaseException:
            await self.stop()
            raise
        # What is alive now (modules, the app, caches filled at start) lives as long as the process: moved out of
        # the collector's generations, it is no longer walked by every full collection, which took 50-60 ms each
        # under load (one every ~1.3 s at 600 posts/s) and made most of the form's p99.
        gc.collect()
        gc.freeze()

    def _reuse_port_socket(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((self.host, self.port))
            sock.listen(2048)
        except BaseException:
            sock.close()
            raise
        return sock

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
            self._server = self._task = None
        await stop_all(self.background, log, "web channel")
        gc.unfreeze()  # a process that starts the channel again (tests) must not keep this one's objects forever


def load(ctx) -> WebService:
    desk = getattr(ctx, "desk", None)
    if desk is None:
        raise RuntimeError("the web channel needs the desk service in its context (ChannelContext.desk)")
    shared = getattr(ctx, "shared", None)
    background = []
    if ctx.settings.webhooks:
        from .webhooks import WebhookDispatcher

        background.append(WebhookDispatcher(desk, ctx.settings))
    return WebService(create_app(ctx, desk), ctx.settings.host, ctx.settings.port, shared.http_mounts if shared else None, background)
