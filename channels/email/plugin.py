"""The email channel's `load(ctx)`: builds the SMTP receiver, the IMAP fetchers and the acknowledgement sender
from the `[email]` section and connects them to the context's `deliver_many` and `reject`. Nothing else."""

from __future__ import annotations

import logging
from typing import Any

from channels.services import start_all, stop_all

from .auth import SenderCheck
from .receiver import SmtpReceiver, parse_pool
from .settings import EmailSettings

log = logging.getLogger("channels.email")


class EmailChannel:
    name = "email"

    def __init__(self, services: list[Any], mail: Any = None, pool: Any = None):
        self.services = services
        self.mail = mail  # the outgoing mail, offered to the other channels (gateway/app.py: Shared.offer)
        self.pool = pool  # the parse workers the receiver and the fetchers share

    async def start(self) -> None:
        await start_all(self.services)

    async def stop(self) -> None:
        await stop_all(self.services, log, "email")
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def load(ctx) -> EmailChannel:
    settings: EmailSettings = ctx.settings
    prefix = ctx.number_prefix
    acks = None
    if settings.ack.enabled and getattr(ctx, "outbox", None) is not None:
        from .ack import OutboxSender

        # Acknowledgements are queued by the core in the intake transaction; this sender drains the outbox.
        acks = OutboxSender(settings.ack, ctx.outbox)
    on_committed = None

    services: list[Any] = []
    if acks is not None:
        services.append(acks)
    # One set of parse workers for the SMTP receiver and every IMAP fetcher (processes: every core parses).
    pool = parse_pool(settings.smtp.parse_workers) if settings.smtp.enabled or settings.imap else None
    if settings.smtp.enabled:
        services.append(
            SmtpReceiver(
                settings,
                intake=ctx.intake,
                blobs_root=ctx.blobs.root,
                prefix=prefix,
                on_committed=on_committed,
                pool=pool,
            )
        )
    for mailbox in settings.imap:
        from .imap import ImapFetcher

        services.append(
            ImapFetcher(
                mailbox,
                intake=ctx.intake,
                blobs=ctx.blobs,
                max_attachment=settings.max_attachment_bytes,
                prefix=prefix,
                on_committed=on_committed,
                sender_check=SenderCheck.from_settings(settings.ack),
                parse_pool=pool if settings.smtp.parse_workers > 0 else None,
            )
        )
    return EmailChannel(services, mail=acks, pool=pool)
