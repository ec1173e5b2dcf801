"""Wiring: builds the core from the configuration, in one place, and hands channels only what they need.

`Core` is the typed dependency record every command and channel is built from. Channels never receive it
whole: `ChannelContext` gives an adapter a place to deliver contacts (`deliver`), the blob store for the
bytes it receives, its own configuration section, and `Shared`, the few things channels offer one another.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from ticketing import extraction, storage
from ticketing.contact import Contact
from ticketing.desk import Desk
from ticketing.intake import DirectoryCache, IntakeResult, IntakeService
from ticketing.inventory import import_assets, import_users
from ticketing.lifecycle import Lifecycle, SlaTarget
from ticketing.models import Asset, User
from ticketing.operators import Accounts

from .config import Config

log = logging.getLogger("gateway")


@dataclass
class Shared:
    """What channels offer one another, connected here and nowhere else.

    `http_mounts`: ASGI apps another channel contributes to the web server, by path prefix (the Twilio
    webhooks of the voice channel live on the web app). `mail`: the email channel's outgoing mail, for
    acknowledgements of contacts that came another way and for operators' replies (None when email is off).
    """

    http_mounts: dict[str, Any] = field(default_factory=dict)
    mail: Any | None = None


@dataclass
class Core:
    config: Config
    engine: Engine
    sessions: sessionmaker[Session]
    blobs: storage.BlobStore
    lifecycle: Lifecycle
    intake: IntakeService
    desk: Desk
    shared: Shared = field(default_factory=Shared)

    def close(self) -> None:
        self.engine.dispose()


@dataclass(frozen=True)
class ChannelContext:
    """What a channel adapter is given: where to send contacts, where to keep bytes, its settings."""

    deliver: Callable[[Contact], IntakeResult]
    deliver_many: Callable[[list[Contact]], list[IntakeResult]]
    reject: Callable[..., int]
    blobs: storage.BlobStore
    settings: Any
    core_config: Config
    record_outbound: Callable[..., int] | None = None  # note a message the desk sent, so replies thread back
    desk: Desk | None = None  # the operators' queries and actions (web channel)
    shared: Shared = field(default_factory=Shared)  # what channels offer one another (see Shared)
    # (question, text, language) -> the core's reading of one spoken answer (the IVR's confirmation)
    interpret: Callable[[str, str, str], Any] | None = None


class SchemaNotReady(RuntimeError):
    pass


def build_core(config: Config, *, upgrade: bool = True) -> Core:
    """Open the database (upgrading its schema when asked), and build the services on it."""
    url = config.storage.database_url()
    data_dir = Path(config.storage.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    engine = storage.make_engine(url, sqlite_synchronous=config.storage.sqlite_synchronous)
    if storage.current_revision(engine) != storage.head_revision():
        if not upgrade:
            engine.dispose()
            raise SchemaNotReady(f"the database at {engine.url!r} is not at the current schema: run 'helpdesk-gateway db upgrade'")
        log.info("upgrading the database schema (%s)", engine.url.render_as_string(hide_password=True))
        storage.upgrade(url)
    sessions = storage.make_sessionmaker(engine)
    sla = {k: SlaTarget(v.respond_minutes, v.resolve_minutes) for k, v in config.ticketing.sla.items()}
    lifecycle = Lifecycle(sla)
    intake = IntakeService(
        sessions,
        directory=DirectoryCache(sessions, ttl=config.directory.reload_seconds),
        lifecycle=lifecycle,
        number_prefix=config.ticketing.number_prefix,
        pipeline=tuple(config.ticketing.pipeline),
    )
    accounts = Accounts(sessions, max_failures=config.web.lockout_failures, lock_seconds=config.web.lockout_seconds)
    desk = Desk(sessions, lifecycle, config.ticketing.number_prefix, config.ticketing.low_confidence, accounts)
    return Core(config, engine, sessions, storage.BlobStore(data_dir / "blobs"), lifecycle, intake, desk)


def seed_directory(core: Core) -> None:
    """Import the sample (or configured) inventory and directory when their tables are empty."""
    cfg = core.config.directory
    if not cfg.seed_when_empty:
        return
    with core.sessions() as s:
        n_assets = s.scalar(select(func.count()).select_from(Asset))
        n_users = s.scalar(select(func.count()).select_from(User))
    for path, count, importer, what in (
        (cfg.assets_csv, n_assets, import_assets, "assets"),
        (cfg.users_csv, n_users, import_users, "users"),
    ):
        if count == 0 and path is not None and Path(path).exists():
            report = importer(core.sessions, Path(path))
            log.info("imported %d %s from %s", report.imported, what, path)
            for line in report.lines():
                log.warning("%s: %s", path, line)
    core.intake.directory.invalidate()


def channel_context(core: Core, settings: Any) -> ChannelContext:
    return ChannelContext(
        deliver=core.intake.submit,
        deliver_many=core.intake.submit_many,
        reject=core.intake.reject,
        blobs=core.blobs,
        settings=settings,
        core_config=core.config,
        record_outbound=core.intake.record_outbound,
        desk=core.desk,
        shared=core.shared,
        interpret=lambda question, text, language: extraction.interpret_answer(question, text, core.intake.directory.get(), language),
    )
