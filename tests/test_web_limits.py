"""The web channel's limits, each answered clearly, as a user or an administrator would check them:

- a form refused for its token (a restart changed the secret, the page sat open too long) comes back with
  the user's text and a fresh token, never a bare 403 page, and sending it again makes one ticket, also when
  the first post had landed;
- a re-sent post returns the same ticket, across a restart of the web server;
- behind `web.trusted_proxies` rate limits count per real client (X-Forwarded-For), and nobody else can
  choose their address by sending that header;
- a full disk answers 503 with Retry-After on the form and the API, keeps the user's text, and stores
  nothing; once there is room the same post makes its ticket.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from channels.web.security import ClientAddress
from tests.conftest import make_config, missing
from tests.test_web_support import form_fields, web_factory  # noqa: F401 - fixture

REPORT = {"name": "Marta Conti", "email": "marta.conti@example.org", "phone": "", "asset": "stampante tributi",
          "anomaly": "La stampante del secondo piano si inceppa a ogni foglio da stamattina."}


def _tickets(core) -> int:
    from ticketing.models import Ticket

    with core.sessions() as s:
        return s.scalar(select(func.count()).select_from(Ticket))


def _form(client: httpx.Client, url: str) -> dict:
    page = client.get(f"{url}/")
    assert page.status_code == 200
    return form_fields(page.text)


def _number(html: str) -> str:
    found = re.search(r"HD-\d{4}-\d{6}", html)
    assert found, html[:2000]
    return found.group(0)


def _secret(tmp_path: Path, name: str, value: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(value)
    return path


def test_a_refused_form_comes_back_with_the_text_and_makes_one_ticket(sqlite_core, web_factory, tmp_path):
    before = web_factory(sqlite_core, cookie_secure=False, secret_key_file=_secret(tmp_path, "a", b"a" * 32))
    with httpx.Client() as client:
        fields = _form(client, before.url)
        before.server.__exit__(None, None, None)
        # The gateway came back with another secret (the page sat open across it): the token no longer checks.
        after = web_factory(sqlite_core, cookie_secure=False, secret_key_file=_secret(tmp_path, "b", b"b" * 32))
        refused = client.post(f"{after.url}/", data={**fields, **REPORT})
        assert refused.status_code == 403
        assert "Marta Conti" in refused.text and "si inceppa a ogni foglio" in refused.text
        assert 'role="alert"' in refused.text and "<form" in refused.text
        again = form_fields(refused.text)
        assert again["sid"] == fields["sid"] and again["csrf"] != fields["csrf"]
        sent = client.post(f"{after.url}/", data={**again, **REPORT})
        assert sent.status_code == 200
        number = _number(sent.text)
        # Pressing send once more (or the browser re-posting) returns the same ticket.
        resent = client.post(f"{after.url}/", data={**again, **REPORT})
        assert _number(resent.text) == number
    assert _tickets(sqlite_core) == 1


def test_a_post_resent_after_a_restart_returns_the_same_ticket(sqlite_core, web_factory, tmp_path):
    secret = _secret(tmp_path, "secret", b"k" * 32)
    first = web_factory(sqlite_core, cookie_secure=False, secret_key_file=secret)
    with httpx.Client() as client:
        fields = _form(client, first.url)
        number = _number(client.post(f"{first.url}/", data={**fields, **REPORT}).text)
        first.server.__exit__(None, None, None)
        second = web_factory(sqlite_core, cookie_secure=False, secret_key_file=secret)
        # The answer was lost with the restart: the browser sends the same post again.
        resent = client.post(f"{second.url}/", data={**fields, **REPORT})
        assert resent.status_code == 200 and _number(resent.text) == number
    assert _tickets(sqlite_core) == 1


def test_the_client_address_is_read_from_the_right_behind_trusted_proxies():
    direct = ClientAddress([])
    assert direct.of("198.51.100.7", ["203.0.113.5"]) == "198.51.100.7"  # no proxy trusted: the header is ignored
    proxied = ClientAddress(["10.0.0.0/8", "127.0.0.1"])
    assert proxied.of("10.1.2.3", ["203.0.113.5"]) == "203.0.113.5"
    # The client wrote the left part itself; our proxies appended the rest: the rightmost untrusted hop wins.
    assert proxied.of("127.0.0.1", ["6.6.6.6, 203.0.113.5, 10.9.9.9"]) == "203.0.113.5"
    assert proxied.of("127.0.0.1", ["6.6.6.6", "203.0.113.5"]) == "203.0.113.5"  # several header lines
    assert proxied.of("198.51.100.7", ["203.0.113.5"]) == "198.51.100.7"  # not from a proxy: not believed
    assert proxied.of("::ffff:127.0.0.1", ["203.0.113.9"]) == "203.0.113.9"
    with pytest.raises(ValueError):
        ClientAddress(["not-a-network"])


def test_rate_limits_count_per_client_behind_a_trusted_proxy(sqlite_core, web_factory):
    def statuses(url: str, forwarded: str, n: int) -> list[int]:
        with httpx.Client() as client:
            return [client.post(f"{url}/status", data={}, headers={"x-forwarded-for": forwarded}).status_code for _ in range(n)]

    behind = web_factory(sqlite_core, cookie_secure=False, status_per_minute=2, trusted_proxies=["127.0.0.1"])
    assert statuses(behind.url, "203.0.113.5", 3)[-1] == 429
    assert statuses(behind.url, "203.0.113.6", 2) == [403, 403]  # another user behind the same proxy is not limited
    # Without trusted proxies the header is the client's own word: changing it does not escape the limit.
    direct = web_factory(sqlite_core, cookie_secure=False, status_per_minute=2)
    assert statuses(direct.url, "203.0.113.7", 2) == [403, 403]
    assert statuses(direct.url, "203.0.113.8", 1) == [429]


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MiB tmpfs for the data dir and the SQLite database, unmounted at the end."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        missing("mounting a small tmpfs needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if done.returncode != 0:
        missing(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _fill(mnt: Path) -> Path:
    ballast = mnt / "ballast"
    with open(ballast, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return ballast


def test_a_full_disk_answers_503_and_keeps_the_text(small_disk, web_factory):
    from gateway.app import build_core, seed_directory

    core = build_core(make_config(small_disk, f"sqlite:///{small_disk / 'helpdesk.sqlite3'}"))
    try:
        seed_directory(core)
        core.engine.dispose()
        with sqlite3.connect(small_disk / "helpdesk.sqlite3") as db:  # an empty WAL: the next commit must grow it
            assert db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
        web = web_factory(core, cookie_secure=False)
        with httpx.Client() as client:
            fields = _form(client, web.url)
            ballast = _fill(small_disk)
            full = client.post(f"{web.url}/", data={**fields, **REPORT})
            assert full.status_code == 503 and full.headers["retry-after"].isdigit()
            assert "si inceppa a ogni foglio" in full.text and "<form" in full.text
            api = client.post(f"{web.url}/api/v1/tickets", headers={"authorization": f"Bearer {web.token}"},
                              json={"external_id": "full-1", "name": "Marta Conti", "email": "marta.conti@example.org", "asset": "stampante", "anomaly": "non stampa"})
            assert api.status_code == 503 and api.headers["retry-after"].isdigit()
            assert api.headers["content-type"].startswith("application/problem+json")
            assert _tickets(core) == 0
            ballast.unlink()
            # Room again: the same form (same submission id) and the same API call each make their one ticket.
            sent = client.post(f"{web.url}/", data={**form_fields(full.text), **REPORT})
            assert sent.status_code == 200 and _number(sent.text)
            api = client.post(f"{web.url}/api/v1/tickets", headers={"authorization": f"Bearer {web.token}"},
                              json={"external_id": "full-1", "name": "Marta Conti", "email": "marta.conti@example.org", "asset": "stampante", "anomaly": "non stampa"})
            assert api.status_code == 201
        assert _tickets(core) == 2
    finally:
        core.close()
