"""The operator desk under `/desk/`: login, the queue, the ticket page and its actions.

Every page but the login needs a valid session cookie naming a session the server still has (otherwise a
303 to the login page); logging out ends the session on the server too. Every POST needs the CSRF token.
Actions go to the `Desk`, which applies them through the lifecycle rules: a refused action comes back as
the ticket page with the rule's message and 409 Conflict (RFC 9110 §15.5.10). "Reply by email" goes out
through the email channel (`replies.py`); a reply that cannot go comes back with the reason.
"""

from __future__ import annotations

from urllib.parse import quote, unquote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from ticketing.desk import LifecycleError, NotAllowed, QueueFilters, TicketNotFound, UnknownAssignee
from ticketing.extraction import FIELD_NAMES
from ticketing.lifecycle import STATUSES

from .common import LoginRequired, client_key, csrf_ok, finish, language, rate_limit, render, web
from .i18n import LANGUAGES, Texts
from .ticket_page import ticket_page_context
from .public import clean
from .replies import ReplyError, send_reply
from .security import SESSION_COOKIE

router = APIRouter(prefix="/desk", include_in_schema=False)

ACTIONS = ("take", "escalate", "wait", "resume", "assign", "resolve", "close", "reopen", "note", "field", "reply")


async def require_operator(request: Request) -> str:
    w = web(request)
    session_id = w.signer.session_id(request.cookies.get(SESSION_COOKIE))
    username = await run_in_threadpool(w.desk.session_operator, session_id) if session_id else None
    if username is None:
        raise LoginRequired()
    request.state.operator = username
    # The desk's language is the operator's, on any browser: ?lang= changes it for their next sessions too.
    chosen = request.query_params.get("lang")
    saved = await run_in_threadpool(w.desk.accounts.language, username)
    if chosen in LANGUAGES and chosen != saved:
        await run_in_threadpool(w.desk.accounts.set_language, username, chosen)
        saved = chosen
    request.state.operator_language = saved
    return username


