"""The audit trail of accounts: logins, refused and throttled logins, operators and tokens made or changed.

Append-only, like a ticket's events, and read on the desk's audit page by supervisors and administrators.
`record` writes one entry in the caller's transaction, so an account change and its entry commit together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from .models import Base, BigId, utcnow

KINDS = (
    "login", "login.failed", "login.throttled", "logout", "operator.added", "operator.deactivated",
    "operator.reactivated", "operator.role", "group.member", "token.created", "token.revoked",
)


class AuditEntry(Base):
    __tablename__ = "audit"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(30))
    actor: Mapped[str] = mapped_column(String(100))  # who did it: a username, "cli", or "-" for a stranger
    subject: Mapped[str | None] = mapped_column(String(100))  # the account or token concerned
    source: Mapped[str | None] = mapped_column(String(100))  # the client address, when over the network
    data: Mapped[dict] = mapped_column(default=dict)

    __table_args__ = (Index("ix_audit_at", "at"),)


@dataclass(frozen=True)
class AuditView:
    id: int
    at: datetime
    kind: str
    actor: str
    subject: str | None
    source: str | None
    data: dict[str, Any]


def record(s: Session, kind: str, actor: str, subject: str | None = None, source: str | None = None, **data) -> None:
    s.add(AuditEntry(kind=kind, actor=(actor or "-")[:100], subject=(subject or None) and subject[:100],
                     source=(source or None) and source[:100], data=data, at=utcnow()))


def recent(sessions: sessionmaker[Session], limit: int = 200, before: int | None = None) -> list[AuditView]:
    q = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(max(1, min(1000, limit)))
    if before:
        q = q.where(AuditEntry.id < before)
    with sessions() as s:
        return [AuditView(e.id, e.at, e.kind, e.actor, e.subject, e.source, dict(e.data or {})) for e in s.scalars(q)]
