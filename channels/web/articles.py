"""Knowledge articles in the desk and the API (issue 13 §1): `/desk/articles` (list, view with versions, the
editor, publish/unpublish, a draft from a resolved ticket) and `/api/v1/articles` (list, create, read, replace).

Both go through the context's `articles` port (`ticketing/articles.py`), which keeps the rules: every operator
drafts; publishing, unpublishing and editing a published article take a supervisor or an administrator (for a
token: its operator's role, or the `admin` scope of a service token). Each save is a new version; an edit names
the version it started from, and a save over a newer one is refused (409) rather than lost. Forms carry the
CSRF token of the desk's other forms.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.concurrency import run_in_threadpool

from ticketing.articles import ArticleConflict, ArticleForbidden, ArticleNotFound, Draft
from ticketing.knowledge import LANGUAGES, STATUSES, KnowledgeError
from ticketing.operators import Identity

from .api import ApiError, _problems, integration
from .common import csrf_ok, finish, language, render, web
from .i18n import LANGUAGE_NAMES, Texts
from .operator import require_operator
from .public import clean

KINDS = ("hardware", "software", "module", "archive")
TAGS = re.compile(r"[,;\s]+")
CSRF = "articles"

router = APIRouter()
api = APIRouter(prefix="/api/v1", dependencies=[Depends(integration)], responses=_problems(401, 403, 422, 429, 503))
desk = APIRouter(prefix="/desk", include_in_schema=False)


def _port(request: Request):
    port = getattr(web(request).ctx, "articles", None)
    if port is None:
        raise ApiError(503, "Service Unavailable", "the knowledge base is not wired in this gateway")
    return port


def _tags(text: str) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for t in TAGS.split(clean(text)[:2000]):
        if t:
            seen[t[:64]] = None
    return tuple(seen)


# -- API -------------------------------------------------------------------------------------------------------
# At least one character still there once control characters are dropped and spaces stripped (C1 controls
# excluded too: JSON Schema's \s, ECMA's, does not count U+0085 as a space, Python's and pydantic's do).
VISIBLE = r"[^\s\x00-\x1f\x7f-\x9f]"
Tag = Annotated[str, Field(min_length=1, max_length=64, description="an asset tag; blank ones are ignored")]


class ArticleIn(BaseModel):
    """An article's content; a symptom or a solution (or both) is needed."""

    model_config = ConfigDict(json_schema_extra={"anyOf": [
        {"required": ["symptom"], "properties": {"symptom": {"type": "string", "pattern": VISIBLE}}},
        {"required": ["solution"], "properties": {"solution": {"type": "string", "pattern": VISIBLE}}},
    ]})

    title: str = Field(min_length=1, max_length=300, pattern=VISIBLE)
    symptom: str = Field("", max_length=8000, description="what the user sees")
    solution: str = Field("", max_length=8000, description="the solution or workaround, as it is mailed to a user")
    assets: list[Tag] = Field([], max_length=50, description="asset tags of the inventory it applies to (one the inventory lacks: 409)")
    kinds: list[Literal["hardware", "software", "module", "archive"]] = Field([], max_length=4, description="asset kinds it applies to")
    language: Literal["it", "fr", "en"] = "it"
    status: Literal["draft", "published"] = Field("draft", description="published: suggested on tickets (supervisors and administrators only, else 403)")
    version: int | None = Field(None, ge=1, le=2**31, description="PUT: the version this edit was made from (409 if the article moved on)")
    source_ticket: str | None = Field(None, max_length=40, description="POST: the number of the ticket it is written from (an unknown one: 409)")

    @model_validator(mode="after")
    def _content(self) -> ArticleIn:
        if not (clean(self.symptom) or clean(self.solution)):
            raise ValueError("give a symptom or a solution")
        return self


class VersionOut(BaseModel):
    version: int
    at: datetime
    actor: str
    title: str
    status: str


class ArticleSummaryOut(BaseModel):
    id: int
    slug: str
    title: str
    language: str
    status: str
    version: int
    asset_tags: list[str]
    asset_kinds: list[str]
    updated_at: datetime


class ArticleOut(ArticleSummaryOut):
    symptom: str
    solution: str
    created_at: datetime
    source_ticket: str | None
    versions: list[VersionOut] = Field(description="newest first")


class ArticleList(BaseModel):
    items: list[ArticleSummaryOut]
    page: int
    per_page: int
    total: int


def _role(identity: Identity) -> str:
    if identity.operator is not None:
        return identity.operator.role
    return "service-admin" if "admin" in identity.scopes else "service"


def _draft(body: ArticleIn) -> Draft:
    return Draft(clean(body.title), clean(body.symptom), clean(body.solution), tuple(clean(a)[:64] for a in body.assets if clean(a)),
                 tuple(dict.fromkeys(body.kinds)), body.language, body.status, clean(body.source_ticket or "") or None)


