"""What the web channel's routers share: its state on the app (`WebState`), templates, rate limits, CSRF, and
the answers (an HTML page, an RFC 9457 problem document). `app.py` builds the app from it and the routers;
the routers import it, never `app.py`, so no module of the channel imports itself through another.
"""


from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse

from ticketing.desk import Desk

from .batching import Batcher
from .i18n import LANG_COOKIE, LANGUAGES, Texts, pick_language
from .security import CSRF_COOKIE, ClientAddress, RateLimiter, Signer, new_cookie_value
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
    """?lang=, then the logged-in operator's saved choice, then the language cookie, then the browser's."""
    saved = getattr(request.state, "operator_language", None)
    return pick_language(request.query_params.get("lang"), saved or request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))


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
