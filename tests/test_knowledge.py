"""The knowledge base and suggestions at intake (issue 13 §1, §2), on SQLite and PostgreSQL.

Articles go in and out as Markdown files with front matter (`kb import` / `kb export`), idempotently and with a
version per edit; a new ticket, and a field an operator or a transcription changes, get the 3 nearest published
articles and the 3 nearest resolved tickets from the suggestion pass after the commit; `tickets show --json`
and the desk's ticket view carry them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from ticketing.contact import Channel, Contact, Sender
from ticketing.knowledge import Article, ArticleVersion, export_dir, import_dir, parse_markdown, KnowledgeError
from ticketing.models import Ticket
from ticketing.suggestions import run_once, stored

SAMPLE = Path(__file__).resolve().parent.parent / "config" / "kb"


def mail(core, n: str, text: str, language: str = "it"):
    return core.intake.submit(Contact(Channel.EMAIL, f"<kb-{n}@example.org>", sender=Sender("Mario Rossi", "mario.rossi@example.org"),
                                      text=text, language=language))


def resolve(core, ticket_id: int, report: str, asset: str | None = None) -> None:
    with core.sessions() as s, s.begin():
        t = s.get(Ticket, ticket_id)
        if asset:
            core.lifecycle.set_field(t, "asset", asset, "op")
        core.lifecycle.resolve(t, "op", report)


def test_import_is_idempotent_versions_each_edit_and_exports_back(core, tmp_path):
    kb = tmp_path / "kb"
    shutil.copytree(SAMPLE, kb)
    first = import_dir(core.sessions, kb)
    assert (first.created, first.updated, first.errors) == (len(list(SAMPLE.glob("*.md"))), 0, ())
    again = import_dir(core.sessions, kb)
    assert (again.created, again.updated, again.unchanged) == (0, 0, first.created)

    page = kb / "prn-inceppamento.md"
    page.write_text(page.read_text(encoding="utf-8").replace("Usare carta non umida.", "Usare carta non umida e sfogliarla prima."), encoding="utf-8")
    (kb / "bad.md").write_text("---\ntitle: x\nlanguage: de\n---\nsolo testo\n", encoding="utf-8")
    third = import_dir(core.sessions, kb)
    assert third.updated == 1 and len(third.errors) == 1 and "bad.md" in third.errors[0] and "language" in third.errors[0]
    with core.sessions() as s:
        a = s.scalar(select(Article).where(Article.slug == "prn-inceppamento"))
        assert a.version == 2 and "sfogliarla" in a.solution and a.asset_tags == ["PRN-0210", "PRN-0305"]
        assert [v.version for v in s.scalars(select(ArticleVersion).where(ArticleVersion.article_id == a.id))] == [1, 2]

    out = tmp_path / "out"
    assert export_dir(core.sessions, out) == first.created
    back = parse_markdown("prn-inceppamento", (out / "prn-inceppamento.md").read_text(encoding="utf-8"))
    assert back.title == a.title and back.solution == a.solution and back.asset_tags == ("PRN-0210", "PRN-0305") and back.status == "published"


def test_unknown_asset_and_missing_front_matter_are_named():
    with pytest.raises(KnowledgeError, match="front matter"):
        parse_markdown("x", "no front matter here")
    data = parse_markdown("x", "---\ntitle: T\nassets: NOPE-1, PRN-0210\nlanguage: fr\nstatus: draft\n---\nLe texte.")
    assert data.asset_tags == ("NOPE-1", "PRN-0210") and data.solution == "Le texte." and data.language == "fr"


def test_suggestions_after_intake_follow_field_changes_and_show_in_the_ticket(core, tmp_path):
    import_dir(core.sessions, SAMPLE)
    old = mail(core, "old", "Buongiorno, la stampante del secondo piano ha la carta inceppata e non stampa.")
    resolve(core, old.ticket_id, "Tolto il foglio inceppato dal cassetto 2 e riavviata la stampante.", asset="PRN-0210")
    run_once(core.sessions, "HD")

    new = mail(core, "new", "Si è inceppato un foglio nella stampante, lampeggia la luce arancione")
    with core.sessions() as s:
        assert stored(s, new.ticket_id) == ()  # intake did not wait for them
    assert run_once(core.sessions, "HD") >= 1
    with core.sessions() as s:
        found = stored(s, new.ticket_id)
    kinds = [x.kind for x in found]
    assert "article" in kinds and "ticket" in kinds and len(found) <= 6
    assert [x.score for x in found] == sorted((x.score for x in found), reverse=True)
    best_article = next(x for x in found if x.kind == "article")
    assert best_article.title == "Carta inceppata nella stampante" and "sportello frontale" in best_article.detail
    twin = next(x for x in found if x.kind == "ticket")
    assert twin.ref == old.ticket_number and "cassetto 2" in twin.detail

    # An operator rewrites the problem: the suggestions follow.
    with core.sessions() as s, s.begin():
        core.lifecycle.set_field(s.get(Ticket, new.ticket_id), "anomaly", "Outlook mi chiede sempre la password", "op")
    run_once(core.sessions, "HD")
    view = core.desk.ticket(new.ticket_number)
    assert view.suggestions[0].kind == "article" and "password" in view.suggestions[0].title.lower()

    # tickets show --json, as other checks read it
    from gateway.cli import main

    env = {"HELPDESK_GATEWAY__STORAGE__URL": str(core.engine.url.render_as_string(hide_password=False)),
           "HELPDESK_GATEWAY__STORAGE__DATA_DIR": str(tmp_path / "data")}
    out = CliRunner().invoke(main, ["tickets", "show", new.ticket_number, "--json"], env=env)
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["suggestions"] and set(data["suggestions"][0]) == {"kind", "ref", "title", "score"}
    assert isinstance(data["suggestions"][0]["ref"], int) and data["suggestions"][0]["kind"] == "article"


def test_a_draft_is_never_suggested_and_a_reopened_ticket_leaves_the_index(core):
    from ticketing.knowledge import ArticleData, save

    with core.sessions() as s, s.begin():
        save(s, ArticleData("bozza", "Proiettore senza segnale bozza", "Il proiettore non mostra nulla", "Premere Win+P", ("PROJ-0115",), (), "it", "draft"), "op")
    done = mail(core, "p1", "Il proiettore della sala giunta dice nessun segnale")
    resolve(core, done.ticket_id, "Selezionata la sorgente HDMI dal telecomando.")
    run_once(core.sessions, "HD")
    with core.sessions() as s, s.begin():
        core.lifecycle.reopen(s.get(Ticket, done.ticket_id), "op", "di nuovo")
    fresh = mail(core, "p2", "proiettore: nessun segnale dal portatile")
    run_once(core.sessions, "HD")
    with core.sessions() as s:
        assert stored(s, fresh.ticket_id) == ()
