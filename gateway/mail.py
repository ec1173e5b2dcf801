"""Wiring of outgoing mail: the core's durable outbox, and the acknowledgement policy hooked into the intake.

The acknowledgement is decided and queued inside the intake transaction (`IntakeService.on_created`), with the
email channel's words (`channels.email.ack.AckTexts`); the email channel's sender drains the outbox. With the
email channel or its acknowledgements off, nothing is queued (no channel would send it).
"""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from ticketing.acknowledge import AckPolicy
from ticketing.intake import IntakeService
from ticketing.outbox import Outbox

from .config import Config


def build_outbox(config: Config, sessions: sessionmaker[Session], intake: IntakeService, organisations=None) -> Outbox:
    ack = config.email.ack
    outbox = Outbox(sessions, retry_seconds=ack.retry_seconds, max_retry_seconds=ack.max_retry_seconds,
                    lease_seconds=max(120.0, ack.timeout_seconds * 4), give_up_hours=ack.give_up_hours)
    if config.email.enabled and ack.enabled:
        from channels.email.ack import AckTexts

        policy = AckPolicy(
            compose=AckTexts(ack),
            directory=intake.directory.get,
            sender=ack.sender,
            own_addresses=tuple(config.email.addresses),
            per_address_per_hour=ack.per_address_per_hour,
            global_per_hour=ack.global_per_hour,
            known_domains=tuple(ack.known_domains),
        )
        if organisations is not None:  # an organisation's email domains count as known (issue 12)
            policy.known.append(lambda session, address: organisations.by_domain(address) is not None)
        intake.on_created.append(policy.on_created)
        outbox.policy = policy  # type: ignore[attr-defined]  (for organisations to add a `known` hook)
    return outbox
