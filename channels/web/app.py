"""The web channel's ASGI application: public form and status page, operator desk, REST API (FastAPI).

`create_app(ctx, desk)` builds it from the channel context (where contacts go, the blob store, the `[web]`
settings) and the `Desk` service (reads and lifecycle actions); it opens no database session itself.
HTML pages are Jinja2 templates with autoescaping on, so everything a user typed is escaped (and the
Content-Security-Policy forbids inline scripts in case it ever were not). HTTP semantics: RFC 9110; errors
of the API are RFC 9457 problem documents.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from ticketing.desk import Desk
from ticketing.faults import is_storage_full

from . import api, operator, public
from .batching import Batcher
from .common import (  # noqa: F401 - re-exported: what the routers share lives in common.py
    HERE,
    STORAGE_RETRY_SECONDS,
    storage_full_log,
    WebState,
    LoginRequired,
    TooManyRequests,
    load_secret,
    make_templates,
    web,
    client_key,
    rate_limit,
    language,
    csrf_cookie,
    csrf_ok,
    render,
    finish,
    problem,
    _is_api,
    _size,
    _fmt_time,
)
from .i18n import Texts
from .security import BodyLimit, ClientAddress, RateLimiter, SecurityHeaders, Signer, load_signer
from .settings import WebSettings


class StorageFullGuard:
    """ASGI middleware: a request that failed because the disk is full is answered 503 with Retry-After.

    Ours and temporary, and nothing was stored: say so, and when to come back (RFC 9110 §15.6.4). Caught here,
    inside Starlette's server-error layer, because that layer closes the connection after answering; a client
    that keeps its connection open (an integration, a browser) would see its next request reset.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started or not is_storage_full(exc):
                raise
            request = Request(scope)
            storage_full_log.warning("storage full: refused %s %s with 503", request.method, request.url.path)
            headers = {"retry-after": str(STORAGE_RETRY_SECONDS)}
            if _is_api(request):
                response = problem(503, "Service Unavailable", "the server's storage is full: nothing was stored; retry later", headers)
            else:
                response = render(request, "error.html", 503, message=Texts(language(request))("err_storage_full"))
                response.headers.update(headers)
            await response(scope, receive, send)


def create_app(ctx, desk: Desk) -> FastAPI:
    settings: WebSettings = ctx.settings
    app = FastAPI(
        title="helpdesk-gateway",
        version="1",
        description="REST API of the IT service desk gateway: tickets, messages, assets, users.",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.web = WebState(
        ctx=ctx,
        desk=desk,
        settings=settings,
        signer=load_signer(settings, ctx.data_dir),  # kept in the data dir: forms survive a restart
        templates=make_templates(),
        limits={
            "submit": RateLimiter(settings.submit_per_minute),
            "status": RateLimiter(settings.status_per_minute),
            "login": RateLimiter(settings.login_per_minute),
            "api": RateLimiter(settings.api_per_minute),
            "suggest": RateLimiter(max(settings.api_per_minute, 120) if settings.api_per_minute else 0),
        },
        prefix=ctx.number_prefix,
        batcher=Batcher(ctx.intake),
        clients=ClientAddress(settings.trusted_proxies),
    )
    app.include_router(public.router)
    app.include_router(operator.router)
    app.include_router(api.router)
    from . import knowledge, outbox

    outbox.install(app)  # /desk/outbox and the waiting count in the desk's header
    app.include_router(knowledge.router)  # /api/v1/search, /desk/search, rejections (issue 13)
    from . import incidents

    app.include_router(incidents.router)  # linked incidents, merges, readmitting a rejection (issue 13 §4, §6)
    from . import articles

    app.include_router(articles.router)  # /api/v1/articles, /desk/articles (issue 13 §1)
    from . import reports

    app.include_router(reports.router)  # /api/v1/reports, its CSV tables, /desk/reports (issue 13 §5)
    api.install(app)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    _error_handlers(app)
    app.add_middleware(StorageFullGuard)
    app.add_middleware(BodyLimit, limit=settings.max_request_bytes)
    app.add_middleware(SecurityHeaders)
    return app


def _error_handlers(app: FastAPI) -> None:
    from http import HTTPStatus

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        from urllib.parse import quote

        return RedirectResponse(f"/desk/login?next={quote(target, safe='')}", status_code=303)

    @app.exception_handler(TooManyRequests)
    async def _too_many(request: Request, exc: TooManyRequests):
        headers = {"retry-after": str(exc.retry_after)}
        if _is_api(request):
            return problem(429, "Too Many Requests", f"rate limit exceeded: retry in {exc.retry_after} s", headers)
        response = render(request, "error.html", 429, message=Texts(language(request))("too_many", n=exc.retry_after))
        response.headers.update(headers)
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        errors = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))} for e in exc.errors()
        ]
        detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors) or "invalid request"
        if _is_api(request):
            return problem(422, "Unprocessable Content", detail, errors=errors)
        return render(request, "error.html", 400, message=detail)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        try:
            title = HTTPStatus(exc.status_code).phrase
        except ValueError:
            title = "Error"
        headers = dict(exc.headers or {})
        if _is_api(request):
            return problem(exc.status_code, title, str(exc.detail), headers)
        t = Texts(language(request))
        message = {404: t("not_found"), 403: t("forbidden"), 413: t("too_large")}.get(exc.status_code, str(exc.detail))
        response = render(request, "error.html", exc.status_code, message=message)
        response.headers.update(headers)
        return response

    @app.exception_handler(Exception)
    async def _ours(request: Request, exc: Exception):
        import logging

        logging.getLogger("channels.web").exception("unhandled error on %s %s", request.method, request.url.path)
        if _is_api(request):
            return problem(500, "Internal Server Error", "the server failed; the error is logged")
        return render(request, "error.html", 500, message=Texts(language(request))("error"))
