"""The email channel's `load(ctx)`: builds the SMTP receiver, the IMAP fetchers and the acknowledgement sender
from the `[email]` section and connects them to the context's `deliver_many` and `reject`. Nothing else."""

from __future__ import annotations

import logging
from typing import Any

from channels.services import start_all, stop_all

from .process import Handled
from .receiver import SmtpReceiver
from .settings import EmailSettings

log = logging.getLogger("channels.email")


class EmailChannel:
    name = "email"

    def __init__(self, services: list[Any]):
        self.services = services

    async def start(self) -> None:
        await start_all(self.services)

    async def stop(self) -> None:
        await stop_all(self.services, log, "email")


def load(ctx) -> EmailChannel:
    settings: EmailSettings = ctx.settings
    prefix = ctx.core_config.ticketing.number_prefix
    acks = None
    # IntakeService.record_outbound, when the context offers it: the acknowledgement's Message-ID is then known
    # to threading (without it a reply still threads by the subject tag).
    record_outbound = getattr(ctx, "record_outbound", None)
    if settings.ack.enabled:
        from .ack import AckSender

        acks = AckSender(settings.ack, record_outbound=record_outbound, own_addresses=tuple(settings.addresses))
        shared = getattr(ctx, "shared", None)
        if shared is not None:  # other channels acknowledge and reply by email through it
            shared.mail = acks

    def on_committed(handled: list[Handled]) -> None:
        if acks is not None:
            acks.acknowledge(handled)

    services: list[Any] = []
    if acks is not None:
        services.append(acks)
    if settings.smtp.enabled:
        services.append(
            SmtpReceiver(
                settings,
                deliver_many=ctx.deliver_many,
                reject=ctx.reject,
                blobs_root=ctx.blobs.root,
                prefix=prefix,
                on_committed=on_committed,
            )
        )
    for mailbox in settings.imap:
        from .imap import ImapFetcher

        services.append(
            ImapFetcher(
                mailbox,
                deliver_many=ctx.deliver_many,
                reject=ctx.reject,
                blobs=ctx.blobs,
                max_attachment=settings.max_attachment_bytes,
                prefix=prefix,
                on_committed=on_committed,
            )
        )
    return EmailChannel(services)
