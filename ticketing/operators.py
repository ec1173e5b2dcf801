"""Operators of the desk and integration tokens: who may log in to the web desk or call the REST API.

Passwords are kept only as argon2id hashes (RFC 9106, via argon2-cffi); an API token only as its SHA-256, so
a copy of the database gives neither. Failed logins are counted on the operator's row: after
`max_failures` in a row the account is locked for a time that doubles with each further failure (capped),
which turns password guessing into a slow business without locking an operator out for good.

`Accounts` is the one service over these tables; the web channel receives it inside the `Desk` and never
opens a session itself.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Boolean, Integer, String, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from .models import Base, BigId, utcnow


class Operator(Base):
    """A person who works tickets at the desk."""

    __tablename__ = "operators"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]
    # Lockout state: consecutive failures since the last good login, and until when logins are refused.
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]


class ApiToken(Base):
    """A bearer token of an integration (RFC 6750); only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class AccountError(ValueError):
    """A request about accounts that cannot be done (a taken username, a too short password)."""


@dataclass(frozen=True, slots=True)
class OperatorInfo:
    username: str
    name: str


@dataclass(frozen=True, slots=True)
class LoginResult:
    operator: OperatorInfo | None
    locked_seconds: int = 0  # > 0: refused because the account is locked, for this long still

    @property
    def ok(self) -> bool:
        return self.operator is not None


USERNAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-")
MIN_PASSWORD = 10


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class Accounts:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        max_failures: int = 5,
        lock_seconds: int = 30,
        max_lock_seconds: int = 900,
        hasher: PasswordHasher | None = None,
    ):
        self.sessions = sessions
        self.max_failures, self.lock_seconds, self.max_lock_seconds = max_failures, lock_seconds, max_lock_seconds
        self.hasher = hasher or PasswordHasher()
        # Checked when the username is unknown, so that a wrong username costs the same time as a wrong password.
        self._dummy = self.hasher.hash(secrets.token_hex(16))

    # -- operators ------------------------------------------------------------------------------------------
    def add(self, username: str, name: str, password: str) -> OperatorInfo:
        username = username.strip().lower()
        if not username or len(username) > 100 or not set(username) <= USERNAME_CHARS:
            raise AccountError("a username is 1 to 100 characters among a-z 0-9 . _ -")
        if len(password) < MIN_PASSWORD:
            raise AccountError(f"a password needs at least {MIN_PASSWORD} characters")
        name = (name or username).strip()[:200]
        with self.sessions() as s, s.begin():
            if s.scalar(select(Operator.id).where(Operator.username == username)) is not None:
                raise AccountError(f"operator {username!r} already exists")
            s.add(Operator(username=username, name=name, password_hash=self.hasher.hash(password)))
        return OperatorInfo(username, name)

    def set_active(self, username: str, active: bool) -> OperatorInfo:
        """Deactivate (or reactivate) an operator; deactivating ends every session of theirs at once."""
        username = username.strip().lower()
        with self.sessions() as s, s.begin():
            op = s.scalar(select(Operator).where(Operator.username == username))
            if op is None:
                raise AccountError(f"no operator {username!r}")
            op.active = active
            if not active:
                s.execute(delete(OperatorSession).where(OperatorSession.username == username))
            return OperatorInfo(op.username, op.name)

    def get(self, username: str) -> OperatorInfo | None:
        with self.sessions() as s:
            op = s.scalar(select(Operator).where(Operator.username == username, Operator.active.is_(True)))
            return OperatorInfo(op.username, op.name) if op else None

    def authenticate(self, username: str, password: str) -> LoginResult:
        """Check a login. A locked account is refused without looking at the password."""
        username = (username or "").strip().lower()[:100]
        now = utcnow()
        with self.sessions() as s, s.begin():
            op = s.scalar(select(Operator).where(Operator.username == username))
            if op is None or not op.active:
                self._verify(self._dummy, password)
                return LoginResult(None)
            if op.locked_until is not None and op.locked_until > now:
                return LoginResult(None, max(1, int((op.locked_until - now).total_seconds() + 0.999)))
            if not self._verify(op.password_hash, password):
                op.failed_logins += 1
                over = op.failed_logins - self.max_failures
                if over >= 0:
                    seconds = min(self.max_lock_seconds, self.lock_seconds * 2**over)
                    op.locked_until = now + timedelta(seconds=seconds)
                    return LoginResult(None, seconds)
                return LoginResult(None)
            op.failed_logins, op.locked_until, op.last_login_at = 0, None, now
            if self.hasher.check_needs_rehash(op.password_hash):
                op.password_hash = self.hasher.hash(password)
            return LoginResult(OperatorInfo(op.username, op.name))

    def _verify(self, hashed: str, password: str) -> bool:
        try:
            return self.hasher.verify(hashed, password or "")
        except (VerificationError, InvalidHashError):
            return False

    # -- API tokens -----------------------------------------------------------------------------------------
    def create_token(self, name: str) -> str:
        """Make a token for an integration; the only time its value is seen is now."""
        name = name.strip()
        if not name or len(name) > 100:
            raise AccountError("a token name is 1 to 100 characters")
        token = "hdt_" + secrets.token_urlsafe(32)
        with self.sessions() as s, s.begin():
            if s.scalar(select(ApiToken.id).where(ApiToken.name == name)) is not None:
                raise AccountError(f"a token named {name!r} already exists")
            s.add(ApiToken(name=name, token_sha256=_token_digest(token)))
        return token

    def check_token(self, token: str) -> str | None:
        """The name of the integration a bearer token belongs to, or None."""
        if not token or len(token) > 200:
            return None
        with self.sessions() as s:
            row = s.scalar(select(ApiToken).where(ApiToken.token_sha256 == _token_digest(token), ApiToken.revoked.is_(False)))
            return row.name if row else None


class OperatorSession(Base):
    """A login to the desk, kept server-side so that logging out or deactivating the operator ends it at once."""

    __tablename__ = "operator_sessions"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the session id in the cookie
    username: Mapped[str] = mapped_column(String(100), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
