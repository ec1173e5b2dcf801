"""Reports (issue 13 §5): every figure checked against tickets made with known dates, on SQLite and PostgreSQL.

Contacts go through the real intake (so fields carry the confidence extraction gave them); their instants are
then set to known values, and the operator actions run under an injected clock, so each count, share and
percentile below is worked out by hand from the dates written here.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import select, update

from ticketing.contact import Channel, Contact, Sender
from ticketing.models import Message, Ticket, TicketField
from ticketing.reports import ReportError, Reports, median, percentile

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)  # a Monday
NOW = datetime(2026, 3, 12, 9, 0, tzinfo=timezone.utc)


def at(days=0, minutes=0) -> datetime:
    return T0 + timedelta(days=days, minutes=minutes)


def contact(core, n, channel=Channel.EMAIL, text="La stampante PRN-0210 del piano 2 non stampa.", who=("Mario Rossi", "mario.rossi@example.org")):
    return core.intake.submit(Contact(channel, f"<r-{n}@example.org>", sender=Sender(*who), text=text, language="it"))


def place(core, receipt, created: datetime, respond_by: datetime, resolve_by: datetime) -> None:
    """Move a fresh ticket and its first message to known instants, with known targets."""
    with core.sessions() as s, s.begin():
        s.execute(update(Ticket).where(Ticket.id == receipt.ticket_id).values(created_at=created, level_since=created, respond_by=respond_by, resolve_by=resolve_by))
        s.execute(update(Message).where(Message.ticket_id == receipt.ticket_id).values(received_at=created))


def act(core, when: datetime, action, *args) -> None:
    """An operator action at `when`, then the targets put back (the action recomputes them from its own calendar)."""
    core.lifecycle.clock = lambda: when
    with core.sessions() as s:
        keep = s.execute(select(Ticket.id, Ticket.respond_by, Ticket.resolve_by)).all()
    action(*args)
    with core.sessions() as s, s.begin():
        for tid, r, v in keep:
            s.execute(update(Ticket).where(Ticket.id == tid).values(respond_by=r, resolve_by=v))


@pytest.fixture
def made(core):
    """Four tickets and one follow-up mail, dated by hand:

    a  mail  day 0 09:00, taken +30 min (respond by +60: met), resolved +120 min (by +240: met)
    b  mail  day 0 10:00, taken +90 min (respond by +60: breached), resolved +600 min (by +480: breached)
    c  web   day 1 09:00, never taken, respond by +60, resolve by day 20: respond breached, resolve pending; open
    d  mail  day 5 (outside a range ending day 4), open; plus a reply on a on day 1
    """
    a = contact(core, 1)
    place(core, a, at(0), at(0, 60), at(0, 240))
    b = contact(core, 2, text="Il server di posta non risponde da stamattina.", who=("Giulia Bianchi", "giulia.bianchi@example.org"))
    place(core, b, at(0, 60), at(0, 120), at(0, 540))
    c = core.intake.submit(Contact(Channel.WEB, "form-3", sender=Sender("Anonimo", None), text="qualcosa non va", language="it"))
    place(core, c, at(1), at(1, 60), at(20))
    d = contact(core, 4, text="La VPN non si connette.", who=("Claire Dubois", "claire.dubois@example.org"))
    place(core, d, at(5), at(5, 60), at(6))
    reply = core.intake.submit(Contact(Channel.EMAIL, "<r-5@example.org>", sender=Sender("Mario Rossi", "mario.rossi@example.org"),
                                       text="Aggiungo una cosa.", subject=f"Re: [{a.ticket_number}]", language="it"))
    assert reply.ticket_id == a.ticket_id
    with core.sessions() as s, s.begin():
        s.execute(update(Message).where(Message.external_id == "<r-5@example.org>").values(received_at=at(1, 120)))
    act(core, at(0, 30), core.desk.take, a.ticket_number, "anna")
    act(core, at(0, 120), core.desk.resolve, a.ticket_number, "anna", "carta tolta")
    act(core, at(0, 150), core.desk.take, b.ticket_number, "anna")
    act(core, at(0, 660), core.desk.resolve, b.ticket_number, "anna", "servizio riavviato")
    return {"a": a, "b": b, "c": c, "d": d}


def test_every_figure(core, made):
    reports = Reports(core.sessions, low_confidence=0.6, clock=lambda: NOW)
    r = reports.build(date(2026, 3, 2), date(2026, 3, 5)).tables

    assert r["contacts"] == [
        {"day": "2026-03-02", "channel": "email", "contacts": 2},
        {"day": "2026-03-03", "channel": "email", "contacts": 1},
        {"day": "2026-03-03", "channel": "web", "contacts": 1},
    ]
    assert sum(row["tickets"] for row in r["tickets"]) == 3  # d is outside the range

    by_level = {}
    for row in r["sla"]:
        for k in ("tickets", "respond_met", "respond_breached", "resolve_met", "resolve_breached"):
            by_level[k] = by_level.get(k, 0) + row[k]
    assert by_level == {"tickets": 3, "respond_met": 1, "respond_breached": 2, "resolve_met": 1, "resolve_breached": 1}
    if len(r["sla"]) == 1:
        assert r["sla"][0]["respond_pct"] == 33.3 and r["sla"][0]["resolve_pct"] == 50.0

    # Open now (day 10) and created by the end of the range: c only (d was created after it), 9 days old.
    assert r["backlog"] == [{"level": 1, "open": 1, "<1d": 0, "1-3d": 0, "3-7d": 0, "7-30d": 1, ">30d": 0, "oldest_days": 9.0}]

    times = {row["measure"]: row for row in r["times"]}
    assert times["first_response"] == {"measure": "first_response", "count": 2, "median_minutes": 60.0, "p90_minutes": 90.0}
    assert times["resolution"] == {"measure": "resolution", "count": 2, "median_minutes": 360.0, "p90_minutes": 600.0}

    assets = {row["tag"]: row["tickets"] for row in r["assets"]}
    assert sum(assets.values()) == 3

    # Pre-filled: worked out from the stored confidences of the three fields, not from the report itself.
    with core.sessions() as s:
        rows = s.execute(select(TicketField.ticket_id, TicketField.name, TicketField.confidence, TicketField.value)).all()
    good = 0
    for t in (made["a"], made["b"], made["c"]):
        conf = {}
        for tid, name, c, value in rows:
            if tid == t.ticket_id and value:
                key = "reporter" if name.startswith("reporter_") else name
                conf[key] = max(conf.get(key, 0), c)
        good += all(conf.get(k, 0) >= 0.6 for k in ("reporter", "asset", "anomaly"))
    assert r["quality"] == [{"tickets": 3, "prefilled": good, "prefilled_pct": round(100 * good / 3, 1), "threshold": 0.6}]
    assert good >= 1  # a names the printer by tag and comes from a directory user
    assert r["quality"][0]["prefilled"] < 3  # c (anonymous, no asset) is not pre-filled

    # The later range sees d alone; a range before everything sees nothing.
    later = reports.build(date(2026, 3, 7), date(2026, 3, 7)).tables
    assert [row["contacts"] for row in later["contacts"]] == [1] and later["quality"][0]["tickets"] == 1
    empty = reports.build(date(2025, 1, 1), date(2025, 1, 2)).tables
    assert empty["contacts"] == [] and empty["sla"] == [] and empty["backlog"] == []
    assert empty["times"][0]["median_minutes"] is None and empty["quality"][0]["prefilled_pct"] is None


def test_bad_ranges(core):
    reports = Reports(core.sessions)
    with pytest.raises(ReportError, match="before"):
        reports.build(date(2026, 3, 5), date(2026, 3, 1))
    with pytest.raises(ReportError, match="organisation"):
        reports.build(date(2026, 3, 1), date(2026, 3, 5), organisation="No Such Body")


def test_percentiles():
    assert median([3, 1, 2]) == 2 and median([1, 2, 3, 4]) == 2.5 and median([]) is None
    assert percentile(list(range(1, 11)), 90) == 9 and percentile([5], 90) == 5 and percentile([], 90) is None


# -- the API, the CSV tables and the desk page -------------------------------------------------------------------
from tests.test_web_support import chromium, page, web_factory  # noqa: E402,F401  (fixtures)
from tests.test_web_mail import desk_login  # noqa: E402


def test_api_csv_and_page(core, made, web_factory):  # noqa: F811
    import csv
    import io
    import re

    import httpx

    w = web_factory(core, cookie_secure=False)
    w.server.service.app.state.reports = Reports(core.sessions, core.config.ticketing.low_confidence, clock=lambda: NOW)
    expected = Reports(core.sessions, core.config.ticketing.low_confidence, clock=lambda: NOW).build(date(2026, 3, 2), date(2026, 3, 5)).as_dict()
    auth = {"authorization": f"Bearer {w.token}"}
    with httpx.Client(base_url=w.url, timeout=30) as c:
        assert c.get("/api/v1/reports?from=2026-03-02&to=2026-03-05").status_code == 401
        r = c.get("/api/v1/reports?from=2026-03-02&to=2026-03-05", headers=auth)
        assert r.status_code == 200 and r.json() == expected
        assert r.json()["contacts"][0] == {"day": "2026-03-02", "channel": "email", "contacts": 2}
        bad = c.get("/api/v1/reports?from=2026-03-05&to=2026-03-01", headers=auth)
        assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json") and "before" in bad.json()["detail"]
        assert c.get("/api/v1/reports?from=yesterday", headers=auth).status_code == 422
        assert c.get("/api/v1/reports/nothing.csv", headers=auth).status_code == 404

        got = c.get("/api/v1/reports/times.csv?from=2026-03-02&to=2026-03-05", headers=auth)
        assert got.status_code == 200 and got.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(got.text)))
        assert rows[0] == {"measure": "first_response", "count": "2", "median_minutes": "60.0", "p90_minutes": "90.0"}
        contacts = list(csv.DictReader(io.StringIO(c.get("/api/v1/reports/contacts.csv?from=2026-03-02&to=2026-03-05", headers=auth).text)))
        assert [r["contacts"] for r in contacts] == ["2", "1", "1"]

        assert c.get("/desk/reports").status_code == 303  # operators only
        desk_login(c)
        for lang, title in (("it", "Report del servizio"), ("fr", "Rapports du service"), ("en", "Service reports")):
            page = c.get(f"/desk/reports?from=2026-03-02&to=2026-03-05&lang={lang}")
            assert page.status_code == 200 and title in page.text
        html = page.text
        for chart in ("chart-contacts", "chart-sla-respond", "chart-sla-resolve", "chart-backlog", "chart-assets"):
            assert re.search(rf'<figure id="{chart}">\s*<figcaption>[^<]+</figcaption>\s*<svg ', html), chart
        assert "<script" not in html
        # The contacts chart: one bar per day, the longest for the busiest day (2 contacts on 2 March).
        contacts_svg = html.split('id="chart-contacts"')[1].split("</svg>")[0]
        assert re.findall(r"<title>([^<]+)</title>", contacts_svg) == ["2026-03-02: 2", "2026-03-03: 2"]
        respond_svg = html.split('id="chart-sla-respond"')[1].split("</svg>")[0]
        shown = [t.rsplit(": ", 1)[1] for t in re.findall(r"<title>([^<]+)</title>", respond_svg)]
        assert shown == ["—" if row["respond_pct"] is None else f"{row['respond_pct']:g}%" for row in expected["sla"]]
        assert "Median (min)" in html
        csv_link = re.search(r'href="(/desk/reports/sla\.csv\?[^"]+)"', html).group(1).replace("&amp;", "&")
        assert c.get(csv_link).text.splitlines()[0].startswith("organisation,level,tickets")
        assert c.get("/desk/reports?from=2026-03-05&to=2026-03-01").status_code == 422


def test_monthly_pdf(core, made, web_factory):  # noqa: F811
    import shutil
    import subprocess

    import httpx

    from tests.conftest import missing

    if shutil.which("pdftotext") is None:
        missing("pdftotext (Debian poppler-utils)")
    w = web_factory(core, cookie_secure=False)
    reports = Reports(core.sessions, core.config.ticketing.low_confidence, clock=lambda: NOW)
    w.server.service.app.state.reports = reports
    org = reports.build(date(2026, 3, 1), date(2026, 3, 31)).tables["sla"][0]["organisation"]
    expected = reports.build(date(2026, 3, 1), date(2026, 3, 31), organisation=None if org == "—" else org).tables
    auth = {"authorization": f"Bearer {w.token}", "accept-language": "en"}
    query = {"month": "2026-03"} | ({} if org == "—" else {"organisation": org})
    with httpx.Client(base_url=w.url, timeout=120) as c:
        r = c.get("/api/v1/reports/monthly.pdf", params=query, headers=auth)
        assert r.status_code == 200 and r.headers["content-type"] == "application/pdf" and r.content.startswith(b"%PDF")
        assert c.get("/api/v1/reports/monthly.pdf", params={"month": "March"}, headers=auth).status_code == 422
    text = subprocess.run(["pdftotext", "-layout", "-", "-"], input=r.content, capture_output=True, check=True).stdout.decode()
    assert "Service reports" in text and "2026-03-01" in text and "2026-03-31" in text
    if org != "—":
        assert org in text
    for heading in ("Contacts per channel per day", "SLA per organisation and level", "Backlog and ageing per level",
                    "First-response and resolution times (minutes)", "Contacts pre-filled with confidence"):
        assert heading in text, heading
    first = next(row for row in expected["times"] if row["measure"] == "first_response")
    line = next(ln for ln in text.splitlines() if "First response" in ln)  # the measure in words, not its key
    assert line.replace("First response", "").split() == [str(first["count"]), str(first["median_minutes"] if first["median_minutes"] is not None else "—"),
                                str(first["p90_minutes"] if first["p90_minutes"] is not None else "—")]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # once: the figures are checked on both above
def test_page_in_chromium(core, made, web_factory, page):  # noqa: F811
    """An operator opens the reports from the desk's header and sees every chart drawn (no CSP violation)."""
    from tests.test_web_support import login, shot

    w = web_factory(core, cookie_secure=False)
    w.server.service.app.state.reports = Reports(core.sessions, core.config.ticketing.low_confidence, clock=lambda: NOW)
    violations = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    login(page, w.url)
    page.click("#reports-link")
    page.fill("input[name=from]", "2026-03-02")
    page.fill("input[name=to]", "2026-03-05")
    page.click("#report-range button[type=submit]")
    page.wait_for_selector("#chart-contacts svg rect")
    for chart in ("chart-contacts", "chart-sla-respond", "chart-sla-resolve", "chart-backlog", "chart-assets"):
        box = page.locator(f"#{chart} svg").bounding_box()
        assert box and box["width"] > 100 and box["height"] > 10, chart
    widths = [float(x) for x in page.locator("#chart-contacts svg rect").evaluate_all("els => els.map(e => e.getAttribute('width'))")]
    assert len(widths) == 2 and widths[0] == widths[1] > 0  # 2 contacts on each of the two days
    assert page.locator("#table-times td").first.inner_text().strip() == "Prima risposta"  # the desk's language
    assert not violations and not page.dialogs
    shot(page, "reports-desk.png")
