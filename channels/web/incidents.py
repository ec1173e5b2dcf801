"""Linked incidents and merges in the API and the desk (issue 13 §4), and readmitting a rejected contact (§6).

- `GET /api/v1/tickets/{number}/incident`: the ticket's parent incident, its children, where it was merged, what
  was merged into it, and the open parent incidents proposed for a link;
  `POST` the same path with `{"action": "link" | "unlink" | "merge" | "resolve_children", "target": …, "text": …}`.
- `POST /api/v1/rejections/{id}/readmit`: the rejected contact through the normal intake (201 the first time, 200
  after: the same ticket).
- The desk: `POST /desk/tickets/{number}/incident/{action}` from the ticket page's incident section
  (`templates/ticket_incident.html`), `POST /desk/rejections/{id}/readmit` from the review page.

Both read the core through the context's ports (`incidents`, `readmit`); a refused action is 409 with the rule's
words, an action on a ticket the operator may not act on 403.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.concurrency import run_in_threadpool

from ticketing.desk import LifecycleError, NotAllowed, TicketNotFound
from ticketing.operators import Identity
from ticketing.readmit import CannotReadmit

from .api import ApiError, _problems, integration
from .common import csrf_ok, finish, language, render, web
from .i18n import Texts
from .operator import _ticket_page, require_operator
from .public import clean

router = APIRouter()
api = APIRouter(prefix="/api/v1", dependencies=[Depends(integration)], responses=_problems(401, 403, 422, 429, 503))
desk = APIRouter(prefix="/desk", include_in_schema=False)

ACTIONS = ("link", "unlink", "merge", "resolve_children")


class LinkedOut(BaseModel):
    number: str
    status: str
    asset: str | None
    anomaly: str | None
    reporter: str | None


class ProposalOut(BaseModel):
    number: str = Field(description="an open parent incident on the same asset, within ticketing.incident_window_minutes")
    asset: str | None
    anomaly: str | None
    children: int


class IncidentOut(BaseModel):
    number: str
    parent: LinkedOut | None = Field(description="the parent incident this ticket is linked to")
    children: list[LinkedOut] = Field(description="the tickets linked to this one as their parent incident")
    merged_into: str | None = Field(description="the ticket this one was merged into (its status answers for this number)")
    merged: list[str] = Field(description="the tickets merged into this one")
    proposals: list[ProposalOut]
    open_children: int
    report: str | None = Field(description="this ticket's latest resolution report: what resolve_children sends by default")


class IncidentIn(BaseModel):
    """link and merge name their target ticket; unlink and resolve_children need none."""

    model_config = ConfigDict(json_schema_extra={"anyOf": [
        {"properties": {"action": {"enum": ["unlink", "resolve_children"]}}},
        {"required": ["target"], "properties": {"target": {"type": "string"}}},
    ]})

    action: Literal["link", "unlink", "merge", "resolve_children"]
    target: str | None = Field(None, max_length=40, pattern=r"^[A-Za-z]{2,5}-[0-9]{4}-[0-9]{6,12}$",
                               description="link: the parent incident's number; merge: the ticket to merge this one into")
    text: str = Field("", max_length=8000, description="resolve_children: the report (the parent's own resolution report when empty)")

    @model_validator(mode="after")
    def _target(self) -> IncidentIn:
        if self.action in ("link", "merge") and not self.target:
            raise ValueError(f"{self.action} needs the target ticket's number")
        return self


class ChildrenOut(BaseModel):
    resolved: list[str]
    refused: list[list[str]] = Field(description="[number, why] of each open child the caller may not act on")


class ReadmitOut(BaseModel):
    rejection_id: int
    number: str
    outcome: str = Field(description="created the first time, then duplicate (or appended to the ticket it threads to)")


def _port(request: Request, name: str):
    port = getattr(web(request).ctx, name, None)
    if port is None:
        raise ApiError(503, "Service Unavailable", f"{name} is not wired in this gateway")
    return port


def _call(request: Request, actor: str, number: str, action: str, target: str, text: str):
    port = _port(request, "incidents")
    if action in ("link", "merge") and not target:
        raise ValueError(f"{action} needs the target ticket's number")
    return {
        "link": lambda: port.link(number, target, actor),
        "unlink": lambda: port.unlink(number, actor),
        "merge": lambda: port.merge(number, target, actor),
        "resolve_children": lambda: port.resolve_children(number, actor, text or None),
    }[action]()


@api.get("/tickets/{number}/incident", response_model=IncidentOut, responses=_problems(404),
         summary="The ticket's parent incident, children, merges and proposed links")
async def get_incident(request: Request, number: str):
    try:
        return dataclasses.asdict(await run_in_threadpool(_port(request, "incidents").incident, number))
    except TicketNotFound:
        raise ApiError(404, "Not Found", f"no ticket {number[:40]}") from None


@api.post("/tickets/{number}/incident", response_model=IncidentOut | ChildrenOut, responses=_problems(404, 409),
          summary="Link to a parent incident, unlink, merge into another ticket, or resolve the open children")
async def incident_action(request: Request, number: str, body: IncidentIn, identity: Identity = Depends(integration)):
    try:
        result = await run_in_threadpool(_call, request, identity.name, number, body.action, clean(body.target or ""), clean(body.text))
    except ValueError as e:
        if isinstance(e, LifecycleError):
            raise ApiError(409, "Conflict", str(e)) from None
        raise ApiError(422, "Unprocessable Content", str(e)) from None
    except TicketNotFound as e:
        raise ApiError(404, "Not Found", f"no ticket {str(e)[:40]}") from None
    except NotAllowed as e:
        raise ApiError(403, "Forbidden", str(e)) from None
    return dataclasses.asdict(result)


@api.post("/rejections/{rejection_id}/readmit", response_model=ReadmitOut, status_code=201, responses={
    **_problems(404, 409), 200: {"model": ReadmitOut, "description": "readmitted before: the same ticket"}},
    summary="Turn a wrongly rejected contact into a ticket through the normal intake (idempotent)")
async def api_readmit(request: Request, rejection_id: int = Path(ge=1, le=2**62), identity: Identity = Depends(integration)):
    try:
        done = await run_in_threadpool(_port(request, "readmit").readmit, rejection_id, identity.name)
    except CannotReadmit as e:
        raise ApiError(409, "Conflict", str(e)) from None
    if done is None:
        raise ApiError(404, "Not Found", f"no rejection {rejection_id}")
    return JSONResponse(dataclasses.asdict(done), status_code=201 if done.outcome == "created" else 200)


# -- the desk ---------------------------------------------------------------------------------------------------
@desk.post("/tickets/{number}/incident/{action}")
async def desk_incident(request: Request, number: str, action: str, operator: str = Depends(require_operator)):
    data = await request.form(max_files=0, max_fields=10, max_part_size=16 * 1024)
    token = data.get("csrf")
    if not csrf_ok(request, token if isinstance(token, str) else None, f"ticket:{number}"):
        return render(request, "error.html", 403, message="CSRF")
    if action not in ACTIONS:
        return await _ticket_page(request, number, 404, error=f"unknown action {action!r}")
    target = clean(data.get("target"))[:40]
    try:
        result = await run_in_threadpool(_call, request, operator, number, action, target, clean(data.get("text"))[:8000])
    except TicketNotFound:
        return render(request, "error.html", 404, message=Texts(language(request))("not_found_ticket", number=number))
    except NotAllowed as e:
        return await _ticket_page(request, number, 403, error=str(e))
    except ValueError as e:  # LifecycleError, or a missing target
        return await _ticket_page(request, number, 409 if isinstance(e, LifecycleError) else 422, error=str(e))
    # After a merge the survivor is what the operator works on.
    shown = result.number if action == "merge" else number
    response = RedirectResponse(f"/desk/tickets/{shown}", status_code=303)
    finish(request, response)
    return response


@desk.post("/rejections/{rejection_id}/readmit")
async def desk_readmit(request: Request, rejection_id: int = Path(ge=1, le=2**62), operator: str = Depends(require_operator)):
    data = await request.form(max_files=0, max_fields=5, max_part_size=4096)
    token = data.get("csrf")
    if not csrf_ok(request, token if isinstance(token, str) else None, "rejections"):
        return render(request, "error.html", 403, message="CSRF")
    try:
        done = await run_in_threadpool(_port(request, "readmit").readmit, rejection_id, operator)
    except CannotReadmit as e:
        return render(request, "error.html", 409, message=str(e))
    if done is None:
        return render(request, "error.html", 404, message=f"{rejection_id}")
    response = RedirectResponse(f"/desk/tickets/{done.number}", status_code=303)
    finish(request, response)
    return response


router.include_router(api)
router.include_router(desk)
