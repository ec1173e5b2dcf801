"""STARTTLS (RFC 3207) and AUTH PLAIN / LOGIN (RFC 4954) on the SMTP receiver, spoken to with smtplib over
loopback: the certificate is a throwaway one made here with `openssl`, which the client verifies; the relay
accounts are Argon2 hashes in a users file. 250 still only comes with the ticket committed."""

from __future__ import annotations

import shutil
import smtplib
import ssl
import subprocess
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from pydantic import ValidationError
from sqlalchemy import select

from channels.email.access import read_password_file
from channels.email.settings import EmailSettings
from ticketing.models import Ticket
from tests.conftest import missing
from tests.test_email_smtp import DATA, SUPPORT, count, crlf, start_gateway

RELAY, PASSWORD = "relay.regione", "s3cret relay pw"


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        missing("openssl is not installed (Debian package 'openssl')")
    d = tmp_path_factory.mktemp("pki")
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")],
        check=True, capture_output=True, timeout=60,
    )
    users = d / "smtp-users"
    users.write_text(f"# relays allowed to AUTH\n{RELAY}:{PasswordHasher().hash(PASSWORD)}\n", encoding="utf-8")
    return {"cert": d / "cert.pem", "key": d / "key.pem", "users": users}


def client_tls(pki) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(pki["cert"]))  # verifies the server's certificate and name


def mail_from_a_user(s: smtplib.SMTP) -> tuple[int, bytes]:
    s.mail("giulia.bianchi@regione.example.it")
    s.rcpt(SUPPORT)
    return s.data(crlf((DATA / "it_attachment.eml").read_bytes()))


def committed_number(core) -> str:
    with core.sessions() as s:
        (t,) = s.scalars(select(Ticket)).all()
        return core.intake.number(t)


def plain(s: smtplib.SMTP, user: str, password: str) -> tuple[int, bytes]:
    """One AUTH PLAIN (smtplib's login() would try LOGIN after a refused PLAIN: two attempts)."""
    s.user, s.password = user, password
    try:
        return s.auth("PLAIN", s.auth_plain)
    except smtplib.SMTPAuthenticationError as e:
        return e.smtp_code, e.smtp_error


def test_starttls_is_offered_and_mail_over_it_gets_250_with_the_ticket_committed(sqlite_core, pki):
    port, stop = start_gateway(sqlite_core, parse_workers=0, tls_cert=str(pki["cert"]), tls_key=str(pki["key"]))
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
            s.ehlo("mx.regione.example.it")
            assert s.has_extn("starttls") and not s.has_extn("auth")
            assert s.starttls(context=client_tls(pki))[0] == 220
            assert s.sock.version() in ("TLSv1.2", "TLSv1.3")
            s.ehlo("mx.regione.example.it")
            assert not s.has_extn("starttls") and not s.has_extn("auth")  # AUTH is off by default
            code, text = mail_from_a_user(s)
            assert code == 250 and text.decode().endswith(committed_number(sqlite_core))
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:  # STARTTLS offered, not required
            assert s.sendmail("a@example.net", [SUPPORT], crlf(b"Subject: chiaro\nMessage-ID: <clear@x>\n\nIl mouse non va.\n")) == {}
        assert count(sqlite_core, Ticket) == 2
    finally:
        stop()


def test_require_tls_refuses_mail_before_starttls_with_530(sqlite_core, pki):
    port, stop = start_gateway(sqlite_core, parse_workers=0, tls_cert=str(pki["cert"]), tls_key=str(pki["key"]), require_tls=True)
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
            s.ehlo("mx.regione.example.it")
            code, _ = s.mail("giulia.bianchi@regione.example.it")
            assert code == 530
            s.starttls(context=client_tls(pki))
            s.ehlo("mx.regione.example.it")
            assert mail_from_a_user(s)[0] == 250
        assert count(sqlite_core, Ticket) == 1
    finally:
        stop()


