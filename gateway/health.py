"""Health: `/healthz` (the process answers), `/readyz` (it can take contacts) and `/metrics`, on the web port.

`/readyz` answers 200 when every check passes and 503 otherwise, with a JSON body naming each check and, for
those that fail, why: `{"ready": false, "checks": {"database": "OperationalError: …", "email.smtp": "ok", …}}`.

- `database`: a `SELECT 1` through the pool;
- each enabled channel: started (a channel that could not start, e.g. its port taken, is named with the error);
  `email.smtp` answers a 220 greeting on its port; `email.imap.<user@host>` fetchers connected (once they have
  connected at least once); `voice` its transports answer (the SIP supervisor's workers listen);
- `speech.<lang>`: a speech model for each configured language, when the voice channel is on.

The checks run in a thread, each bounded by a short timeout, so a stuck database delays the answer by seconds,
never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any, Callable

log = logging.getLogger("gateway.health")

OK = "ok"


class Health:
    def __init__(self, core, metrics=None):
        self.core, self.metrics = core, metrics
        self.channels: dict[str, Any] = {}
        self.failed: dict[str, str] = {}
        self.extra: dict[str, Callable[[], str | None]] = {}  # other modules' checks: None when fine

    def channel_started(self, name: str, service: Any) -> None:
        self.channels[name] = service
        self.failed.pop(name, None)

    def channel_failed(self, name: str, error: BaseException) -> None:
        self.failed[name] = f"did not start: {type(error).__name__}: {error}"[:500]

    # -- the checks -------------------------------------------------------------------------------------
    def checks(self) -> dict[str, str]:
        out: dict[str, str] = {"database": _run(self._database)}
        config = self.core.config
        for name, reason in self.failed.items():
            out[name] = reason
        if "email" in self.channels:
            if config.email.smtp.enabled:
                out["email.smtp"] = _run(lambda: _smtp_greets(config.email.smtp.host, config.email.smtp.port))
            for service in getattr(self.channels["email"], "services", ()):
                if hasattr(service, "mailbox"):  # an IMAP fetcher
                    m = service.mailbox
                    connected = getattr(service, "connected", None)  # the fetcher's live connection
                    out[f"email.imap.{m.user}@{m.host}"] = OK if connected in (None, True) else "not connected to the IMAP server"
        if "web" in self.channels:
            out["web"] = OK
        if "voice" in self.channels:
            ready = getattr(self.channels["voice"], "ready", None)
            out["voice"] = OK if ready is None or _run(ready) in (True, OK) else "the SIP transport is not answering"
            out.update(self._speech_models())
        for name, check in self.extra.items():
            out[name] = _run(lambda: check() or OK)
        return out

    def ready(self) -> tuple[bool, dict[str, str]]:
        checks = self.checks()
        return all(v == OK for v in checks.values()), checks

    def _database(self) -> str:
        from sqlalchemy import text

        with self.core.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return OK

    def _speech_models(self) -> dict[str, str]:
        voice = self.core.config.voice
        stt = getattr(voice, "stt", None)
        if stt is None:
            return {}
        try:
            from channels.voice.stt.registry import choose
        except ImportError as e:
            return {"speech": f"speech recognition is not installed: {e}"}
        models_dir = stt.models_dir or (self.core.config.storage.data_dir / "models")
        out = {}
        for language in stt.languages:
            out[f"speech.{language}"] = _run(lambda: choose(language, stt, models_dir) and OK)
        return out

    # -- HTTP -------------------------------------------------------------------------------------------
    def install(self, app) -> None:
        """Add the three routes to the web channel's ASGI app (FastAPI / Starlette)."""
        from starlette.responses import JSONResponse, PlainTextResponse, Response

        async def healthz(request):
            return PlainTextResponse("ok\n", headers={"cache-control": "no-store"})

        async def readyz(request):
            ok, checks = await asyncio.to_thread(self.ready)
            return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503,
                                headers={"cache-control": "no-store"})

        async def metrics(request):
            if self.metrics is None:
                return PlainTextResponse("no metrics\n", status_code=404)
            body, content_type = await asyncio.to_thread(self.metrics.exposition)
            return Response(body, media_type=content_type, headers={"cache-control": "no-store"})

        # Ahead of the channel's own routes, so no catch-all of theirs shadows them.
        for path, endpoint in (("/healthz", healthz), ("/readyz", readyz), ("/metrics", metrics)):
            app.add_route(path, endpoint, methods=["GET"], include_in_schema=False)
            app.router.routes.insert(0, app.router.routes.pop())


def _run(check: Callable[[], Any]) -> Any:
    try:
        return check()
    except Exception as e:  # noqa: BLE001 - a failing check is a reason, never a 500
        return f"{type(e).__name__}: {e}".strip()[:500]


def _smtp_greets(host: str, port: int, timeout: float = 3.0) -> str:
    host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        greeting = s.recv(512)
        s.sendall(b"QUIT\r\n")
    return OK if greeting.startswith(b"220") else f"the SMTP port answers {greeting[:60]!r}, not a 220 greeting"
