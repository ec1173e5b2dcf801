"""Search in the API and the desk (issue 13 §3): `GET /api/v1/search` (token) and `/desk/search` (operators);
the rejected-contact review (§6): `GET /api/v1/rejections`, `/desk/rejections`, and each one's raw bytes.

Both read the core's `Search` (`ticketing/search.py`) through the context's `search` port, paged, with the same
criteria: `q` (words of the anomaly, messages and transcripts), `reporter`, `asset`, `organisation`, `group`,
`from` and `to` (YYYY-MM-DD, inclusive). An unknown organisation or group, or a reversed range, finds nothing.
"""

from __future__ import annotations

import dataclasses
from datetime import date

from typing import Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from ticketing.search import SearchQuery

from .api import ApiError, _problems, integration
from .common import render, web
from .operator import require_operator
from .public import clean

router = APIRouter()
api = APIRouter(prefix="/api/v1", dependencies=[Depends(integration)], responses=_problems(401, 403, 422, 429, 503))
desk = APIRouter(prefix="/desk", include_in_schema=False)


def _query(q: str, reporter: str, asset: str, organisation: str, group: str, since: date | None, until: date | None) -> SearchQuery:
    return SearchQuery(clean(q)[:300], clean(reporter)[:200], clean(asset)[:100], clean(organisation)[:200], clean(group)[:100], since, until)


async def _run(request: Request, query: SearchQuery, page: int, per_page: int):
    port = getattr(web(request).ctx, "search", None)
    if port is None:
        raise ApiError(503, "Service Unavailable", "search is not wired in this gateway")
    return await run_in_threadpool(port.search, query, page, per_page)


@api.get("/search", summary="Tickets by words, reporter, asset, organisation, group and date range, newest first")
async def api_search(
    request: Request,
    q: str = Query("", max_length=300, description="words of the anomaly, messages and transcripts (all must match)"),
    reporter: str = Query("", max_length=200),
    asset: str = Query("", max_length=100, description="an asset's tag, or part of its name"),
    organisation: str = Query("", max_length=200),
    group: str = Query("", max_length=100),
    since: date | None = Query(None, alias="from"),
    until: date | None = Query(None, alias="to"),
    page: int = Query(1, ge=1, le=100000),
    per_page: int = Query(50, ge=1, le=200),
):
    result = await _run(request, _query(q, reporter, asset, organisation, group, since, until), page, per_page)
    return {"items": [dataclasses.asdict(i) for i in result.items], "page": result.page, "per_page": result.per_page, "total": result.total,
            "total_is_lower_bound": result.total_is_lower_bound}  # counting stops past 1,000: "more than 1000"


def _date(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


@desk.get("/search")
async def desk_search(request: Request, operator: str = Depends(require_operator)):
    p = request.query_params
    values = {k: clean(p.get(k, ""))[:300] for k in ("q", "reporter", "asset", "organisation", "group", "from", "to")}
    try:
        page = max(1, min(100000, int(p.get("page", "1"))))
    except ValueError:
        page = 1
    result = None
    if any(values.values()):
        result = await _run(request, _query(values["q"], values["reporter"], values["asset"], values["organisation"], values["group"],
                                            _date(values["from"]), _date(values["to"])), page, 50)
    return render(request, "search.html", values=values, result=result, error=None)


def _rejections(request: Request):
    port = getattr(web(request).ctx, "rejections", None)
    if port is None:
        raise ApiError(503, "Service Unavailable", "the rejection review is not wired in this gateway")
    return port


def _raw(request: Request, rejection_id: int) -> Response:
    found = _rejections(request).get(rejection_id)
    if found is None or not found.raw_sha256:
        raise ApiError(404, "Not Found", f"no raw message for rejection {rejection_id}")
    try:
        data = web(request).ctx.blobs.get(found.raw_sha256)
    except (OSError, KeyError, ValueError):
        raise ApiError(404, "Not Found", f"the raw bytes of rejection {rejection_id} are not in this gateway's blob store") from None
    # text/plain, never rendered: a rejected mail is untrusted input.
    return Response(data, media_type="text/plain; charset=utf-8", headers={"x-content-type-options": "nosniff", "content-security-policy": "sandbox"})


@api.get("/rejections", summary="Contacts that made no ticket (auto-replies, bounces, junk), newest first")
async def api_rejections(request: Request, fault: Literal["sender", "ours"] | None = None,
                         page: int = Query(1, ge=1, le=100000), per_page: int = Query(50, ge=1, le=200)):
    port = _rejections(request)
    result = await run_in_threadpool(port.list, page, per_page, fault)
    readmit = getattr(web(request).ctx, "readmit", None)  # which became tickets (POST /api/v1/rejections/{id}/readmit)
    readmitted = await run_in_threadpool(readmit.readmitted, [i.id for i in result.items]) if readmit is not None else {}
    return {"items": [{**dataclasses.asdict(i), "readmitted": readmitted.get(i.id)} for i in result.items],
            "page": result.page, "per_page": result.per_page, "total": result.total}


@api.get("/rejections/{rejection_id}/raw", summary="The raw bytes of a rejected contact, as text",
         responses={**_problems(404), 200: {"content": {"text/plain": {}}, "description": "the raw message"}})
async def api_rejection_raw(request: Request, rejection_id: int = Path(ge=1, le=2**62)):
    return await run_in_threadpool(_raw, request, rejection_id)


@desk.get("/rejections")
async def desk_rejections(request: Request, operator: str = Depends(require_operator)):
    try:
        page = max(1, min(100000, int(request.query_params.get("page", "1"))))
    except ValueError:
        page = 1
    result = await run_in_threadpool(_rejections(request).list, page, 50, None)
    readmit = getattr(web(request).ctx, "readmit", None)  # issue 13 §6: the readmit action (channels/web/incidents.py)
    readmitted = await run_in_threadpool(readmit.readmitted, [r.id for r in result.items]) if readmit is not None else {}
    return render(request, "rejections.html", result=result, readmitted=readmitted, readmittable=getattr(readmit, "readers", {}))


@desk.get("/rejections/{rejection_id}/raw")
async def desk_rejection_raw(request: Request, rejection_id: int = Path(ge=1, le=2**62), operator: str = Depends(require_operator)):
    return await run_in_threadpool(_raw, request, rejection_id)


router.include_router(api)
router.include_router(desk)
