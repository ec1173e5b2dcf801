"""Server-side sessions of logged-in operators: logging out or deactivating an operator ends them at once."""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import delete, select

from .models import utcnow
from .operators import Operator, OperatorSession
from .views import digest as _digest


class OperatorLogins:
    """Mixin of `ticketing.desk.Desk`: needs `sessions`."""

    # -- operator sessions -----------------------------------------------------------------------------------
    def open_session(self, username: str, seconds: float) -> str:
        """A new server-side session of a logged-in operator; returns the id the session cookie carries."""
        sid, now = secrets.token_urlsafe(24), utcnow()
        with self.sessions() as s, s.begin():
            s.execute(delete(OperatorSession).where(OperatorSession.expires_at < now))  # forget expired ones as we go
            s.add(OperatorSession(key=_digest(sid), username=username, created_at=now, expires_at=now + timedelta(seconds=seconds)))
        return sid

    def session_operator(self, sid: str | None) -> str | None:
        """The username of an open, unexpired session of an operator who is still active; else None."""
        if not sid or len(sid) > 100:
            return None
        with self.sessions() as s:
            return s.scalar(
                select(OperatorSession.username)
                .join(Operator, Operator.username == OperatorSession.username)
                .where(OperatorSession.key == _digest(sid), OperatorSession.expires_at > utcnow(), Operator.active.is_(True))
            )

    def close_session(self, sid: str | None) -> None:
        if sid:
            with self.sessions() as s, s.begin():
                s.execute(delete(OperatorSession).where(OperatorSession.key == _digest(sid)))

