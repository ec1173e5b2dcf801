"""The REST API under `/api/v1`: tickets, their messages and actions, assets, users, for integrations.

Authentication is a bearer token (RFC 6750) made with `helpdesk-gateway operators token NAME`; a missing
or wrong token is 401 with `WWW-Authenticate: Bearer`. Lists are paginated (`page`, `per_page`, and the
`total` in the body). Every error is an RFC 9457 problem document (`application/problem+json`) whose
`detail` says what to fix. The OpenAPI document is served at `/openapi.json`.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from http import HTTPStatus
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.concurrency import run_in_threadpool

from ticketing.contact import Answer, Channel, Contact, Sender
from ticketing.desk import LifecycleError, NotAllowed, Page, QueueFilters, TicketNotFound, TicketView, UnknownAssignee
from ticketing.operators import Identity

from .common import client_key, problem, web
from .public import clean

PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
}


def _problems(*codes: int) -> dict:
    names = {400: "Bad request", 401: "Missing or wrong bearer token", 403: "The token's scopes or its operator's role do not allow it", 404: "No such ticket", 409: "The lifecycle rules refuse the action", 413: "Request too large", 422: "Invalid parameters", 429: "Rate limit exceeded", 502: "The mail relay did not take the message", 503: "The email channel is off"}
    return {c: {"description": names.get(c, "Error"), "content": {"application/problem+json": {"schema": PROBLEM_SCHEMA}}} for c in codes}


class ApiError(Exception):
    def __init__(self, status: int, title: str, detail: str, headers: dict | None = None):
        self.status, self.title, self.detail, self.headers = status, title, detail, headers


BEARER = HTTPBearer(auto_error=False, description="a token made with: helpdesk-gateway operators token NAME")


async def integration(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(BEARER)) -> Identity:
    """Who calls (the token's operator or service account), with the scope the method needs: `read` to read,
    `write` to change anything."""
    token = credentials.credentials if credentials is not None else ""
    if not token.strip():
        raise ApiError(401, "Unauthorized", "send 'Authorization: Bearer <token>' (make one with: helpdesk-gateway operators token NAME)", {"www-authenticate": 'Bearer realm="helpdesk"'})
    identity = await run_in_threadpool(web(request).desk.accounts.identity, token.strip())
    if identity is None:
        raise ApiError(401, "Unauthorized", "the bearer token is not valid or was revoked", {"www-authenticate": 'Bearer realm="helpdesk", error="invalid_token"'})
    wait = web(request).limits["api"].hit(f"{client_key(request)}|{identity.token}")
    if wait:
        raise ApiError(429, "Too Many Requests", f"rate limit exceeded: retry in {wait} s", {"retry-after": str(wait)})
    needed = "read" if request.method in ("GET", "HEAD") else "write"
    if needed not in identity.scopes and "admin" not in identity.scopes:
        raise ApiError(403, "Forbidden", f"the token {identity.token!r} has no {needed!r} scope")
    return identity


router = APIRouter(prefix="/api/v1", dependencies=[Depends(integration)], responses=_problems(401, 403, 422, 429))


# -- schemas ---------------------------------------------------------------------------------------------------
class FieldOut(BaseModel):
    name: str
    value: str | None
    confidence: float
    source: str | None
    check: bool = Field(description="below the low-confidence threshold: a person should check it")


class SlaOut(BaseModel):
    respond_by: datetime | None
    resolve_by: datetime | None
    paused: bool
    breached: bool
    warning: bool


class TicketHeaderOut(BaseModel):
    number: str
    created_at: datetime
    updated_at: datetime
    channel: str
    status: str
    level: int
    urgency: str
    priority: int
    assignee: str | None
    organisation: str | None = Field(description="the client organisation (from the reporter, the asset or the email domain)")
    group: str | None = Field(description="the support group the ticket is with")
    waiting: bool = Field(description="waiting for the user or a vendor: the SLA clock is paused")
    sla: SlaOut


class TicketSummary(TicketHeaderOut):
    reporter: str | None
    asset: str | None
    anomaly: str | None
    check: list[str]


class AttachmentOut(BaseModel):
    filename: str
    content_type: str
    kind: str
    size: int | None
    sha256: str | None
    note: str | None


class MessageOut(BaseModel):
    id: int
    direction: str
    channel: str
    received_at: datetime
    sender_name: str | None
    sender_email: str | None
    sender_phone: str | None
    subject: str | None
    text: str
    attachments: list[AttachmentOut]


class EventOut(BaseModel):
    at: datetime
    kind: str
    actor: str
    data: dict[str, Any]


class SuggestionOut(BaseModel):
    kind: Literal["article", "ticket"]
    ref: int | str = Field(description="the article's id, or the resolved ticket's number")
    title: str
    score: float
    detail: str = Field("", description="the article's solution or workaround, or the ticket's resolution report")


class TicketOut(TicketHeaderOut):
    language: str | None
    respond_by: datetime | None
    resolve_by: datetime | None
    fields: list[FieldOut]
    messages: list[MessageOut]
    events: list[EventOut]
    actions: list[str] = Field(description="the actions the lifecycle rules allow now")
    first_response_at: datetime | None
    waiting_for: Literal["user", "vendor"] | None
    suggestions: list[SuggestionOut] = Field(default=[], description="published articles and similar resolved tickets, best first")


class TicketList(BaseModel):
    items: list[TicketSummary]
    page: int
    per_page: int
    total: int


class MessageList(BaseModel):
    items: list[MessageOut]


class AssetOut(BaseModel):
    tag: str
    name: str
    kind: str
    location: str | None
    criticality: str


class AssetList(BaseModel):
    items: list[AssetOut]
    page: int
    per_page: int
    total: int


class UserOut(BaseModel):
    id: int
    name: str
    email: str | None
    department: str | None


class UserList(BaseModel):
    items: list[UserOut]
    page: int
    per_page: int
    total: int


class ActionIn(BaseModel):
    action: Literal["take", "escalate", "wait", "resume", "assign", "resolve", "close", "reopen", "note", "set_field"]
    operator: str | None = Field(
        None, max_length=100,
        description="take, assign: the operator the ticket goes to (an existing, active one; 422 otherwise). "
        "The actor recorded is always the token's operator or service account.",
    )
    text: str = Field("", max_length=8000, description="the reason (escalate, reopen, resume), the question to the user (wait), the report (resolve), the note, or the field's new value")
    field: str | None = Field(None, max_length=40, description="for set_field: which field")
    waiting_for: Literal["user", "vendor"] = Field("user", description="wait: for the user (they are mailed the question) or a vendor")
    group: str | None = Field(None, max_length=100, description="assign: the support group the ticket goes to")


class ReplyIn(BaseModel):
    # At least one visible character: a text of spaces and control characters is empty once cleaned.
    text: str = Field(min_length=1, max_length=8000, pattern=r"[^\s\x00-\x1f\x7f]", description="the text of the mail to the reporter")


class ReplyOut(BaseModel):
    message_id: str = Field(description="the Message-ID of the mail sent; the reply is now a message of the ticket")
    to: str


class ContactIn(BaseModel):
    """A report from an integration. The reporter's email or phone (at least one) is required."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["email"], "properties": {"email": {"type": "string", "minLength": 1}}},
                {"required": ["phone"], "properties": {"phone": {"type": "string", "minLength": 1}}},
            ]
        }
    )

    external_id: str = Field(min_length=1, max_length=200, description="your id of this report: the same id twice makes one ticket")
    name: str = Field(min_length=1, max_length=200)
    email: str | None = Field(None, max_length=320)
    phone: str | None = Field(None, max_length=40)
    asset: str = Field("", max_length=200)
    anomaly: str = Field(min_length=1, max_length=4000)
    language: Literal["it", "fr", "en"] | None = None
    urgent: bool | None = Field(None, description="the whole office is blocked (critical urgency); absent: the text decides")

    @model_validator(mode="after")
    def _reachable(self) -> ContactIn:
        if not (self.email or self.phone):
            raise ValueError("give the reporter's email or phone")
        return self


