"""The web secret survives a restart: a form opened before it is accepted after it (no 403, no lost text); the key
is made once in the data dir with mode 0600, or comes from web.secret_file / the environment; after a rotation
the previous key is accepted during the grace period, and not after it."""

from __future__ import annotations

import os
import stat
import time

import httpx

from channels.web.security import SECRET_FILE, Signer, load_signer, rotate_secret
from channels.web.settings import WebSettings
from tests.conftest import make_config
from tests.test_web_support import form_fields, web_factory  # noqa: F401  (fixture)


def test_a_form_opened_before_a_restart_is_accepted_after_it(sqlite_core, web_factory):
    first = web_factory(sqlite_core, cookie_secure=False)
    with httpx.Client(base_url=first.url) as c:
        hidden = form_fields(c.get("/").text)
        first.server.__exit__(None, None, None)  # the gateway stops…
        second = web_factory(sqlite_core, cookie_secure=False)  # …and starts again, over the same data dir
        c.base_url = second.url
        r = c.post("/", data={"name": "Mario Rossi", "email": "", "phone": "055 438 2144", "asset": "stampante tributi",
                              "anomaly": "La stampante non stampa.", **hidden})
    assert r.status_code == 200 and 'id="ticket-number"' in r.text
    key = sqlite_core.config.storage.data_dir / SECRET_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_bytes().strip()) >= 32


def test_the_secret_from_the_environment_or_a_file(tmp_path):
    config = make_config(tmp_path, None, web__secret='"an-environment-secret-of-32-bytes!!"')
    signer = load_signer(config.web, tmp_path / "data")
    assert signer.key == b"an-environment-secret-of-32-bytes!!" and not (tmp_path / "data" / SECRET_FILE).exists()
    shared = tmp_path / "shared-secret"
    shared.write_bytes(b"0123456789abcdef0123456789abcdef\n")
    a = load_signer(WebSettings(secret_file=shared), tmp_path / "a")
    b = load_signer(WebSettings(secret_file=shared), tmp_path / "b")  # two gateways given one file
    assert b.csrf_ok("cookie", a.csrf_token("cookie", "sid"), "sid")


def test_a_rotated_secret_is_accepted_during_the_grace_period_only(tmp_path):
    data = tmp_path / "data"
    before = load_signer(WebSettings(), data)
    token = before.csrf_token("cookie", "form-1")
    rotate_secret(data / SECRET_FILE)
    after = load_signer(WebSettings(secret_grace_hours=1), data)
    assert after.key != before.key and after.csrf_ok("cookie", token, "form-1")
    assert after.csrf_token("cookie", "form-1") != token  # new tokens are signed with the new key
    assert not Signer(after.key).csrf_ok("cookie", token, "form-1")
    old = time.time() - 7200
    os.utime(data / (SECRET_FILE + ".previous"), (old, old))
    assert not load_signer(WebSettings(secret_grace_hours=1), data).csrf_ok("cookie", token, "form-1")
