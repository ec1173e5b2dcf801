"""Fixtures shared by the web channel's tests (imported by tests/test_web_*.py): the app served by uvicorn
on a loopback port over a real core, an operator account, an API token, and Debian's Chromium driven by
Playwright. No test lives here."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT, missing

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ARTIFACTS = ROOT / "artifacts"
OPERATOR, PASSWORD = "anna.verdi", "correct horse battery"


@dataclass
class Web:
    url: str
    core: object
    desk: object
    ctx: object
    token: str
    server: object = None  # channels.web.testing.ServerThread


def build(core, **settings):
    """The web app over `core`, as gateway/app.py wires it: a ChannelContext and a Desk."""
    from channels.web.app import create_app
    from channels.web.settings import WebSettings
    from gateway.app import channel_context
    from ticketing.desk import Desk
    from ticketing.operators import Accounts

    values = dict(port=0, submit_per_minute=0, status_per_minute=0, login_per_minute=0, api_per_minute=0)
    values.update(settings)
    ctx = channel_context(core, WebSettings(**values))
    desk = Desk(core.sessions, core.lifecycle, core.config.ticketing.number_prefix, core.config.ticketing.low_confidence,
                Accounts(core.sessions, max_failures=3, lock_seconds=2))
    return create_app(ctx, desk), ctx, desk


@pytest.fixture
def web_factory():
    """Start the app over a core with the given settings; stopped at the end of the test."""
    from channels.web.testing import ServerThread

    running = []

    def start(core, **settings) -> Web:
        from channels.web.webhooks import WebhookDispatcher

        app, ctx, desk = build(core, **settings)
        if desk.accounts.get(OPERATOR) is None:
            desk.accounts.add(OPERATOR, "Anna Verdi", PASSWORD)
        token = desk.accounts.create_token(f"test-{len(running)}")
        background = [WebhookDispatcher(desk, ctx.settings)] if ctx.settings.webhooks else []  # as plugin.load does
        server = ServerThread(app, background=background).__enter__()
        running.append(server)
        return Web(server.url, core, desk, ctx, token, server)

    yield start
    for server in running:
        server.__exit__(None, None, None)  # a second stop (the test stopped it already) does nothing


@pytest.fixture
def web(sqlite_core, web_factory) -> Web:
    """The app over SQLite with plain-HTTP cookies (for httpx, which keeps Secure cookies for https)."""
    return web_factory(sqlite_core, cookie_secure=False)


@pytest.fixture(scope="module")  # per module: each test module imports it, and Playwright's sync API runs one at a time
def chromium():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("the playwright Python package is not installed")
    if not os.access(CHROMIUM, os.X_OK):
        missing(f"{CHROMIUM} is not installed (Debian package 'chromium')")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium):
    context = chromium.new_context(locale="it-IT", viewport={"width": 1100, "height": 900})
    page = context.new_page()
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.dialogs = dialogs  # any alert()/confirm() means injected script ran
    yield page
    context.close()


def form_fields(html: str) -> dict[str, str]:
    """The hidden fields (csrf, sid) of the first form of a page."""
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', html))


def login(page, url: str, username: str = OPERATOR, password: str = PASSWORD) -> None:
    page.goto(f"{url}/desk/")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit].primary")


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path
