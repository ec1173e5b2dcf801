"""The web channel's entry point: `load(ctx)` builds the ASGI app and a service that serves it with uvicorn.

The server runs inside the gateway's event loop (no thread, no second process): `start()` returns once the
socket listens, `stop()` lets requests in flight finish. The `Desk` (ticket reads and lifecycle actions)
comes from the context, so the adapter never touches the database itself. When `[[web.webhooks]]` are
configured, the webhook dispatcher runs beside the server and stops after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import uvicorn

from .app import create_app

log = logging.getLogger("channels.web")


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):
        # The gateway owns SIGTERM/SIGINT and stops every channel in order; uvicorn must not take them over.
        yield


class WebService:
    name = "web"

    def __init__(self, app, host: str, port: int, mounts: dict | None = None, background: list | None = None):
        self.app, self.host, self.port = app, host, port
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
        self._task = asyncio.create_task(server.serve(), name="web-server")
        while not server.started:
            if self._task.done():  # it could not bind: report why instead of waiting forever
                await self._task
                raise RuntimeError(f"the web server did not start on {self.host}:{self.port}")
            await asyncio.sleep(0.02)
        if self.port == 0:
            self.port = server.servers[0].sockets[0].getsockname()[1]
        log.info("web channel listening on http://%s:%d/", self.host, self.port)
        try:
            for service in self.background:
                await service.start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
            self._server = self._task = None
        for service in reversed(self.background):
            try:
                await service.stop()
            except Exception:  # noqa: BLE001 - the server is down already; say what did not stop
                log.exception("web channel: %s did not stop cleanly", getattr(service, "name", service))


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
