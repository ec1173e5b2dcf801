"""Operators of the desk and API tokens: who may log in to the web desk or call the REST API, and with which rights.

Passwords are kept only as argon2id hashes (RFC 9106, via argon2-cffi); an API token only as its SHA-256, so
a copy of the database gives neither.

Failed logins slow down per (username, source address), never lock the account: after `max_failures` wrong
passwords in a row from one address for one username, that pair waits `lock_seconds`, doubling with each
further failure up to `max_lock_seconds`; the operator still logs in from their own desk. A username that
does not exist is counted, checked (against a dummy argon2 hash) and answered exactly like one that does,
so neither the time nor the words tell which usernames exist.

Roles (`ROLES`): `operator` (level I), `specialist` (a member of level II/III groups: sees and acts on their
groups' tickets), `supervisor` (every ticket, assigns to others), `admin` (also accounts, tokens and the
audit page). An API token belongs to an operator (it acts as them, within its scopes, and dies with their
deactivation) or to a named service account; its scopes are `read`, `write`, `admin`. Every login and
account or token change is written to the audit trail (`ticketing.audit`).

`Accounts` is the one service over these tables; the web channel never opens a session itself.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Boolean, Integer, String, delete, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from .audit import record
from .models import Base, BigId, utcnow

ROLES = ("operator", "specialist", "supervisor", "admin")
SCOPES = ("read", "write", "admin")


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
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)  # unused since issue 14: see LoginThrottle
    locked_until: Mapped[datetime | None]
    role: Mapped[str] = mapped_column(String(20), default="operator")
    language: Mapped[str | None] = mapped_column(String(5))  # the desk's language this operator chose (?lang=)


class ApiToken(Base):
    """A bearer token of an integration (RFC 6750); only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    operator: Mapped[str | None] = mapped_column(String(100))  # the owner; None: a service account named `name`
    scopes: Mapped[list] = mapped_column(default=lambda: ["read", "write"])


class LoginThrottle(Base):
    """Failed logins in a row for one (username, source) pair, and until when that pair must wait."""

    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of "username\0source"
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_at: Mapped[datetime] = mapped_column(default=utcnow)
    wait_until: Mapped[datetime | None]


class AccountError(ValueError):
    """A request about accounts that cannot be done (a taken username, a too short password)."""


@dataclass(frozen=True, slots=True)
class OperatorInfo:
    username: str
    name: str
    role: str = "operator"
    active: bool = True
    groups: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LoginResult:
    operator: OperatorInfo | None
    wait_seconds: int = 0  # > 0: this username from this source must wait this long before trying again

    @property
    def ok(self) -> bool:
        return self.operator is not None

    @property
    def locked_seconds(self) -> int:  # the name before issue 14 (nothing is locked any more)
        return self.wait_seconds


@dataclass(frozen=True, slots=True)
class Identity:
    """Who an API token acts as: its owner operator (with their role) or a service account, and its scopes."""

    name: str  # the operator's username, or "service:<name>"
    token: str  # the token's name
    scopes: frozenset[str]
    operator: OperatorInfo | None = None

    @property
    def role(self) -> str:
        return self.operator.role if self.operator else "service"


