"""The desk's view of outgoing mail (`/desk/outbox`): what waits in the durable outbox and why, what the relay
refused, what went. The count of waiting mails is in every desk page's header (`outbox_waiting()`), so mail
held back by a relay that is down, or not configured, is seen, not silently lost."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from .common import render, web
from .operator import require_operator

router = APIRouter(prefix="/desk", include_in_schema=False)


@router.get("/outbox")
async def outbox_page(request: Request, operator: str = Depends(require_operator)):
    w = web(request)
    port = getattr(w.ctx, "outbox", None)
    if port is None:
        return render(request, "outbox.html", entries=[], stats=None, relay=None, mail_on=False)
    stats = await run_in_threadpool(port.stats)
    entries = await run_in_threadpool(lambda: port.entries(limit=200))
    mail = getattr(getattr(w.ctx, "shared", None), "mail", None)
    return render(request, "outbox.html", entries=entries, stats=stats, relay=getattr(mail, "relay", None), mail_on=mail is not None)


def install(app) -> None:
    """The page, and `outbox_waiting()` for the desk's header."""
    app.include_router(router)
    state = app.state.web
    port = getattr(state.ctx, "outbox", None)
    state.templates.globals["outbox_waiting"] = (lambda: port.stats().waiting) if port is not None else (lambda: 0)