def _api_call(fn, *args, **kw):
    try:
        return fn(*args, **kw)
    except ArticleNotFound:
        raise ApiError(404, "Not Found", "no such article") from None
    except ArticleForbidden as e:
        raise ApiError(403, "Forbidden", str(e)) from None
    except ArticleConflict as e:
        raise ApiError(409, "Conflict", str(e)) from None
    except KnowledgeError as e:  # valid as JSON, refused by the desk's state (an asset the inventory lacks)
        raise ApiError(409, "Conflict", str(e)) from None


@api.get("/articles", response_model=ArticleList, summary="Knowledge articles, last edited first")
async def api_articles(
    request: Request,
    language: Literal["it", "fr", "en"] | None = None,
    status: Literal["draft", "published"] | None = None,
    asset: str = Query("", max_length=64, description="an asset's tag or an asset kind the article names"),
    q: str = Query("", max_length=200, description="words of the title"),
    page: int = Query(1, ge=1, le=100000),
    per_page: int = Query(50, ge=1, le=200),
):
    result = await run_in_threadpool(_port(request).list, language=language, status=status, asset=clean(asset) or None,
                                     q=clean(q) or None, page=page, per_page=per_page)
    return {"items": [dataclasses.asdict(i) for i in result.items], "page": result.page, "per_page": result.per_page, "total": result.total}


@api.post("/articles", response_model=ArticleOut, status_code=201, responses=_problems(400, 409), summary="Write an article (its first version)")
async def api_create(request: Request, body: ArticleIn, identity: Identity = Depends(integration)):
    view = await run_in_threadpool(_api_call, _port(request).create, _draft(body), identity.name, _role(identity))
    return JSONResponse(_json(view), status_code=201, headers={"location": f"/api/v1/articles/{view.id}"})


@api.get("/articles/{article_id}", response_model=ArticleOut, responses=_problems(404), summary="One article with its versions")
async def api_article(request: Request, article_id: int = Path(ge=1, le=2**62)):
    return _json(await run_in_threadpool(_api_call, _port(request).get, article_id))


@api.put("/articles/{article_id}", response_model=ArticleOut, responses=_problems(400, 404, 409),
         summary="Replace an article's content and status: a new version when anything changed")
async def api_update(request: Request, body: ArticleIn, article_id: int = Path(ge=1, le=2**62), identity: Identity = Depends(integration)):
    view, _ = await run_in_threadpool(_api_call, _port(request).update, article_id, _draft(body), identity.name, _role(identity), version=body.version)
    return _json(view)


def _json(view) -> dict:
    return jsonable_encoder(dataclasses.asdict(view))


# -- desk ------------------------------------------------------------------------------------------------------
async def _me(request: Request, username: str) -> str | None:
    me = await run_in_threadpool(web(request).desk.accounts.get, username)
    return me.role if me is not None else None


def _page_number(request: Request) -> int:
    value = request.query_params.get("page", "1")
    return int(value) if value.isdigit() and 0 < int(value) < 100000 else 1


@desk.get("/articles")
async def desk_articles(request: Request, operator: str = Depends(require_operator)):
    p = request.query_params
    filters = {"language": p.get("language") if p.get("language") in LANGUAGES else "",
               "status": p.get("status") if p.get("status") in STATUSES else "",
               "asset": clean(p.get("asset", ""))[:64], "q": clean(p.get("q", ""))[:200]}
    result = await run_in_threadpool(_port(request).list, language=filters["language"] or None, status=filters["status"] or None,
                                     asset=filters["asset"] or None, q=filters["q"] or None, page=_page_number(request), per_page=25)
    params = {k: v for k, v in filters.items() if v}
    return render(request, "articles.html", result=result, filters=filters, languages=LANGUAGES, language_names=LANGUAGE_NAMES,
                  statuses=STATUSES, page_link=lambda n: "/desk/articles?" + urlencode({**params, "page": n}))


def _editor(request: Request, draft: Draft, *, article=None, error: str | None = None, status: int = 200, role: str | None = None,
            version: int | None = None):
    return render(request, "article_form.html", status, draft=draft, article=article, error=error, kinds=KINDS, languages=LANGUAGES,
                  language_names=LANGUAGE_NAMES, may_publish=role in ("supervisor", "admin"), version=version)


@desk.get("/articles/new")
async def desk_new(request: Request, operator: str = Depends(require_operator)):
    """The editor, empty or pre-filled from a resolved ticket (`?ticket=HD-…`): nothing is saved until the operator saves."""
    number = clean(request.query_params.get("ticket", ""))[:40]
    role = await _me(request, operator)
    if not number:
        return _editor(request, Draft(language=language(request)), role=role)
    try:
        draft = await run_in_threadpool(_port(request).draft_from_ticket, number, language(request))
    except KnowledgeError as e:
        return render(request, "error.html", 404 if "no ticket" in str(e) else 409, message=str(e))
    return _editor(request, draft, role=role)