def test_auth_required_after_starttls_535_for_a_wrong_password_then_250(sqlite_core, pki):
    port, stop = start_gateway(
        sqlite_core, parse_workers=0, tls_cert=str(pki["cert"]), tls_key=str(pki["key"]), auth="required", auth_users_file=str(pki["users"])
    )
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
            s.ehlo("mx.regione.example.it")
            assert not s.has_extn("auth")  # no password in clear: AUTH only after STARTTLS
            assert s.docmd("AUTH", "PLAIN " + "AHJlbGF5AHB3")[0] == 538
            s.starttls(context=client_tls(pki))
            s.ehlo("mx.regione.example.it")
            assert set(s.esmtp_features["auth"].split()) == {"LOGIN", "PLAIN"}
            code, text = s.mail("giulia.bianchi@regione.example.it")
            assert code == 530 and text.startswith(b"5.7.0")  # no mail without AUTH
            assert plain(s, RELAY, "wrong")[0] == 535
            assert plain(s, RELAY, PASSWORD)[0] == 235
            code, text = mail_from_a_user(s)
            assert code == 250 and text.decode().endswith(committed_number(sqlite_core))
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:  # AUTH LOGIN, the other mechanism
            s.starttls(context=client_tls(pki))
            s.ehlo("mx.regione.example.it")
            s.user, s.password = RELAY, PASSWORD
            assert s.auth("LOGIN", s.auth_login)[0] == 235
            s.rset()
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:  # three AUTH commands per connection, then 421
            s.starttls(context=client_tls(pki))
            s.ehlo("mx.regione.example.it")
            assert [plain(s, user, "guess")[0] for user in (RELAY, "nobody", RELAY)] == [535, 535, 535]
            assert plain(s, RELAY, PASSWORD)[0] == 421
        assert count(sqlite_core, Ticket) == 1
    finally:
        stop()


def test_auth_without_tls_when_allowed_and_the_users_file_read_again_when_it_changes(sqlite_core, pki, tmp_path):
    users = tmp_path / "smtp-users"
    shutil.copy(pki["users"], users)
    port, stop = start_gateway(sqlite_core, parse_workers=0, auth="optional", auth_require_tls=False, auth_users_file=str(users))
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
            s.ehlo("mx.regione.example.it")
            assert s.has_extn("auth") and not s.has_extn("starttls")
            assert mail_from_a_user(s)[0] == 250  # optional: mail without AUTH is still taken
            assert plain(s, "second.relay", "another pw")[0] == 535
            with users.open("a", encoding="utf-8") as f:  # an account added while the gateway runs
                f.write(f"second.relay:{PasswordHasher().hash('another pw')}\n")
            assert plain(s, "second.relay", "another pw")[0] == 235
        users.write_text("relay.regione:plain-text-password\n", encoding="utf-8")  # broken: ours, not the relay's
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
            s.ehlo("mx.regione.example.it")
            code, text = plain(s, RELAY, PASSWORD)
            assert code == 454 and text.startswith(b"4.7.0")
        assert count(sqlite_core, Ticket) == 1
    finally:
        stop()


def test_tls_and_auth_settings_are_checked_when_loaded(pki, tmp_path):
    for smtp, words in [
        ({"require_tls": True}, "require_tls needs tls_cert"),
        ({"auth": "required"}, "needs auth_users_file"),
        ({"auth": "optional", "auth_users_file": str(pki["users"])}, "auth with auth_require_tls needs tls_cert"),
        ({"auth": "sometimes", "auth_users_file": str(pki["users"])}, "auth"),
    ]:
        with pytest.raises(ValidationError, match=words):
            EmailSettings(smtp=smtp)
    assert EmailSettings().smtp.auth == "off" and EmailSettings().smtp.tls_cert is None  # today's behaviour
    bad = tmp_path / "users"
    bad.write_text(f"# ok\n{RELAY}:{PasswordHasher().hash(PASSWORD)}\nsomeone:hunter2\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"{bad}:3: expected 'user:\$argon2id"):
        read_password_file(bad)
