"""The desk's actions on tickets: who may do what (roles), routing to support groups, and what is told to whom.

Every action opens one write transaction, loads the ticket, checks the actor's right to act on it, applies
the change through `Lifecycle` (which refuses what the rules refuse, writing nothing), and writes in the same
transaction what it causes: the group's notification, the user's resolution report or question (outbox).

Roles (`ticketing.operators.ROLES`): an `operator` (level I) acts on level I tickets; a `specialist` on the
tickets of their groups; a `supervisor` and an `admin` on every ticket, and they alone assign a ticket to
someone else. An actor who is no operator (a service account's API call, the system) is checked by its
token's scopes at the API, not here. Assigning names an existing, active operator: anyone else is refused.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .extraction import FIELD_NAMES
from .groups import SupportGroup, groups_of, route
from .lifecycle import URGENCIES, LifecycleError
from .links import notify_merged
from .models import Ticket
from .notices import notify_group, notify_user
from .operators import Operator, OperatorInfo


class NotAllowed(PermissionError):
    """The actor's role does not let them do this to this ticket; the message says why."""


class UnknownAssignee(ValueError):
    """Assigning to someone who is not an existing, active operator."""


def may_act(who: OperatorInfo | None, ticket: Ticket, group_ids: list[int]) -> str | None:
    """None when `who` may act on `ticket`, else why not."""
    if who is None or who.role in ("supervisor", "admin"):
        return None
    if who.role == "specialist":
        return None if ticket.group_id is not None and ticket.group_id in group_ids else "a specialist acts only on the tickets of their groups"
    return None if ticket.level == 1 else "a level I operator acts only on level I tickets"


