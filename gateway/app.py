"""Wiring: builds the core from the configuration, in one place, and hands channels only what they need.

`Core` is the typed dependency record every command and channel is built from. Channels never receive it
whole: `ChannelContext` gives an adapter typed ports (`ticketing.ports`): the intake (where contacts go), the
desk queries the web needs, the phone-status lookup the IVR needs; the blob store for the bytes it receives;
its own configuration section and the few core values a channel needs (the number prefix, the data
directory), and `Shared`, what channels offer one another, filled here from what each loaded channel offers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from ticketing import storage
from ticketing.answers import AnswerReader
from ticketing.desk import Desk
from ticketing.intake import DirectoryCache, IntakeService
from ticketing.inventory import import_assets, import_users
from ticketing.lifecycle import Lifecycle, SlaTarget
from ticketing.models import Asset, User
from ticketing.operators import Accounts
from ticketing.organisations import Organisations
from ticketing.outbox import Outbox
from ticketing.ports import DeskPort, IntakePort, OutboundMail, OutboxPort, PhoneStatus

from .config import Config

log = logging.getLogger("gateway")

ASGIApp = Callable[..., Any]  # an ASGI application (scope, receive, send)


@dataclass
class Shared:
    """What channels offer one another, filled by `offer()` here (after each channel's load) and nowhere else.

    `http_mounts`: ASGI apps another channel contributes to the web server, by path prefix (the Twilio
    webhooks of the voice channel live on the web app). `mail`: the desk's outgoing mail (the email channel's
    sender), for acknowledgements of contacts that came another way and for operators' replies (None when
    email is off).
    """

    http_mounts: dict[str, ASGIApp] = field(default_factory=dict)
    mail: OutboundMail | None = None

    def offer(self, service: Any) -> None:
        """Take what a loaded channel service offers the others: its `http_mounts` and its `mail`, if any."""
        for prefix, app in (getattr(service, "http_mounts", None) or {}).items():
            if prefix in self.http_mounts:
                raise ValueError(f"two channels offer the web path {prefix}")
            self.http_mounts[prefix] = app
        mail = getattr(service, "mail", None)
        if mail is not None:
            self.mail = mail


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
    outbox: Outbox | None = None  # outgoing mail, durable (gateway/mail.py)
    metrics: Any = None  # gateway/metrics.py: the Prometheus registry of this process
    health: Any = None  # gateway/health.py: /readyz, set by serve

    def close(self) -> None:
        self.intake.close()
        self.engine.dispose()


@dataclass(frozen=True)
class ChannelContext:
    """What a channel adapter is given: typed ports, where to keep bytes, its settings, a few core values."""

    intake: IntakePort  # deliver / deliver_many / deliver_future / reject / record_outbound
    blobs: storage.BlobStore
    settings: Any  # the channel's own section of the configuration
    number_prefix: str  # ticket numbers: "HD" in HD-2026-000123
    data_dir: Path  # where a channel keeps its own files (call spool, Kamailio run directory)
    desk: DeskPort | None = None  # the operators' queries and actions (web channel)
    phone: PhoneStatus | None = None  # caller names, ticket status by phone (voice channel)
    shared: Shared = field(default_factory=Shared)  # what channels offer one another (see Shared)
    # (question, text, language) -> the core's reading of one spoken answer, .phrases(question) -> what it may name
    interpret: AnswerReader | None = None  # (the IVR's confirmation)
    # The whole configuration as JSON with this channel's section replaced, for a worker process the channel
    # starts (the SIP workers) to build its own core from.
    worker_config: Callable[[Any], str] | None = None
    outbox: OutboxPort | None = None  # the durable outbox of outgoing mail (the email channel drains it)
    search: Any = None  # ticketing.search.Search: tickets by words, reporter, asset, organisation, group, dates (web)
    rejections: Any = None  # ticketing.rejections.Rejections: the rejected-contact review (web)
    incidents: Any = None  # ticketing.ports.IncidentsPort: linked incidents, merges (web)
    readmit: Any = None  # ticketing.ports.ReadmitPort: a rejected contact into a ticket through the intake (web)
    articles: Any = None  # ticketing.articles.Articles: the knowledge base as the desk writes it (web)


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
    lifecycle.organisations = Organisations(sessions, lifecycle.default_contract, ttl=config.directory.reload_seconds)
    blobs = storage.BlobStore(data_dir / "blobs")
    intake = IntakeService(
        sessions,
        flush_blobs=blobs.flush,
        directory=DirectoryCache(sessions, ttl=config.directory.reload_seconds),
        lifecycle=lifecycle,
        number_prefix=config.ticketing.number_prefix,
        pipeline=tuple(config.ticketing.pipeline),
    )
    accounts = Accounts(sessions, max_failures=config.web.lockout_failures, lock_seconds=config.web.lockout_seconds)
    desk = Desk(sessions, lifecycle, config.ticketing.number_prefix, config.ticketing.low_confidence, accounts)
    desk.default_groups = {level: name for level, name in ((2, config.ticketing.default_group_ii), (3, config.ticketing.default_group_iii)) if name}
    desk.directory = intake.directory.get  # an asset typed on the desk is matched on the intake's snapshot
    from .mail import build_outbox

    outbox = build_outbox(config, sessions, intake, lifecycle.organisations)
    from .metrics import Metrics

    return Core(config, engine, sessions, blobs, lifecycle, intake, desk, outbox=outbox,
                metrics=Metrics())


def seed_directory(core: Core) -> None:
    """Import the sample (or configured) inventory and directory when their tables are empty."""
    cfg = core.config.directory
    if not cfg.seed_when_empty:
        return
    from ticketing.groups import SupportGroup, import_groups
    from ticketing.organisations import Organisation, import_organisations

    with core.sessions() as s:
        n_orgs = s.scalar(select(func.count()).select_from(Organisation))
        n_groups = s.scalar(select(func.count()).select_from(SupportGroup))
        n_assets = s.scalar(select(func.count()).select_from(Asset))
        n_users = s.scalar(select(func.count()).select_from(User))
    for path, count, importer, what in (
        (cfg.organisations_csv, n_orgs, import_organisations, "organisations"),
        (cfg.groups_csv, n_groups, import_groups, "support groups"),
        (cfg.assets_csv, n_assets, import_assets, "assets"),
        (cfg.users_csv, n_users, import_users, "users"),
    ):
        if count == 0 and path is not None and Path(path).exists():
            report = importer(core.sessions, Path(path))
            log.info("imported %d %s from %s", report.imported, what, path)
            for line in report.lines():
                log.warning("%s: %s", path, line)
    core.intake.directory.invalidate()
    if core.lifecycle.organisations is not None:
        core.lifecycle.organisations.invalidate()


def channel_context(core: Core, settings: Any) -> ChannelContext:
    section = next((n for n in ("email", "web", "voice") if getattr(core.config, n) is settings), None)

    def worker_config(own: Any) -> str:
        update = {section: own} if section else {}
        return core.config.model_copy(update=update).model_dump_json()

    return ChannelContext(
        intake=core.metrics.wrap_intake(core.intake) if core.metrics is not None else core.intake,
        blobs=core.blobs,
        settings=settings,
        number_prefix=core.config.ticketing.number_prefix,
        data_dir=Path(core.config.storage.data_dir),
        desk=core.desk,
        phone=core.desk,
        shared=core.shared,
        interpret=AnswerReader(core.intake.directory.get),
        worker_config=worker_config,
        outbox=core.outbox,
        search=_search(core),
        rejections=_rejections(core),
        incidents=_incidents(core),
        readmit=_readmit(core),
        articles=_articles(core),
    )


def _search(core: Core):
    from ticketing.search import Search

    return Search(core.sessions, core.config.ticketing.number_prefix)


def _articles(core: Core):
    from ticketing.articles import Articles

    return Articles(core.sessions, core.config.ticketing.number_prefix)


def _rejections(core: Core):
    from ticketing.rejections import Rejections

    return Rejections(core.sessions, core.config.ticketing.number_prefix)


def _incidents(core: Core):
    from ticketing.incidents import Incidents

    return Incidents(core.desk, core.config.ticketing.incident_window_minutes)


def _readmit(core: Core):
    """Rejections readmitted through the normal intake; the email channel reads its stored mail again."""
    from channels.email.auth import SenderCheck
    from channels.email.readmit import MailReader
    from ticketing.readmit import Readmissions

    intake = core.metrics.wrap_intake(core.intake) if core.metrics is not None else core.intake
    email = core.config.email
    reader = MailReader(core.blobs, email.max_attachment_bytes, SenderCheck.from_settings(email.ack))
    return Readmissions(core.sessions, intake, core.blobs, {"email": reader}, core.config.ticketing.number_prefix)
