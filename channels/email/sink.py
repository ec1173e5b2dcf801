"""A collecting SMTP sink (aiosmtpd on loopback): a stand-in relay for tests and for trying acknowledgements
locally, shipped with the code so that other modules' tests can use it too.

    with MailSink() as sink:
        ... send to 127.0.0.1:sink.port ...
        sink.wait(1)      # the messages received, as email.message.Message objects
"""

from __future__ import annotations

import email
import email.policy
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage

from aiosmtpd.controller import Controller


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.raw, policy=email.policy.default)  # type: ignore[return-value]


@dataclass
class _Collector:
    received: list[Received] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)
    answer: str = "250 2.0.0 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        if not self.answer.startswith("250"):
            return self.answer
        with self.cond:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content)))
            self.cond.notify_all()
        return self.answer


class MailSink:
    """An SMTP server on 127.0.0.1 that keeps every message it is given; `answer` makes it refuse instead."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self._collector = _Collector()
        self._controller = Controller(self._collector, hostname=host, port=port or _free_port(host))
        self.host = host
        self.port = self._controller.port

    @property
    def received(self) -> list[Received]:
        return list(self._collector.received)

    def refuse(self, answer: str = "451 4.3.0 sink told to refuse") -> None:
        self._collector.answer = answer

    def wait(self, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self._collector.cond:
            while len(self._collector.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"the sink got {len(self._collector.received)} message(s), expected {count}")
                self._collector.cond.wait(left)
            return list(self._collector.received)

    def start(self) -> MailSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> MailSink:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]