async def _form_draft(request: Request) -> tuple[Draft, int | None, bool]:
    data = await request.form(max_files=0, max_fields=20, max_part_size=32 * 1024)
    token = data.get("csrf")
    ok = csrf_ok(request, token if isinstance(token, str) else None, CSRF)
    lang, status = str(data.get("language") or ""), str(data.get("status") or "draft")
    version = str(data.get("version") or "")
    draft = Draft(
        clean(data.get("title"))[:300], clean(data.get("symptom"))[:8000], clean(data.get("solution"))[:8000],
        tuple(t.upper() for t in _tags(str(data.get("assets") or ""))),
        tuple(k for k in KINDS if k in data.getlist("kinds")),
        lang if lang in LANGUAGES else "it", status if status in STATUSES else "draft",
        clean(data.get("source_ticket"))[:40] or None,
    )
    return draft, int(version) if version.isdigit() else None, ok


def _error_text(request: Request, e: Exception) -> str:
    t = Texts(language(request))
    if isinstance(e, ArticleForbidden):
        return t("kb_publish_forbidden")
    if isinstance(e, ArticleConflict):
        return t("kb_conflict")
    return str(e)


@desk.post("/articles")
async def desk_create(request: Request, operator: str = Depends(require_operator)):
    draft, _, ok = await _form_draft(request)
    if not ok:
        return render(request, "error.html", 403, message="CSRF")
    role = await _me(request, operator)
    try:
        view = await run_in_threadpool(_port(request).create, draft, operator, role)
    except KnowledgeError as e:
        return _editor(request, draft, error=_error_text(request, e), status=403 if isinstance(e, ArticleForbidden) else 422, role=role)
    response = RedirectResponse(f"/desk/articles/{view.id}?done=created", status_code=303)
    finish(request, response)
    return response


async def _view(request: Request, article_id: int):
    try:
        return await run_in_threadpool(_port(request).get, article_id)
    except ArticleNotFound:
        return None


@desk.get("/articles/{article_id}")
async def desk_article(request: Request, article_id: int = Path(ge=1, le=2**62), operator: str = Depends(require_operator)):
    view = await _view(request, article_id)
    if view is None:
        return render(request, "error.html", 404, message=Texts(language(request))("kb_not_found"))
    done = request.query_params.get("done")
    role = await _me(request, operator)
    return render(request, "article.html", article=view, done=done if done in ("created", "saved", "unchanged", "published", "draft") else None,
                  may_publish=role in ("supervisor", "admin"), language_names=LANGUAGE_NAMES)


@desk.get("/articles/{article_id}/edit")
async def desk_edit(request: Request, article_id: int = Path(ge=1, le=2**62), operator: str = Depends(require_operator)):
    view = await _view(request, article_id)
    if view is None:
        return render(request, "error.html", 404, message=Texts(language(request))("kb_not_found"))
    role = await _me(request, operator)
    if view.status == "published" and role not in ("supervisor", "admin"):  # say so now, not after the operator typed
        return render(request, "error.html", 403, message=Texts(language(request))("kb_publish_forbidden"))
    draft = Draft(view.title, view.symptom, view.solution, view.asset_tags, view.asset_kinds, view.language, view.status)
    return _editor(request, draft, article=view, role=role, version=view.version)


@desk.post("/articles/{article_id}")
async def desk_save(request: Request, article_id: int = Path(ge=1, le=2**62), operator: str = Depends(require_operator)):
    draft, version, ok = await _form_draft(request)
    if not ok:
        return render(request, "error.html", 403, message="CSRF")
    role = await _me(request, operator)
    try:
        _, changed = await run_in_threadpool(_port(request).update, article_id, draft, operator, role, version=version)
    except ArticleNotFound:
        return render(request, "error.html", 404, message=Texts(language(request))("kb_not_found"))
    except KnowledgeError as e:
        view = await _view(request, article_id)
        status = 403 if isinstance(e, ArticleForbidden) else 409 if isinstance(e, ArticleConflict) else 422
        return _editor(request, draft, article=view, error=_error_text(request, e), status=status, role=role, version=version)
    response = RedirectResponse(f"/desk/articles/{article_id}?done={'saved' if changed else 'unchanged'}", status_code=303)
    finish(request, response)
    return response


@desk.post("/articles/{article_id}/{status}")
async def desk_status(request: Request, status: Literal["published", "draft"], article_id: int = Path(ge=1, le=2**62),
                      operator: str = Depends(require_operator)):
    data = await request.form(max_files=0, max_fields=5, max_part_size=1024)
    token = data.get("csrf")
    if not csrf_ok(request, token if isinstance(token, str) else None, CSRF):
        return render(request, "error.html", 403, message="CSRF")
    role = await _me(request, operator)
    try:
        await run_in_threadpool(_port(request).set_status, article_id, status, operator, role)
    except ArticleNotFound:
        return render(request, "error.html", 404, message=Texts(language(request))("kb_not_found"))
    except KnowledgeError as e:
        return render(request, "error.html", 403 if isinstance(e, ArticleForbidden) else 409, message=_error_text(request, e))
    response = RedirectResponse(f"/desk/articles/{article_id}?done={status}", status_code=303)
    finish(request, response)
    return response


router.include_router(api)
router.include_router(desk)