class ContactResult(BaseModel):
    number: str
    outcome: str = Field(description="created, appended or duplicate")


def _plain(obj) -> dict:
    return dataclasses.asdict(obj)


def _page(p: Page) -> dict:
    return {"items": [_plain(i) for i in p.items], "page": p.page, "per_page": p.per_page, "total": p.total}


def _ticket(t: TicketView) -> dict:
    return _plain(t)


# -- routes ----------------------------------------------------------------------------------------------------
@router.get("/tickets", response_model=TicketList, summary="The queue of tickets, most urgent and newest first")
async def list_tickets(
    request: Request,
    status: Literal["open", "all", "new", "in_progress", "waiting", "resolved", "closed"] = "open",
    level: int | None = Query(None, ge=1, le=3, description="support level I, II or III"),
    channel: Literal["email", "voice", "web"] | None = None,
    asset: str | None = Query(None, max_length=100),
    assignee: str | None = Query(None, max_length=100, description="a username, or '-' for unassigned"),
    organisation: str | None = Query(None, max_length=200, description="an organisation's name"),
    group: str | None = Query(None, max_length=100, description="a support group's name, or '-' for none"),
    page: int = Query(1, ge=1, le=100000),
    per_page: int = Query(50, ge=1, le=200),
):
    filters = QueueFilters(None if status == "all" else status, level, channel, clean(asset) or None, clean(assignee) or None,
                           clean(organisation) or None, clean(group) or None)
    return _page(await run_in_threadpool(web(request).desk.queue, filters, page, per_page))


