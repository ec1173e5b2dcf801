"""The web channel's ASGI application: public form and status page, operator desk, REST API (FastAPI).

`create_app(ctx, desk)` builds it from the channel context (where contacts go, the blob store, the `[web]`
settings) and the `Desk` service (reads and lifecycle actions); it opens no database session itself.
HTML pages are Jinja2 templates with autoescaping on, so everything a user typed is escaped (and the
Content-Security-Policy forbids inline scripts in case it ever were not). HTTP semantics: RFC 9110; errors
of the API are RFC 9457 problem documents.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from ticketing.desk import Desk
from ticketing.faults import is_storage_full

from .batching import Batcher
from .i18n import LANG_COOKIE, LANGUAGES, Texts, pick_language
from .security import CSRF_COOKIE, BodyLimit, ClientAddress, RateLimiter, SecurityHeaders, Signer, new_cookie_value
from .settings import WebSettings

HERE = Path(__file__).resolve().parent
STORAGE_RETRY_SECONDS = 120  # Retry-After when the disk is full: an administrator has to act, so not seconds
storage_full_log = logging.getLogger("channels.web")


@dataclass
class WebState:
    """Everything the request handlers share, hung on `app.state.web`."""

    ctx: Any  # gateway.app.ChannelContext
    desk: Desk
    settings: WebSettings
    signer: Signer
    templates: jinja2.Environment
    limits: dict[str, RateLimiter]
    prefix: str
    batcher: Batcher
    clients: ClientAddress


class LoginRequired(Exception):
    pass


class TooManyRequests(Exception):
    def __init__(self, retry_after: int):
        self.retry_after = retry_after


def load_secret(settings: WebSettings) -> bytes:
    if settings.secret_key_file is not None:
        key = Path(settings.secret_key_file).read_bytes().strip()
        if len(key) < 16:
            raise ValueError(f"{settings.secret_key_file}: the web secret key needs at least 16 bytes")
        return key
    return secrets.token_bytes(32)


def _fmt_time(value: datetime | None) -> str:
    return value.astimezone().strftime("%d/%m/%Y %H:%M") if value else ""


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def make_templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every template, whatever its extension: user input is never trusted
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
        auto_reload=False,  # the templates ship with the code: no stat() of the file on every page
    )
    env.filters["when"] = _fmt_time
    env.filters["size"] = _size
    return env


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
        signer=Signer(load_secret(settings)),
        templates=make_templates(),
        limits={
            "submit": RateLimiter(settings.submit_per_minute),
            "status": RateLimiter(settings.status_per_minute),
            "login": RateLimiter(settings.login_per_minute),
            "api": RateLimiter(settings.api_per_minute),
            "suggest": RateLimiter(max(settings.api_per_minute, 120) if settings.api_per_minute else 0),
        },
        prefix=ctx.number_prefix,
        batcher=Batcher(ctx.intake.deliver_many, ctx.intake.deliver),
        clients=ClientAddress(settings.trusted_proxies),
    )
    from . import api, operator, public

    app.include_router(public.router)
    app.include_router(operator.router)
    app.include_router(api.router)
    api.install(app)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    _error_handlers(app)
    app.add_middleware(BodyLimit, limit=settings.max_request_bytes)
    app.add_middleware(SecurityHeaders)
    return app


# -- helpers shared by the routers -------------------------------------------------------------------------
def web(request: Request) -> WebState:
    return request.app.state.web


def client_key(request: Request) -> str:
    """The client's address: the TCP peer, or the one `web.trusted_proxies` forwarded the request for."""
    peer = request.client.host if request.client else None
    return web(request).clients.of(peer, request.headers.getlist("x-forwarded-for"))


def rate_limit(request: Request, bucket: str) -> None:
    wait = web(request).limits[bucket].hit(client_key(request))
    if wait:
        raise TooManyRequests(wait)


def language(request: Request) -> str:
    return pick_language(request.query_params.get("lang"), request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))


def csrf_cookie(request: Request) -> str:
    """This client's CSRF cookie value, made (and remembered for the response) when it has none yet."""
    value = getattr(request.state, "csrf_cookie", None) or request.cookies.get(CSRF_COOKIE)
    if not value or len(value) > 64:
        value = new_cookie_value()
        request.state.new_csrf_cookie = value
    request.state.csrf_cookie = value
    return value


def csrf_ok(request: Request, token: str | None, purpose: str = "") -> bool:
    return web(request).signer.csrf_ok(request.cookies.get(CSRF_COOKIE), token, purpose)


def render(request: Request, template: str, status: int = 200, **context) -> HTMLResponse:
    w = web(request)
    lang = context.pop("lang", None) or language(request)
    t = Texts(lang)
    cookie = csrf_cookie(request)
    page = w.templates.get_template(template).render(
        t=t,
        lang=lang,
        other_lang=next(x for x in LANGUAGES if x != lang),
        path=request.url.path,
        csrf=lambda purpose="": w.signer.csrf_token(cookie, purpose),
        operator=getattr(request.state, "operator", None),
        **context,
    )
    response = HTMLResponse(page, status_code=status)
    response.headers["cache-control"] = "no-store"
    finish(request, response)
    return response


def finish(request: Request, response) -> None:
    """Set the cookies this request decided on (a new CSRF cookie, a language chosen with ?lang=)."""
    secure = web(request).settings.cookie_secure
    new = getattr(request.state, "new_csrf_cookie", None)
    if new:
        response.set_cookie(CSRF_COOKIE, new, httponly=True, samesite="lax", secure=secure, path="/")
    lang = request.query_params.get("lang")
    if lang in LANGUAGES and request.cookies.get(LANG_COOKIE) != lang:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax", secure=secure, path="/")


def problem(status: int, title: str, detail: str, headers: dict | None = None, **extra) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type="application/problem+json", headers=headers)


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


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

        if is_storage_full(exc):
            # Ours and temporary, and nothing was stored: say so, and when to come back (RFC 9110 §15.6.4).
            storage_full_log.warning("storage full: refused %s %s with 503", request.method, request.url.path)
            headers = {"retry-after": str(STORAGE_RETRY_SECONDS)}
            if _is_api(request):
                return problem(503, "Service Unavailable", "the server's storage is full: nothing was stored; retry later", headers)
            response = render(request, "error.html", 503, message=Texts(language(request))("err_storage_full"))
            response.headers.update(headers)
            return response
        logging.getLogger("channels.web").exception("unhandled error on %s %s", request.method, request.url.path)
        if _is_api(request):
            return problem(500, "Internal Server Error", "the server failed; the error is logged")
        return render(request, "error.html", 500, message=Texts(language(request))("error"))
