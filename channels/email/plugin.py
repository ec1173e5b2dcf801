"""The email channel's `load(ctx)`: builds the SMTP receiver, the IMAP fetchers and the acknowledgement sender
from the `[email]` section and connects them to the context's `deliver_many` and `reject`. Nothing else."""

from __future__ import annotations

import logging
from typing import Any

from .process import Handled
from .receiver import SmtpReceiver
from .settings import EmailSettings

log = logging.getLogger("channels.email")


class EmailChannel:
    name = "email"

    def __init__(self, services: list[Any]):
        self.services = services

    async def start(self) -> None:
        for s in self.services:
            await s.start()

    async def stop(self) -> None:
        for s in reversed(self.services):
            try:
                await s.stop()
            except Exception:  # noqa: BLE001 - stop the others all the same
                log.exception("email: %s did not stop cleanly", getattr(s, "name", s))


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