@router.post(
    "/tickets", response_model=ContactResult, status_code=201, summary="Report a problem (idempotent on external_id)",
    responses={**_problems(400), 200: {"model": ContactResult, "description": "already taken in (duplicate) or added to an open ticket (appended)"}},
)
async def create_ticket(request: Request, body: ContactIn, identity: Identity = Depends(integration)):
    who = identity.token
    # Whatever the schema allows is taken in (a report is never lost); control characters are dropped.
    values = {k: clean(getattr(body, k) or "") for k in ("name", "email", "phone", "asset", "anomaly")}
    contact = Contact(
        channel=Channel.WEB,
        external_id=f"api:{who}:{body.external_id}",
        sender=Sender(values["name"] or None, values["email"] or None, values["phone"] or None),
        text=values["anomaly"],
        language=body.language,
        answers={k: Answer(values[k], "form") for k in ("name", "asset", "anomaly") if values[k]},
        urgent=body.urgent,
    )
    result = await run_in_threadpool(web(request).ctx.intake.deliver, contact)
    status = 201 if result.outcome == "created" else 200
    return JSONResponse({"number": result.ticket_number, "outcome": str(result.outcome)}, status_code=status)


async def _get(request: Request, number: str) -> TicketView:
    try:
        return await run_in_threadpool(web(request).desk.ticket, number)
    except TicketNotFound:
        raise ApiError(404, "Not Found", f"no ticket {number[:40]}") from None


@router.get("/tickets/{number}", response_model=TicketOut, responses=_problems(404), summary="One ticket: fields, messages, history")
async def get_ticket(request: Request, number: str):
    return _ticket(await _get(request, number))


@router.get("/tickets/{number}/messages", response_model=MessageList, responses=_problems(404), summary="The messages of a ticket, in order")
async def get_messages(request: Request, number: str):
    t = await _get(request, number)
    return {"items": [_plain(m) for m in t.messages]}


@router.post("/tickets/{number}/actions", response_model=TicketOut, responses=_problems(404, 409), summary="Apply a lifecycle action")
async def act(request: Request, number: str, body: ActionIn, identity: Identity = Depends(integration)):
    desk = web(request).desk
    actor = identity.name  # the token's operator, or "service:<name>"
    text = clean(body.text)
    person = clean(body.operator or "") or None
    calls = {
        "take": lambda: desk.take(number, actor, person),
        "assign": lambda: desk.assign(number, actor, person, clean(body.group or "") or None),
        "wait": lambda: desk.wait(number, actor, text, body.waiting_for),
        "resume": lambda: desk.resume(number, actor, text),
        "escalate": lambda: desk.escalate(number, actor, text),
        "resolve": lambda: desk.resolve(number, actor, text),
        "close": lambda: desk.close(number, actor),
        "reopen": lambda: desk.reopen(number, actor, text),
        "note": lambda: desk.note(number, actor, text),
        "set_field": lambda: desk.set_field(number, actor, body.field or "", text),
    }
    try:
        return _ticket(await run_in_threadpool(calls[body.action]))
    except TicketNotFound:
        raise ApiError(404, "Not Found", f"no ticket {number[:40]}") from None
    except LifecycleError as e:
        raise ApiError(409, "Conflict", str(e)) from None
    except NotAllowed as e:
        raise ApiError(403, "Forbidden", str(e)) from None
    except UnknownAssignee as e:
        raise ApiError(422, "Unprocessable Content", str(e)) from None


@router.post(
    "/tickets/{number}/replies", response_model=ReplyOut, status_code=201,
    responses={**_problems(404, 502, 503), 409: {"description": "No email address is known for the reporter", "content": {"application/problem+json": {"schema": PROBLEM_SCHEMA}}}},
    summary="Reply to the reporter by email (through the email channel)",
)
async def reply(request: Request, number: str, body: ReplyIn):
    from .replies import ReplyError, send_reply

    w = web(request)
    try:
        message_id, to = await run_in_threadpool(send_reply, w.ctx, w.desk, number, clean(body.text))
    except TicketNotFound:
        raise ApiError(404, "Not Found", f"no ticket {number[:40]}") from None
    except ReplyError as e:
        raise ApiError(e.status, HTTPStatus(e.status).phrase, str(e)) from None
    return JSONResponse({"message_id": message_id, "to": to}, status_code=201)


@router.get("/assets", response_model=AssetList, summary="The asset inventory")
async def list_assets(request: Request, page: int = Query(1, ge=1, le=100000), per_page: int = Query(50, ge=1, le=200)):
    return _page(await run_in_threadpool(web(request).desk.assets, page, per_page))


@router.get("/users", response_model=UserList, summary="The user directory")
async def list_users(request: Request, page: int = Query(1, ge=1, le=100000), per_page: int = Query(50, ge=1, le=200)):
    return _page(await run_in_threadpool(web(request).desk.users, page, per_page))


def install(app) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return problem(exc.status, exc.title, exc.detail, exc.headers)
