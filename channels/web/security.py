"""Web security at the edge: signed tokens (CSRF, operator sessions), per-client rate limits, size limits, headers.

- CSRF: every client gets a random `hd_csrf` cookie; every form carries HMAC(key, cookie ":" purpose), and a
  POST whose token does not match its cookie is refused with 403 (the "double submit cookie" pattern of the
  OWASP CSRF cheat sheet, with the token bound to the cookie by HMAC so it cannot be planted). The public
  form's purpose is its submission id, so an id is only accepted when the server issued it.
- Operator sessions: a cookie holding `session id|expiry` signed with HMAC-SHA256 (HttpOnly, SameSite=Strict,
  Secure unless configured off). The signature turns away forged cookies without a database read; the id
  must also name an open session on the server (`Desk.session_operator`), so logging out, or deactivating the
  operator, ends a session even though its cookie is still valid (OWASP Session Management cheat sheet).
- Rate limits: a sliding one-minute window per (client address, bucket), answered with 429 (RFC 6585) and a
  Retry-After header.
- The body size limit counts the bytes actually received, so a chunked upload cannot get around it (413).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
import threading
import time
from collections import deque

CSRF_COOKIE = "hd_csrf"
SESSION_COOKIE = "hd_session"


class Signer:
    """Signs with `key`; also accepts what `previous` keys signed (a rotated secret, during its grace period)."""

    def __init__(self, key: bytes, previous: tuple[bytes, ...] = ()):
        if len(key) < 16:
            raise ValueError("the web secret key needs at least 16 bytes")
        self.key = key
        self.previous = tuple(k for k in previous if len(k) >= 16 and k != key)

    def mac(self, *parts: str, key: bytes | None = None) -> str:
        msg = "\x1f".join(parts).encode("utf-8", "surrogatepass")
        return base64.urlsafe_b64encode(hmac.new(key or self.key, msg, hashlib.sha256).digest()[:24]).decode().rstrip("=")

    def check(self, token: str | None, *parts: str) -> bool:
        if not token:
            return False
        given = token.encode("utf-8", "replace")
        return any(hmac.compare_digest(given, self.mac(*parts, key=k).encode()) for k in (self.key, *self.previous))

    # -- CSRF ------------------------------------------------------------------------------------------------
    def csrf_token(self, cookie: str, purpose: str = "") -> str:
        return self.mac("csrf", cookie, purpose)

    def csrf_ok(self, cookie: str | None, token: str | None, purpose: str = "") -> bool:
        return bool(cookie) and self.check(token, "csrf", cookie or "", purpose)

    # -- operator sessions -----------------------------------------------------------------------------------
    def session_cookie(self, session_id: str, seconds: float) -> str:
        expires = str(int(time.time() + seconds))
        return f"{session_id}|{expires}|{self.mac('session', session_id, expires)}"

    def session_id(self, cookie: str | None) -> str | None:
        """The session id of a cookie we signed and that has not expired; the server must still know it."""
        if not cookie or cookie.count("|") != 2:
            return None
        session_id, expires, mac = cookie.split("|")
        if not expires.isdigit() or int(expires) < time.time() or not self.check(mac, "session", session_id, expires):
            return None
        return session_id


def new_cookie_value() -> str:
    return secrets.token_urlsafe(24)


class RateLimiter:
    """At most `limit` events per `window` seconds per key; thread-safe, memory bounded by the keys seen."""

    def __init__(self, limit: int, window: float = 60.0, max_keys: int = 100_000):
        self.limit, self.window, self.max_keys = limit, window, max_keys
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> int:
        """Count one event; returns 0 when allowed, else the seconds to wait."""
        if self.limit <= 0:
            return 0
        now = time.monotonic()
        with self._lock:
            q = self._hits.get(key)
            if q is None:
                if len(self._hits) >= self.max_keys:
                    self._prune(now)
                q = self._hits[key] = deque()
            while q and q[0] <= now - self.window:
                q.popleft()
            if len(q) >= self.limit:
                return max(1, int(q[0] + self.window - now + 0.999))
            q.append(now)
            return 0

    def _prune(self, now: float) -> None:
        for key in [k for k, q in self._hits.items() if not q or q[-1] <= now - self.window]:
            del self._hits[key]
        if len(self._hits) >= self.max_keys:  # still full: forget the oldest half rather than grow
            for key in list(self._hits)[: self.max_keys // 2]:
                del self._hits[key]


class TooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: refuse a request body over `limit` bytes with 413, by its Content-Length or as it streams."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                return await _too_large(send)
        seen = 0
        started = False

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise TooLarge()
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except TooLarge:
            if not started:
                await _too_large(send)


async def _too_large(send) -> None:
    body = b'{"type":"about:blank","title":"Payload Too Large","status":413,"detail":"the request is larger than this server accepts"}'
    await send({"type": "http.response.start", "status": 413, "headers": [(b"content-type", b"application/problem+json"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


# No inline script or style anywhere: the pages load /static files only, so a CSP this strict costs nothing and
# stops an injected <script> even if escaping ever failed.
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


class SecurityHeaders:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def add_headers(message):
            if message["type"] == "http.response.start":
                names = {n for n, _ in message.get("headers", ())}
                message["headers"] = list(message.get("headers", ())) + [h for h in SECURITY_HEADERS if h[0] not in names]
            await send(message)

        await self.app(scope, receive, add_headers)


class ClientAddress:
    """Who the client is, for rate limits and logs: the TCP peer, or behind trusted reverse proxies the address
    they saw (X-Forwarded-For, RFC 7239 §5.2's de-facto form).

    `X-Forwarded-For` is believed only when the peer itself is a trusted proxy, and then read from the right:
    each trusted proxy appends the address it received the request from, so the rightmost address that is not
    one of our proxies is the client. Everything left of it was written by the client and can be anything.
    """

    def __init__(self, trusted: list[str] | tuple[str, ...] = ()):
        self.trusted = tuple(ipaddress.ip_network(t.strip(), strict=False) for t in trusted)

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.strip().strip("[]"))
        except ValueError:
            return False
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self.trusted)

    def of(self, peer: str | None, forwarded: list[str]) -> str:
        peer = peer or "unknown"
        if not self.trusted or not forwarded or not self._is_trusted(peer):
            return peer
        hops = [h.strip() for header in forwarded for h in header.split(",") if h.strip()]
        for hop in reversed(hops):
            if not self._is_trusted(hop):
                return hop[:64]
        return hops[0][:64] if hops else peer


# -- the web secret: one per installation, kept across restarts ---------------------------------------------------
SECRET_FILE = "web-secret"  # in the data dir: created once, mode 0600
PREVIOUS_SUFFIX = ".previous"  # the secret before the last rotation, accepted for `secret_grace_hours`


def _read_key(path, what: str) -> bytes:
    key = path.read_bytes().strip()
    if len(key) < 16:
        raise ValueError(f"{path}: the {what} needs at least 16 bytes")
    return key


def load_signer(settings, data_dir) -> Signer:
    """The signer of CSRF tokens and session cookies, from (first found) `web.secret` (the environment:
    HELPDESK_GATEWAY__WEB__SECRET), `web.secret_file` (or the older `secret_key_file`), else `<data_dir>/web-secret`,
    made once with mode 0600. A form opened before a restart is still accepted after it, and several web
    processes on one data dir (or given one secret file) accept each other's tokens. After `rotate_secret` the
    previous secret stays valid for `web.secret_grace_hours`."""
    from pathlib import Path

    if getattr(settings, "secret", None):
        return Signer(settings.secret.encode())
    configured = getattr(settings, "secret_file", None) or getattr(settings, "secret_key_file", None)
    path = Path(configured) if configured else Path(data_dir) / SECRET_FILE
    if configured is None and not path.exists():
        _create_secret(path)
    key = _read_key(path, "web secret key")
    previous = path.with_name(path.name + PREVIOUS_SUFFIX)
    grace = float(getattr(settings, "secret_grace_hours", 24.0)) * 3600
    older: tuple[bytes, ...] = ()
    if previous.exists() and time.time() - previous.stat().st_mtime < grace:
        older = (_read_key(previous, "previous web secret key"),)
    return Signer(key, older)


def _create_secret(path) -> None:
    import os

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_urlsafe(48).encode() + b"\n")
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(tmp, path)  # never replaces a secret another process made meanwhile
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)


def rotate_secret(path) -> None:
    """A new web secret; the current one becomes the previous one (accepted during the grace period)."""
    import os
    from pathlib import Path

    path = Path(path)
    if path.exists():
        previous = path.with_name(path.name + PREVIOUS_SUFFIX)
        os.replace(path, previous)
        os.utime(previous)  # the grace period counts from the rotation
    _create_secret(path)