class Actions:
    """Mixin of `ticketing.desk.Desk`: needs `sessions`, `lifecycle`, `number()`, `_load()`, `_view()`,
    `default_groups` and `organisations_name()`."""

    # -- who --------------------------------------------------------------------------------------------------
    def _who(self, s: Session, actor: str) -> tuple[OperatorInfo | None, list[int]]:
        """The operator behind an actor name (None for a service account or the system) and their group ids."""
        op = s.scalar(select(Operator).where(Operator.username == actor))
        if op is None:
            return None, []
        if not op.active:
            raise NotAllowed(f"operator {actor!r} is deactivated")
        return OperatorInfo(op.username, op.name, op.role or "operator"), groups_of(s, op.username)

    def refusal(self, number: str, actor: str) -> str | None:
        """Why `actor` may not act on the ticket now (their role), or None: what the desk page shows them."""
        with self.sessions() as s:
            t = self._load(s, number)
            try:
                who, group_ids = self._who(s, actor)
            except NotAllowed as e:
                return str(e)
            return may_act(who, t, group_ids)

    def _act(self, number: str, actor: str, change):
        with self.sessions() as s:
            with s.begin():
                t = self._load(s, number, full=True)
                who, group_ids = self._who(s, actor)
                why = may_act(who, t, group_ids)
                if why:
                    raise NotAllowed(why)
                change(s, t, who)  # raises LifecycleError before anything is written
            return self._view(t)

    # -- actions ----------------------------------------------------------------------------------------------
    def take(self, number: str, operator: str, assignee: str | None = None):
        """`operator` takes the ticket; an integration (a service account) names the operator it takes it for."""
        def take(s: Session, t: Ticket, who) -> None:
            person = (assignee or "").strip().lower() or None
            if person is not None and person != operator:
                if s.scalar(select(Operator.id).where(Operator.username == person, Operator.active.is_(True))) is None:
                    raise UnknownAssignee(f"{person!r} is not an active operator: a ticket is assigned only to one")
                if who is not None and who.role not in ("supervisor", "admin"):
                    raise NotAllowed("only a supervisor assigns a ticket to someone else")
            elif who is None and operator.startswith("service:"):
                raise UnknownAssignee("an integration takes a ticket for someone: name an active operator")
            self.lifecycle.take(t, operator, person)

        return self._act(number, operator, take)

    def escalate(self, number: str, operator: str, reason: str):
        def escalate(s: Session, t: Ticket, who) -> None:
            group = route(s, t.asset_id, t.level + 1, self.default_groups) if t.level < 3 else None
            event = self.lifecycle.escalate(t, operator, reason, (group.id, group.name) if group else None)
            if group is not None and group.email:
                event.data = {**event.data, "notified": group.email}  # the history says who was told
                s.flush()
                notify_group(s, t, self.number(t), group, reason=reason.strip(), organisation=self.organisation_name(t.organisation_id))

        return self._act(number, operator, escalate)

    def resolve(self, number: str, operator: str, report: str):
        def resolve(s: Session, t: Ticket, who) -> None:
            self.lifecycle.resolve(t, operator, report)
            s.flush()
            notify_user(s, t, self.number(t), "resolved", report)
            notify_merged(s, t, self.number, report)  # the reporters of the tickets merged into it (issue 13 §4)

        return self._act(number, operator, resolve)

    def wait(self, number: str, operator: str, question: str, waiting_for: str = "user"):
        def wait(s: Session, t: Ticket, who) -> None:
            self.lifecycle.wait(t, operator, question, waiting_for)
            if waiting_for == "user":
                s.flush()
                notify_user(s, t, self.number(t), "waiting", question)

        return self._act(number, operator, wait)

    def resume(self, number: str, operator: str, reason: str = ""):
        return self._act(number, operator, lambda s, t, who: self.lifecycle.resume(t, operator, reason))

    def close(self, number: str, operator: str):
        return self._act(number, operator, lambda s, t, who: self.lifecycle.close(t, operator))

    def reopen(self, number: str, operator: str, reason: str):
        def reopen(s: Session, t: Ticket, who) -> None:
            if not (reason or "").strip():
                raise LifecycleError("reopening a ticket needs a reason")
            self.lifecycle.reopen(t, operator, reason.strip())

        return self._act(number, operator, reopen)

    def note(self, number: str, operator: str, text: str):
        return self._act(number, operator, lambda s, t, who: self.lifecycle.note(t, operator, text or ""))

    def set_field(self, number: str, operator: str, name: str, value: str):
        def edit(s: Session, t: Ticket, who) -> None:
            if name not in FIELD_NAMES:
                raise LifecycleError(f"unknown field {name!r} (fields: {', '.join(FIELD_NAMES)})")
            v = (value or "").strip() or None
            if name == "urgency" and v not in URGENCIES:
                raise LifecycleError(f"urgency must be one of {', '.join(URGENCIES)}")
            if v is not None and len(v) > 4000:
                raise LifecycleError("a field holds at most 4000 characters")
            if name == "asset":
                # The asset typed is looked up as a contact's would be, so the ticket's asset (its card, support
                # groups, criticality, the other open tickets on it) follows the edit; nothing found: no asset.
                hit = self._asset_named(s, v) if v else None
                t.asset_id = hit.asset.id if hit else None
                if hit:
                    v = f"{hit.asset.tag} {hit.asset.name}"
            self.lifecycle.set_field(t, name, v, operator)

        return self._act(number, operator, edit)

    def _asset_named(self, s: Session, text: str):
        """The inventory's match for what an operator typed (tag, hostname, alias, "la stampante del secondo
        piano"), through the snapshot the intake uses when the desk was given it (`directory`), else read here;
        None under the desk's low confidence: a guess is not made for an operator."""
        snapshot = getattr(self, "directory", None)
        if callable(snapshot):
            directory = snapshot()
        else:
            from .directory import load_directory

            directory = load_directory(s)
        hit = directory.match_asset(text)
        return hit if hit is not None and hit.confidence >= self.low_confidence else None

    def assign(self, number: str, actor: str, assignee: str | None = None, group: str | None = None):
        """Give the ticket to `assignee` (an existing, active operator) and/or the group named `group`."""
        def assign(s: Session, t: Ticket, who) -> None:
            person = (assignee or "").strip().lower() or None
            if person is not None:
                if s.scalar(select(Operator.id).where(Operator.username == person, Operator.active.is_(True))) is None:
                    raise UnknownAssignee(f"{person!r} is not an active operator: a ticket is assigned only to one")
                if who is not None and who.role not in ("supervisor", "admin") and person != who.username:
                    raise NotAllowed("only a supervisor assigns a ticket to someone else")
            found = None
            if group:
                found = s.scalar(select(SupportGroup).where(func.lower(SupportGroup.name) == group.strip().lower()))
                if found is None:
                    raise UnknownAssignee(f"there is no support group {group!r}")
                if who is not None and who.role not in ("supervisor", "admin"):
                    raise NotAllowed("only a supervisor moves a ticket to another group")
            if person is None and found is None:
                raise LifecycleError("assign to a person, a group, or both")
            self.lifecycle.assign(t, actor, person if person is not None else t.assignee, (found.id, found.name) if found else None)
            if found is not None and found.kind == "external":
                s.flush()
                notify_group(s, t, self.number(t), found, reason=f"assigned by {actor}", organisation=self.organisation_name(t.organisation_id))

        return self._act(number, actor, assign)
