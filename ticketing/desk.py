"""The desk: what operators and integrations read about tickets, and the actions they apply to them.

Channel adapters (the web desk, the REST API) call this service and never open a database session: reads
come back as plain frozen records (`ticketing.views`), and every change goes through
`ticketing.lifecycle.Lifecycle`, whose `LifecycleError` carries a message an operator can read. A number
that names no ticket raises `TicketNotFound`.

`Desk` is one object made of small parts, one job each:
- `ticketing.queries`: the queue, a ticket, the inventory and directory, where a reply goes;
- `ticketing.actions`: the lifecycle actions with roles, routing to support groups and the notices they cause;
- `ticketing.lookup`: the public and phone status lookups;
- `ticketing.leases`: the event history and the webhook cursors under a lease;
- `ticketing.logins`: server-side operator sessions; `ticketing.operators.Accounts`: accounts and tokens.
A channel is given the part it needs through a port (`ticketing.ports`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from .actions import Actions, NotAllowed, UnknownAssignee
from .cards import Cards
from .leases import WebhookLeases
from .lifecycle import LEVEL_NAMES, Lifecycle, LifecycleError
from .logins import OperatorLogins
from .lookup import StatusLookup
from .models import WebhookCursor  # noqa: F401  (re-exported: tests read cursors through here)
from .operators import Accounts
from .queries import Queries
from .views import (  # noqa: F401  (re-exported: the records channels receive)
    PUBLIC_EVENTS, AssetView, AttachmentView, EventRecord, EventView, FieldView, MessageView, Page, PublicStatus,
    QueueFilters, QueueRow, ReplyTarget, TicketHeader, TicketNotFound, TicketView, UserView,
)

__all__ = ["Desk", "LifecycleError", "TicketNotFound", "QueueFilters", "Page", "NotAllowed", "UnknownAssignee"]


@dataclass
class Desk(Queries, Cards, Actions, StatusLookup, WebhookLeases, OperatorLogins):
    sessions: sessionmaker[Session]
    lifecycle: Lifecycle
    prefix: str = "HD"
    low_confidence: float = 0.6
    accounts: Accounts | None = field(default=None)
    default_groups: dict[int, str] = field(default_factory=dict)  # level -> group name when the asset names none

    def __post_init__(self) -> None:
        if self.accounts is None:
            self.accounts = Accounts(self.sessions)


def level_name(level: int) -> str:
    return LEVEL_NAMES.get(level, str(level))