@dataclass(frozen=True, slots=True)
class TokenInfo:
    name: str
    operator: str | None
    scopes: tuple[str, ...]
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool


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
    def add(self, username: str, name: str, password: str, role: str = "operator", *, actor: str = "cli") -> OperatorInfo:
        username = username.strip().lower()
        if not username or len(username) > 100 or not set(username) <= USERNAME_CHARS:
            raise AccountError("a username is 1 to 100 characters among a-z 0-9 . _ -")
        if len(password) < MIN_PASSWORD:
            raise AccountError(f"a password needs at least {MIN_PASSWORD} characters")
        if role not in ROLES:
            raise AccountError(f"role {role!r} is not one of {', '.join(ROLES)}")
        name = (name or username).strip()[:200]
        with self.sessions() as s, s.begin():
            if s.scalar(select(Operator.id).where(Operator.username == username)) is not None:
                raise AccountError(f"operator {username!r} already exists")
            s.add(Operator(username=username, name=name, password_hash=self.hasher.hash(password), role=role))
            record(s, "operator.added", actor, username, role=role)
        return OperatorInfo(username, name, role)

    def set_active(self, username: str, active: bool, *, actor: str = "cli") -> OperatorInfo:
        """Deactivate (or reactivate) an operator; deactivating ends every session and token of theirs at once."""
        username = username.strip().lower()
        with self.sessions() as s, s.begin():
            op = s.scalar(select(Operator).where(Operator.username == username))
            if op is None:
                raise AccountError(f"no operator {username!r}")
            op.active = active
            if not active:
                s.execute(delete(OperatorSession).where(OperatorSession.username == username))
                s.execute(update(ApiToken).where(ApiToken.operator == username).values(revoked=True))
            record(s, "operator.reactivated" if active else "operator.deactivated", actor, username)
            return OperatorInfo(op.username, op.name, op.role, op.active)

    def set_role(self, username: str, role: str, *, actor: str = "cli") -> OperatorInfo:
        username = username.strip().lower()
        if role not in ROLES:
            raise AccountError(f"role {role!r} is not one of {', '.join(ROLES)}")
        with self.sessions() as s, s.begin():
            op = s.scalar(select(Operator).where(Operator.username == username))
            if op is None:
                raise AccountError(f"no operator {username!r}")
            old, op.role = op.role, role
            record(s, "operator.role", actor, username, old=old, new=role)
            return OperatorInfo(op.username, op.name, op.role, op.active)

    def language(self, username: str) -> str | None:
        """The desk language the operator chose last (None: never chose; the browser's then applies)."""
        with self.sessions() as s:
            return s.scalar(select(Operator.language).where(Operator.username == username.strip().lower()))

    def set_language(self, username: str, language: str) -> None:
        """Remember the operator's desk language for their next sessions, on any browser."""
        with self.sessions() as s, s.begin():
            s.execute(update(Operator).where(Operator.username == username.strip().lower()).values(language=language[:5]))

    def get(self, username: str) -> OperatorInfo | None:
        """An active operator with their role and groups, or None."""
        from .groups import GroupMember, SupportGroup

        with self.sessions() as s:
            op = s.scalar(select(Operator).where(Operator.username == username, Operator.active.is_(True)))
            if op is None:
                return None
            groups = tuple(s.scalars(
                select(SupportGroup.name).join(GroupMember, GroupMember.group_id == SupportGroup.id)
                .where(GroupMember.username == op.username).order_by(SupportGroup.name)
            ))
            return OperatorInfo(op.username, op.name, op.role or "operator", True, groups)

    def list(self) -> list[OperatorInfo]:
        with self.sessions() as s:
            return [OperatorInfo(o.username, o.name, o.role or "operator", o.active) for o in s.scalars(select(Operator).order_by(Operator.username))]

    def authenticate(self, username: str, password: str, source: str = "-") -> LoginResult:
        """Check a login from `source` (the client address). Always one argon2 verification, known user or not."""
        username = (username or "").strip().lower()[:100]
        now = utcnow()
        key = _token_digest(f"{username}\0{source}")
        with self.sessions() as s, s.begin():
            op = s.scalar(select(Operator).where(Operator.username == username))
            good = self._verify(op.password_hash if op is not None and op.active else self._dummy, password)
            good = good and op is not None and op.active
            throttle = s.get(LoginThrottle, key)
            if throttle is not None and throttle.wait_until is not None and throttle.wait_until > now:
                wait = max(1, int((throttle.wait_until - now).total_seconds() + 0.999))
                record(s, "login.throttled", "-", username, source, wait=wait)
                return LoginResult(None, wait)  # even with the right password: the pair waits its turn
            if not good:
                # Pairs quiet for a day are forgotten, so guessing from many addresses cannot grow the table for good.
                s.execute(delete(LoginThrottle).where(LoginThrottle.last_at < now - timedelta(days=1)))
                if throttle is None:
                    throttle = LoginThrottle(key=key, failures=0)
                    s.add(throttle)
                throttle.failures, throttle.last_at = (throttle.failures or 0) + 1, now
                over = throttle.failures - self.max_failures
                wait = min(self.max_lock_seconds, self.lock_seconds * 2**over) if over >= 0 else 0
                throttle.wait_until = now + timedelta(seconds=wait) if wait else None
                record(s, "login.failed", "-", username, source, failures=throttle.failures)
                return LoginResult(None, wait)
            if throttle is not None:
                s.delete(throttle)
            op.last_login_at = now
            if self.hasher.check_needs_rehash(op.password_hash):
                op.password_hash = self.hasher.hash(password)
            record(s, "login", username, username, source)
            return LoginResult(OperatorInfo(op.username, op.name, op.role or "operator"))

    def _verify(self, hashed: str, password: str) -> bool:
        try:
            return self.hasher.verify(hashed, password or "")
        except (VerificationError, InvalidHashError):
            return False

    # -- API tokens -----------------------------------------------------------------------------------------
    def create_token(self, name: str, *, operator: str | None = None, scopes=("read", "write"), actor: str = "cli") -> str:
        """Make a token for an operator (it acts as them) or for the service account `name`; the only time its
        value is seen is now."""
        name = name.strip()
        if not name or len(name) > 100:
            raise AccountError("a token name is 1 to 100 characters")
        scopes = sorted(set(scopes))
        if not scopes or not set(scopes) <= set(SCOPES):
            raise AccountError(f"scopes are some of {', '.join(SCOPES)}")
        token = "hdt_" + secrets.token_urlsafe(32)
        with self.sessions() as s, s.begin():
            if operator is not None:
                operator = operator.strip().lower()
                if s.scalar(select(Operator.id).where(Operator.username == operator, Operator.active.is_(True))) is None:
                    raise AccountError(f"no active operator {operator!r} to own the token")
            if s.scalar(select(ApiToken.id).where(ApiToken.name == name)) is not None:
                raise AccountError(f"a token named {name!r} already exists")
            s.add(ApiToken(name=name, token_sha256=_token_digest(token), operator=operator, scopes=scopes))
            record(s, "token.created", actor, name, operator=operator, scopes=scopes)
        return token

    def tokens(self) -> list[TokenInfo]:
        with self.sessions() as s:
            return [
                TokenInfo(t.name, t.operator, tuple(t.scopes or ()), t.created_at, t.last_used_at, t.revoked)
                for t in s.scalars(select(ApiToken).order_by(ApiToken.name))
            ]

    def revoke_token(self, name: str, *, actor: str = "cli") -> None:
        with self.sessions() as s, s.begin():
            t = s.scalar(select(ApiToken).where(ApiToken.name == name.strip()))
            if t is None:
                raise AccountError(f"no token named {name!r}")
            t.revoked = True
            record(s, "token.revoked", actor, t.name)

    def identity(self, token: str) -> Identity | None:
        """Who a bearer token acts as, or None for an unknown or revoked token, or one whose owner is inactive."""
        if not token or len(token) > 200:
            return None
        with self.sessions() as s:
            row = s.scalar(select(ApiToken).where(ApiToken.token_sha256 == _token_digest(token), ApiToken.revoked.is_(False)))
            if row is None:
                return None
            scopes = frozenset(row.scopes or ("read", "write"))
            name, token_name = row.operator, row.name
        if name is None:
            return Identity(f"service:{token_name}", token_name, scopes)
        owner = self.get(name)
        return Identity(owner.username, token_name, scopes, owner) if owner else None

    def check_token(self, token: str) -> str | None:
        """The name of the token (its integration), or None."""
        found = self.identity(token)
        return found.token if found else None


class OperatorSession(Base):
    """A login to the desk, kept server-side so that logging out or deactivating the operator ends it at once."""

    __tablename__ = "operator_sessions"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the session id in the cookie
    username: Mapped[str] = mapped_column(String(100), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
