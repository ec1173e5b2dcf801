"""The `helpdesk-gateway` command: run the gateway, manage its database, inventory and directory, look at tickets.

Every command reads the configuration first (`--config`, `HELPDESK_GATEWAY_CONFIG`, or config/gateway.toml)
and stops with one line naming the file, the key and what is expected when it is wrong.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import sys
from pathlib import Path

import click
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from .config import Config, ConfigError, load_config

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _setup_logging(level: str, fmt: str = "text") -> None:
    from .logging_setup import setup

    setup(level, fmt)  # text or JSON lines; aiosmtpd's per-command lines at DEBUG


class State:
    def __init__(self, config_path: str | None):
        self.config_path = config_path
        self._config: Config | None = None
        self._core = None

    @property
    def config(self) -> Config:
        if self._config is None:
            try:
                self._config = load_config(self.config_path)
            except ConfigError as e:
                raise click.ClickException(f"configuration: {e}") from None
            _setup_logging(self._config.logging.level, self._config.logging.format)
        return self._config

    def core(self, upgrade: bool = True):
        if self._core is None:
            from .app import build_core

            self._core = build_core(self.config, upgrade=upgrade)
        return self._core


pass_state = click.make_pass_decorator(State)


@click.group(context_settings=CONTEXT)
@click.option("--config", "config_path", metavar="FILE", help="configuration file [default: config/gateway.toml]")
@click.version_option(package_name="helpdesk-gateway")
@click.pass_context
def main(ctx: click.Context, config_path: str | None) -> None:
    """Intake gateway of an IT service desk: every call, email and web form becomes a pre-filled ticket."""
    ctx.obj = State(config_path)


@main.command()
@pass_state
def serve(state: State) -> None:
    """Run the enabled channels in one process until SIGTERM or Ctrl-C."""
    from .service import serve as run

    core = state.core()
    try:
        asyncio.run(run(core))
    finally:
        core.close()


@main.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@pass_state
def db_upgrade(state: State, revision: str) -> None:
    """Create or upgrade the database schema (Alembic migrations)."""
    from ticketing import storage

    url = state.config.storage.database_url()
    state.config.storage.data_dir.mkdir(parents=True, exist_ok=True)
    storage.upgrade(url, revision)
    click.echo(f"database at revision {revision} ({_safe_url(url)})")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _import_command(kind: str):
    @click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @pass_state
    def command(state: State, file: Path) -> None:
        from ticketing.groups import import_groups
        from ticketing.inventory import count_lines, import_assets, import_users
        from ticketing.organisations import import_organisations

        importer = {"assets": import_assets, "users": import_users, "groups": import_groups, "organisations": import_organisations}[kind]
        core = state.core()
        total = count_lines(file)
        with click.progressbar(length=total, label=f"importing {kind}", file=sys.stderr, show_pos=True) as bar:
            report = importer(core.sessions, file, progress=bar.update)
        for line in report.lines():
            click.echo(f"{file}: {line}", err=True)
        click.echo(f"{report.imported} {kind} imported, {len(report.errors)} rows rejected")
        if report.errors:
            sys.exit(1)

    command.__doc__ = f"Import {kind} from a CSV file; a bad row is reported with its line number."
    return command


@main.group()
def assets() -> None:
    """The asset inventory."""


@main.group()
def users() -> None:
    """The user directory."""


@main.group()
def groups() -> None:
    """Support groups (level II and III, internal or external): name, kind, level, email, webhook_url, organisation."""


@main.group()
def organisations() -> None:
    """Client organisations: name, domains, hours, holidays, timezone, sla."""


assets.command("import")(_import_command("assets"))
users.command("import")(_import_command("users"))
groups.command("import")(_import_command("groups"))
organisations.command("import")(_import_command("organisations"))


@main.group()
def kb() -> None:
    """The knowledge base: articles as Markdown files with front matter (title, assets, kinds, language, status)."""


@kb.command("import")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@pass_state
def kb_import(state: State, directory: Path) -> None:
    """Import every DIRECTORY/*.md (keyed by file name: importing again changes only what was edited)."""
    from ticketing.knowledge import import_dir

    report = import_dir(state.core().sessions, directory)
    for line in report.errors:
        click.echo(f"{directory}/{line}", err=True)
    click.echo(f"{report.created} articles created, {report.updated} updated, {report.unchanged} unchanged, {len(report.errors)} rejected")
    if report.errors:
        sys.exit(1)


@kb.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@pass_state
def kb_export(state: State, directory: Path) -> None:
    """Write every article to DIRECTORY/<slug>.md."""
    from ticketing.knowledge import export_dir

    click.echo(f"{export_dir(state.core().sessions, directory)} articles exported to {directory}")


@main.group()
def tickets() -> None:
    """Look at tickets."""


def _ticket_summary(core, t) -> dict:
    return {
        "number": core.intake.number(t),
        "created_at": t.created_at.isoformat(),
        "channel": t.channel,
        "status": t.status,
        "level": t.level,
        "urgency": t.urgency,
        "priority": t.priority,
        "assignee": t.assignee,
        "reporter": t.value("reporter_name"),
        "asset": t.value("asset"),
        "anomaly": t.value("anomaly"),
    }


def _ticket_detail(core, t) -> dict:
    from sqlalchemy.orm import object_session

    from ticketing.suggestions import stored as stored_suggestions

    low = core.config.ticketing.low_confidence
    data = _ticket_summary(core, t)
    view = core.desk._header(t)  # organisation, group, waiting and SLA as the desk and the API show them
    data.update({
        "organisation": view.organisation, "group": view.group, "waiting": view.waiting,
        "sla": {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in view.sla.items() if k in ("respond_by", "resolve_by", "paused", "breached")},
        "first_response_at": t.first_response_at.isoformat() if t.first_response_at else None,
    })
    data.update(
        {
            "respond_by": t.respond_by.isoformat() if t.respond_by else None,
            "resolve_by": t.resolve_by.isoformat() if t.resolve_by else None,
            "fields": {
                f.name: {"value": f.value, "confidence": f.confidence, "source": f.source, "check": f.confidence < low}
                for f in t.fields
            },
            "messages": [
                {
                    "id": m.id,
                    "direction": m.direction,
                    "channel": m.channel,
                    "external_id": m.external_id,
                    "received_at": m.received_at.isoformat(),
                    "from": m.sender_email or m.sender_phone or m.sender_name,
                    "subject": m.subject,
                    "text": m.text,
                    "attachments": [
                        {"filename": a.filename, "content_type": a.content_type, "size": a.size, "sha256": a.sha256, "note": a.note}
                        for a in m.attachments
                    ],
                }
                for m in t.messages
            ],
            "events": [{"at": e.at.isoformat(), "kind": e.kind, "actor": e.actor, "data": e.data} for e in t.events],
            "suggestions": [x.as_json() for x in stored_suggestions(object_session(t), t.id)],
        }
    )
    return data


@tickets.command("list")
@click.option("--json", "as_json", is_flag=True, help="print a JSON list")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100000))
@click.option("--channel", type=click.Choice(["voice", "email", "web"]))
@click.option("--status", type=click.Choice(["new", "in_progress", "waiting", "resolved", "closed"]))
@pass_state
def tickets_list(state: State, as_json: bool, limit: int, channel: str | None, status: str | None) -> None:
    """List tickets, newest first."""
    from ticketing.models import Ticket

    core = state.core()
    q = select(Ticket).options(selectinload(Ticket.fields)).order_by(Ticket.id.desc()).limit(limit)
    if channel:
        q = q.where(Ticket.channel == channel)
    if status:
        q = q.where(Ticket.status == status)
    with core.sessions() as s:
        rows = [_ticket_summary(core, t) for t in s.scalars(q)]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=1))
        return
    for r in rows:
        anomaly = (r["anomaly"] or "").replace("\n", " ")
        click.echo(
            f"{r['number']}  {r['status']:<11} L{'I' * r['level']:<3} P{r['priority']} {r['channel']:<5}  "
            f"{(r['reporter'] or '?')[:22]:<22}  {(r['asset'] or '?')[:28]:<28}  {anomaly[:60]}"
        )


@tickets.command("show")
@click.argument("number")
@click.option("--json", "as_json", is_flag=True, help="print the ticket as JSON")
@pass_state
def tickets_show(state: State, number: str, as_json: bool) -> None:
    """Show one ticket: its fields with confidence and source, its messages and history."""
    from ticketing.models import Message, Ticket

    core = state.core()
    with core.sessions() as s:
        t = core.intake.ticket_by_number(s, number)
        if t is None:
            raise click.ClickException(f"no ticket {number}")
        t = s.scalars(
            select(Ticket)
            .where(Ticket.id == t.id)
            .options(selectinload(Ticket.fields), selectinload(Ticket.events), selectinload(Ticket.messages).selectinload(Message.attachments))
        ).one()
        data = _ticket_detail(core, t)
        from ticketing.links import survivor

        now = survivor(s, t)  # a merged ticket says where its messages went (issue 13 §4)
        data["merged_into"] = core.desk.number(now) if now is not t else None
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=1))
        return
    click.echo(f"{data['number']}  {data['status']}  level {'I' * data['level']}  urgency {data['urgency']}  P{data['priority']}  via {data['channel']}")
    if data["merged_into"]:
        click.echo(f"  merged into {data['merged_into']}: its status answers for this number")
    for name, f in data["fields"].items():
        flag = "  <- check" if f["check"] else ""
        click.echo(f"  {name:<15} {str(f['value'] or '')[:70]:<70} {f['confidence']:.2f} {f['source'] or '-'}{flag}")
    for m in data["messages"]:
        click.echo(f"-- {m['direction']} {m['channel']} {m['received_at']} {m['from'] or ''}: {m['subject'] or ''}")
        click.echo("   " + (m["text"] or "").strip().replace("\n", "\n   ")[:2000])
    for e in data["events"]:
        click.echo(f"   {e['at']} {e['kind']} by {e['actor']} {json.dumps(e['data'], ensure_ascii=False)}")


@main.command()
@click.option("--channel", required=True, type=click.Choice(["web", "email", "voice"]))
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_state
def submit(state: State, channel: str, file: Path) -> None:
    """Feed one contact from a JSON file (or an .eml file for email), for scripting and demos."""
    from .contact_files import contact_from_file

    core = state.core()
    try:
        contact = contact_from_file(file, channel, core.blobs)
    except ValueError as e:
        raise click.ClickException(f"{file}: {e}") from None
    result = core.intake.submit(contact)
    click.echo(json.dumps({"outcome": str(result.outcome), "ticket": result.ticket_number}))


@main.group()
def prompts() -> None:
    """The IVR's audio prompts (config/prompts/<lang>/*.wav)."""


@prompts.command("build")
@click.option("--language", "languages", multiple=True, help="only this language (repeatable)")
@pass_state
def prompts_build(state: State, languages: tuple[str, ...]) -> None:
    """Synthesise the missing prompts with espeak-ng (8 kHz WAV); recorded files are kept."""
    from channels.voice.prompts import build, load_texts, missing_texts

    directory = state.config.voice.prompts_dir
    texts = load_texts(directory)
    for lang, names in missing_texts(texts).items():
        click.echo(f"{directory}/texts.toml: [{lang}] has no text for {', '.join(names)}", err=True)
    total = sum(len(t) for lang, t in texts.items() if not languages or lang in languages)
    try:
        with click.progressbar(length=total, label="prompts", file=sys.stderr) as bar:
            written = build(directory, list(languages) or None, progress=bar.update)
    except RuntimeError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"{len(written)} prompts synthesised, {total - len(written)} already there")


@main.command()
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
@pass_state
def backup(state: State, dest: Path) -> None:
    """Back up the database and the blob store into DEST (a new directory), while the gateway runs."""
    from .backup import BackupError, backup as run

    cfg = state.config.storage
    try:
        r = run(cfg.data_dir, cfg.database_url(), dest)
    except BackupError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"backup in {dest}: {r.database} database, {r.blobs} blobs ({r.bytes / 1e6:.1f} MB) in {r.seconds:.1f} s")


@main.command()
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path))
@pass_state
def restore(state: State, src: Path) -> None:
    """Restore a backup from SRC into the configured (empty) data dir and database; every file is checked."""
    from .backup import BackupError, restore as run

    cfg = state.config.storage
    try:
        r = run(src, cfg.data_dir, cfg.database_url())
    except BackupError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"restored {r.database} database and {r.blobs} blobs into {cfg.data_dir}; next: helpdesk-gateway db upgrade")


@main.group()
def outbox() -> None:
    """Outgoing mail waiting in the durable outbox (acknowledgements, replies, notifications)."""


@outbox.command("list")
@click.option("--all", "everything", is_flag=True, help="also what was sent")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10000))
@pass_state
def outbox_list(state: State, everything: bool, limit: int) -> None:
    """What waits or was refused (newest first), and why."""
    core = state.core()
    stats = core.outbox.stats()
    click.echo(f"waiting {stats.waiting} (oldest {stats.oldest_age_seconds:.0f} s), refused {stats.failed}; "
               f"relay: {core.config.email.ack.relay_host or 'none configured'}")
    for e in core.outbox.entries(waiting_only=not everything, limit=limit):
        click.echo(f"{e.id:>7} {e.status:<8} {e.kind:<13} {e.to:<40} tries {e.attempts:<3} {(e.last_error or '')[:80]}")


@outbox.command("retry")
@pass_state
def outbox_retry(state: State) -> None:
    """Make every waiting mail due now (after fixing the relay), instead of at its next backoff."""
    click.echo(f"{state.core().outbox.retry_now()} mail(s) due now")


@main.group()
def secret() -> None:
    """The web secret (CSRF tokens, operator sessions)."""


@secret.command("rotate")
@pass_state
def secret_rotate(state: State) -> None:
    """Make a new web secret; the previous one stays valid for web.secret_grace_hours (restart to apply)."""
    from channels.web.security import SECRET_FILE, rotate_secret

    web = state.config.web
    path = web.secret_file or web.secret_key_file or Path(state.config.storage.data_dir) / SECRET_FILE
    rotate_secret(path)
    click.echo(f"{path}: new secret; the previous one is accepted for {web.secret_grace_hours:g} h after restarts")


from channels.web.cli import operators as _operators  # noqa: E402

main.add_command(_operators)

from channels.voice.cli import register as _register_voice  # noqa: E402

_register_voice(main)


if __name__ == "__main__":  # pragma: no cover
    main()
