"""Search by each criterion (issue 13 §3), in the core and through `GET /api/v1/search` and `/desk/search`:
words of the anomaly, of a later message and of a call's transcript (stemmed: plural or accent do not matter),
the reporter, the asset, the organisation, the group and the date range; paged; criteria naming nothing find nothing."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import httpx
from sqlalchemy import update

from tests.test_web_support import web, web_factory  # noqa: F401  (fixtures)
from tests.test_web_mail import desk_login
from ticketing.contact import Channel, Contact, Sender
from ticketing.models import Ticket
from ticketing.search import Search, SearchQuery
from ticketing.suggestions import run_once


def mail(core, n, text, who=("Mario Rossi", "mario.rossi@example.org"), language="it", subject=None):
    return core.intake.submit(Contact(Channel.EMAIL, f"<s-{n}@example.org>", sender=Sender(*who), text=text, language=language, subject=subject))


def numbers(page) -> set[str]:
    return {h.number for h in page.items}


def test_search_by_each_criterion(core):
    a = mail(core, 1, "La stampante multifunzione del piano 2 non stampa, carta inceppata.")
    b = mail(core, 2, "Le VPN ne se connecte pas depuis la maison.", who=("Claire Dubois", "claire.dubois@example.org"), language="fr")
    c = mail(core, 3, "Il protocollo non assegna il numero.", who=("Giulia Bianchi", "giulia.bianchi@example.org"))
    # A later message on ticket c, and a transcript field on b, are searched too.
    core.intake.submit(Contact(Channel.EMAIL, "<s-4@example.org>", sender=Sender("Giulia Bianchi", "giulia.bianchi@example.org"),
                               text="Aggiungo: succede anche con le raccomandate.", subject=f"Re: [{c.ticket_number}]"))
    with core.sessions() as s, s.begin():
        core.lifecycle.set_field(s.get(Ticket, b.ticket_id), "transcript_anomaly", "le certificat du VPN a expiré", "stt", confidence=0.8, source="whisper")
        s.execute(update(Ticket).where(Ticket.id == a.ticket_id).values(created_at=datetime(2026, 1, 10, 9, tzinfo=timezone.utc)))
    run_once(core.sessions, "HD")
    search = Search(core.sessions, "HD")

    def find(**kw):
        return numbers(search.search(SearchQuery(**kw)))

    assert find(words="stampanti inceppate") == {a.ticket_number}  # stems: plural and participle
    assert find(words="raccomandate") == {c.ticket_number}  # a later message
    assert find(words="certificats") == {b.ticket_number}  # a transcript, in French
    assert find(words="stampante vpn") == set()  # every word must match
    assert find(reporter="dubois") == {b.ticket_number} and find(reporter="giulia.bianchi") == {c.ticket_number}
    assert find(asset="PRN-0210") == {a.ticket_number} and find(asset="protocollo") == {c.ticket_number}
    assert find(since=date(2026, 1, 1), until=date(2026, 1, 10)) == {a.ticket_number}
    assert a.ticket_number not in find(since=date(2026, 1, 11))
    with core.sessions() as s:
        t = s.get(Ticket, c.ticket_id)
        org, group = t.organisation_id, t.group_id
    from ticketing.organisations import Organisation
    with core.sessions() as s:
        org_name = s.get(Organisation, org).name if org else None
    if org_name:
        assert c.ticket_number in find(organisation=org_name)
    assert find(organisation="Nessuna") == set() and find(group="Nessuno") == set()
    assert find(since=date(2026, 2, 1), until=date(2026, 1, 1)) == set()
    first = search.search(SearchQuery(reporter="example.org"), page=1, per_page=2)
    second = search.search(SearchQuery(reporter="example.org"), page=2, per_page=2)
    assert first.total == 3 and len(first.items) == 2 and len(second.items) == 1 and not numbers(first) & numbers(second)


def test_search_through_the_api_and_the_desk(web):
    core = web.core
    a = mail(core, 10, "Il telefono VoIP non ha linea.")
    mail(core, 11, "La posta elettronica è lenta.")
    run_once(core.sessions, "HD")
    with httpx.Client(base_url=web.url, headers={"authorization": f"Bearer {web.token}"}) as api:
        r = api.get("/api/v1/search", params={"q": "telefono", "from": "2020-01-01"})
        assert r.status_code == 200 and [i["number"] for i in r.json()["items"]] == [a.ticket_number] and r.json()["total"] == 1
        assert api.get("/api/v1/search", params={"group": "Nessuno"}).json()["total"] == 0
    with httpx.Client(base_url=web.url) as anon:
        assert anon.get("/api/v1/search", params={"q": "x"}).status_code == 401
    with httpx.Client(base_url=web.url) as c:
        desk_login(c)
        page = c.get("/desk/search", params={"q": "linea"})
        assert page.status_code == 200 and a.ticket_number in page.text


def test_migrations_and_models_make_the_same_indexes(tmp_path):
    """Migration 0011's indexes (search and reports at 100,000 tickets) are the models' own: a database brought
    up by Alembic and one made by `create_all` have the same indexes, columns in the same order."""
    from sqlalchemy import create_engine, inspect

    from ticketing import schema  # noqa: F401  (every table module)
    from ticketing import storage
    from ticketing.models import Base

    migrated, fresh = f"sqlite:///{tmp_path / 'm.sqlite3'}", create_engine(f"sqlite:///{tmp_path / 'f.sqlite3'}")
    storage.upgrade(migrated)
    Base.metadata.create_all(fresh)
    engine = create_engine(migrated)

    def indexes(e, table):
        return {i["name"]: tuple(i["column_names"]) for i in inspect(e).get_indexes(table)}

    for table in ("tickets", "messages", "events", "kb_terms"):
        assert indexes(engine, table) == indexes(fresh, table), table
    assert indexes(engine, "kb_terms")["ix_kb_terms_postings"] == ("kind", "term", "ref", "tf")
    assert indexes(engine, "tickets")["ix_tickets_organisation_id"] == ("organisation_id", "id")
    engine.dispose()
    fresh.dispose()


def test_the_suggestion_worker_wakes_on_commit(core):
    """A new ticket's suggestions come right after the intake's commit, not at the worker's next poll (set here
    to a minute): the worker listens to its sessionmaker's commits."""
    import asyncio
    import time

    from ticketing.suggestions import SuggestionWorker, TicketSuggestion
    from sqlalchemy import select

    from ticketing import kbindex

    with core.sessions() as s, s.begin():
        kbindex.index(s, kbindex.ARTICLE, 1, "stampante carta inceppata: aprire lo sportello e togliere il foglio", "it", title="Carta inceppata")
    worker = SuggestionWorker(core.sessions, "HD", seconds=60)
    asyncio.run(worker.start())
    try:
        time.sleep(0.2)  # the worker's thread is in its wait
        r = mail(core, 20, "La stampante ha la carta inceppata.")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with core.sessions() as s:
                if s.scalars(select(TicketSuggestion).where(TicketSuggestion.ticket_id == r.ticket_id)).first() is not None:
                    break
            time.sleep(0.02)
        else:
            raise AssertionError("no suggestion within 20 s of the commit, with a 60 s poll")
    finally:
        asyncio.run(worker.stop())


def test_pages_past_the_counted_head(core, monkeypatch):
    """The total is counted up to COUNT_CAP + 1 in the same read as the first pages; a page past that read is
    fetched on its own, newest first, with nothing skipped or repeated."""
    import ticketing.search as search_module

    made = [mail(core, 30 + i, f"Il monitor numero {i} sfarfalla.") for i in range(5)]
    run_once(core.sessions, "HD")
    monkeypatch.setattr(search_module, "COUNT_CAP", 2)
    search = Search(core.sessions, "HD")
    pages = [search.search(SearchQuery(words="monitor"), page=p, per_page=1) for p in range(1, 7)]
    assert [p.total for p in pages] == [3] * 6  # "at least 3": capped
    assert all(p.total_is_lower_bound for p in pages)  # the desk says "more than 2", the API total_is_lower_bound
    assert not search.search(SearchQuery(words="monitor numero 1")).total_is_lower_bound
    assert [h.number for p in pages for h in p.items] == [r.ticket_number for r in reversed(made)]