def _safe_next(target: str | None) -> str:
    # Only our own desk pages: an open redirect would let a phishing link bounce through the login.
    if target and target.startswith("/desk/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/desk/"


@router.get("/login")
async def login_form(request: Request, next: str = "/desk/"):
    return render(request, "login.html", next=_safe_next(next), error=None, username="")


@router.post("/login")
async def login(request: Request):
    w = web(request)
    rate_limit(request, "login")
    data = await request.form(max_files=0, max_fields=10, max_part_size=4096)
    token, target = data.get("csrf"), _safe_next(clean(data.get("next")))
    if not csrf_ok(request, token if isinstance(token, str) else None, "login"):
        return render(request, "error.html", 403, message="CSRF")
    username, password = clean(data.get("username"))[:100], data.get("password")
    password = password[:1000] if isinstance(password, str) else ""
    result = await run_in_threadpool(w.desk.accounts.authenticate, username, password, client_key(request))
    if not result.ok:
        # The same words for an unknown username and a wrong password; a wait is per (username, address).
        t = Texts(language(request))
        error = t("login_wrong")
        if result.wait_seconds:
            error += " " + t("login_wait", n=result.wait_seconds)
        return render(request, "login.html", 401, next=target, error=error, username=username)
    response = RedirectResponse(target, status_code=303)
    seconds = w.settings.session_hours * 3600
    session_id = await run_in_threadpool(w.desk.open_session, result.operator.username, seconds)
    response.set_cookie(
        SESSION_COOKIE, w.signer.session_cookie(session_id, seconds), max_age=int(seconds),
        httponly=True, samesite="strict", secure=w.settings.cookie_secure, path="/desk",
    )
    return response


@router.post("/logout")
async def logout(request: Request):
    data = await request.form(max_files=0, max_fields=5, max_part_size=1024)
    token = data.get("csrf")
    if not csrf_ok(request, token if isinstance(token, str) else None, "logout"):
        return render(request, "error.html", 403, message="CSRF")
    w = web(request)
    session_id = w.signer.session_id(request.cookies.get(SESSION_COOKIE))
    if session_id:  # a copy of the cookie (another tab, a stolen one) stops working too
        await run_in_threadpool(w.desk.close_session, session_id)
    response = RedirectResponse("/desk/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/desk")
    return response


QUEUE_COOKIE = "hd_queue"  # the queue's filters, so the ticket page's "back" and "next" keep them across actions
MOVE_ON = ("escalate", "resolve", "close", "wait")  # actions after which the operator's next ticket opens


def _filters(request: Request) -> tuple[QueueFilters, dict, int]:
    return _filters_of(request.query_params)


def _filters_of(q) -> tuple[QueueFilters, dict, int]:
    raw = {k: clean(q.get(k, ""))[:100] for k in ("status", "level", "channel", "asset", "assignee", "organisation", "group")}
    status = raw["status"] if raw["status"] in (*STATUSES, "open", "all") else "open"
    raw["status"] = status
    level = int(raw["level"]) if raw["level"] in ("1", "2", "3") else None
    channel = raw["channel"] if raw["channel"] in ("email", "voice", "web") else None
    page = int(q["page"]) if q.get("page", "").isdigit() and 0 < int(q["page"]) < 100000 else 1
    filters = QueueFilters(
        status=None if status == "all" else status, level=level, channel=channel,
        asset=raw["asset"] or None, assignee=raw["assignee"] or None,
        organisation=raw["organisation"] or None, group=raw["group"] or None,
    )
    return filters, raw, page


@router.get("/")
async def queue(request: Request):
    username = await require_operator(request)
    w = web(request)
    filters, raw, page = _filters(request)
    me = await run_in_threadpool(w.desk.accounts.get, username)
    if me is not None and me.role == "specialist":  # a specialist's queue is their groups' tickets
        from dataclasses import replace

        filters = replace(filters, mine=username)
    result = await run_in_threadpool(w.desk.queue, filters, page, 50)
    params = {k: v for k, v in raw.items() if v}
    template = "queue_rows.html" if request.query_params.get("partial") == "1" else "queue.html"
    response = render(
        request, template, page=result, filters=raw, statuses=STATUSES,
        page_link=lambda n: "/desk/?" + urlencode({**params, "page": n}),
        partial_url="/desk/?" + urlencode({**params, "page": page, "partial": 1}),
    )
    if template == "queue.html":
        response.set_cookie(QUEUE_COOKIE, quote(urlencode(params)[:1000], safe=""), httponly=True, samesite="strict", secure=w.settings.cookie_secure, path="/desk")
    return response


def _queue_query(request: Request) -> str:
    """The query string of the operator's last queue (kept percent-encoded in its cookie), re-encoded clean."""
    from urllib.parse import parse_qsl

    return urlencode(parse_qsl(unquote(request.cookies.get(QUEUE_COOKIE, ""))[:1000]))


async def _next_ticket(request: Request, number: str, operator: str | None) -> str | None:
    """The first ticket of this operator's queue (with the filters they last used) other than `number`."""
    from dataclasses import replace
    from urllib.parse import parse_qsl

    w = web(request)
    filters, _, _ = _filters_of(dict(parse_qsl(_queue_query(request))))
    me = await run_in_threadpool(w.desk.accounts.get, operator) if operator else None
    if me is not None and me.role == "specialist":
        filters = replace(filters, mine=operator)
    result = await run_in_threadpool(w.desk.queue, filters, 1, 2)
    return next((r.number for r in result.items if r.number != number), None)


@router.get("/poll")
async def poll(request: Request):
    """What the live queue polls: when the count or the newest change differs, it fetches the rows again."""
    await require_operator(request)
    count, newest = await run_in_threadpool(web(request).desk.latest)
    return JSONResponse({"count": count, "newest": newest.isoformat() if newest else None}, headers={"cache-control": "no-store"})


async def _ticket_page(request: Request, number: str, status: int = 200, error: str | None = None, done: str | None = None, reply_text: str = ""):
    w = web(request)
    try:
        ticket = await run_in_threadpool(w.desk.ticket, number)
        reply = await run_in_threadpool(w.desk.reply_target, number)
    except TicketNotFound:
        return render(request, "error.html", 404, message=Texts(language(request))("not_found_ticket", number=number))
    mail_on = getattr(w.ctx.shared, "mail", None) is not None
    operator = getattr(request.state, "operator", None)
    cannot = await run_in_threadpool(w.desk.refusal, number, operator) if operator else None  # this viewer's role
    me = await run_in_threadpool(w.desk.accounts.get, operator) if operator else None
    cards = await run_in_threadpool(w.desk.ticket_cards, number)  # reporter and asset cards (ticketing/cards.py)
    incidents = getattr(w.ctx, "incidents", None)  # parent, children, merges, proposed links (issue 13 §4)
    incident = await run_in_threadpool(incidents.incident, number) if incidents is not None else None
    return render(
        request, "ticket.html", status, ticket=ticket, error=error, done=done, field_names=FIELD_NAMES,
        reply=reply, mail_on=mail_on, reply_text=reply_text, cannot=cannot,
        supervisor=me is not None and me.role in ("supervisor", "admin"),  # sees the events' raw data
        cards=cards, incident=incident, **ticket_page_context(ticket),
        queue_url="/desk/?" + _queue_query(request), next_number=await _next_ticket(request, number, operator),
        prev=request.query_params.get("prev") if (request.query_params.get("prev") or "")[:40].replace("-", "").isalnum() else None,
    )


@router.get("/tickets/{number}")
async def ticket_page(request: Request, number: str):
    await require_operator(request)
    done = request.query_params.get("done")
    return await _ticket_page(request, number, done=done if done in ACTIONS else None)


@router.post("/tickets/{number}/{action}")
async def ticket_action(request: Request, number: str, action: str):
    operator = await require_operator(request)
    w = web(request)
    data = await request.form(max_files=0, max_fields=10, max_part_size=16 * 1024)
    token = data.get("csrf")
    if not csrf_ok(request, token if isinstance(token, str) else None, f"ticket:{number}"):
        return render(request, "error.html", 403, message="CSRF")
    if action not in ACTIONS:
        return await _ticket_page(request, number, 404, error=f"unknown action {action!r}")
    text = clean(data.get("text"))[:8000]
    desk = w.desk
    if action == "reply":
        try:
            await run_in_threadpool(send_reply, w.ctx, desk, number, text)
        except TicketNotFound:
            return render(request, "error.html", 404, message=Texts(language(request))("not_found_ticket", number=number))
        except ReplyError as e:
            message = Texts(language(request))("reply_empty") if e.status == 422 else str(e)
            return await _ticket_page(request, number, e.status, error=message, reply_text=text)
        response = RedirectResponse(f"/desk/tickets/{number}?done=reply", status_code=303)
        finish(request, response)
        return response
    calls = {
        "take": lambda: desk.take(number, operator),
        "wait": lambda: desk.wait(number, operator, text, "vendor" if data.get("waiting_for") == "vendor" else "user"),
        "resume": lambda: desk.resume(number, operator, text),
        "assign": lambda: desk.assign(number, operator, clean(data.get("assignee"))[:100] or None, clean(data.get("group"))[:100] or None),
        "escalate": lambda: desk.escalate(number, operator, text),
        "resolve": lambda: desk.resolve(number, operator, text),
        "close": lambda: desk.close(number, operator),
        "reopen": lambda: desk.reopen(number, operator, text),
        "note": lambda: desk.note(number, operator, text),
        "field": lambda: desk.set_field(number, operator, clean(data.get("name"))[:40], text),
    }
    try:
        await run_in_threadpool(calls[action])
    except TicketNotFound:
        return render(request, "error.html", 404, message=Texts(language(request))("not_found_ticket", number=number))
    except LifecycleError as e:
        return await _ticket_page(request, number, 409, error=str(e))
    except NotAllowed as e:
        return await _ticket_page(request, number, 403, error=str(e))
    except UnknownAssignee as e:
        return await _ticket_page(request, number, 422, error=str(e))
    following = await _next_ticket(request, number, operator) if action in MOVE_ON else None
    target = f"/desk/tickets/{following}?done={action}&prev={number}" if following else f"/desk/tickets/{number}?done={action}"
    response = RedirectResponse(target, status_code=303)
    finish(request, response)
    return response


# Types a browser may show inline; anything else is downloaded, so an uploaded HTML file never runs in our origin.
INLINE_TYPES = ("image/png", "image/jpeg", "image/gif", "application/pdf", "text/plain", "audio/wav", "audio/x-wav", "audio/mpeg", "audio/ogg", "audio/webm")


@router.get("/tickets/{number}/files/{sha256}")
async def ticket_file(request: Request, number: str, sha256: str):
    """An attachment or a recording of the ticket (only one the ticket really has: no reading of other blobs)."""
    await require_operator(request)
    w = web(request)
    try:
        ticket = await run_in_threadpool(w.desk.ticket, number)
    except TicketNotFound:
        return render(request, "error.html", 404, message="not found")
    found = next((a for m in ticket.messages for a in m.attachments if a.sha256 == sha256), None)
    if found is None:
        return render(request, "error.html", 404, message="not found")
    try:
        content = await run_in_threadpool(w.ctx.blobs.get, sha256)
    except FileNotFoundError:
        return render(request, "error.html", 404, message="the file is missing from the blob store")
    kind = found.content_type if found.content_type in INLINE_TYPES else "application/octet-stream"
    disposition = "inline" if kind != "application/octet-stream" else "attachment"
    safe_name = "".join(c if c.isalnum() or c in "._-" else "_" for c in found.filename)[:100] or "file"
    return Response(
        content, media_type=kind,
        headers={"content-disposition": f'{disposition}; filename="{safe_name}"', "content-security-policy": "sandbox; default-src 'none'; media-src 'self'", "cache-control": "private, no-store"},
    )


@router.get("/audit")
async def audit_page(request: Request):
    """Logins, throttled logins, account and token changes: for supervisors and administrators."""
    username = await require_operator(request)
    w = web(request)
    me = await run_in_threadpool(w.desk.accounts.get, username)
    if me is None or me.role not in ("supervisor", "admin"):
        return render(request, "error.html", 403, message=Texts(language(request))("supervisors_only"))
    from ticketing.audit import recent

    entries = await run_in_threadpool(recent, w.desk.sessions, 300)
    return render(request, "audit.html", entries=entries)
