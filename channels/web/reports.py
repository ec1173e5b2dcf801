"""Reports in the API and the desk (issue 13 §5): `GET /api/v1/reports?from=&to=` (JSON, token),
`GET /api/v1/reports/{table}.csv` (one table as CSV), `/desk/reports` (operators) with its charts, and the
monthly report of one organisation as a PDF (`…/reports/monthly.pdf?month=YYYY-MM&organisation=`, WeasyPrint).

The figures come from the core's `Reports` (`ticketing/reports.py`). The charts are SVG drawn here on the server,
as plain elements with presentation attributes: the Content-Security-Policy forbids inline scripts and styles,
and nothing is fetched from elsewhere. `from`/`to` default to the last 30 days up to today (UTC).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, timedelta

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ticketing.reports import TABLES, Report, ReportError, Reports

from .api import ApiError, _problems, integration
from .common import language, render, web
from .i18n import Texts
from .operator import require_operator

router = APIRouter()
api = APIRouter(prefix="/api/v1", dependencies=[Depends(integration)])
desk = APIRouter(prefix="/desk", include_in_schema=False)
DEFAULT_DAYS = 30


def reports(request: Request) -> Reports:
    """The app's `Reports`, made once from the desk's sessions and threshold (a test may set `app.state.reports`)."""
    state = request.app.state
    if getattr(state, "reports", None) is None:
        d = web(request).desk
        state.reports = Reports(d.sessions, d.low_confidence)
    return state.reports


def _range(since: date | None, until: date | None, today: date) -> tuple[date, date]:
    until = until or today
    try:
        return since or until - timedelta(days=DEFAULT_DAYS - 1), until
    except OverflowError:  # `to` in the first days of year 1: no default range before it
        raise ApiError(422, "Unprocessable Content", f"no {DEFAULT_DAYS}-day range ends on {until.isoformat()}") from None


async def _build(request: Request, since: date | None, until: date | None, organisation: str | None = None) -> Report:
    r = reports(request)
    since, until = _range(since, until, r.clock().date())
    try:
        return await run_in_threadpool(r.build, since, until, organisation or None)
    except ReportError as e:
        raise ApiError(422, "Unprocessable Content", str(e)) from None


def to_csv(rows: list[dict], columns: tuple[str, ...]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, lineterminator="\r\n")  # RFC 4180
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in columns})
    return out.getvalue()


@api.get("/reports", responses=_problems(401, 403, 422), summary="Contacts, tickets, SLA compliance, backlog, times, top assets and pre-fill quality for a date range")
async def api_reports(request: Request, since: date | None = Query(None, alias="from", description="YYYY-MM-DD, inclusive"),
                      until: date | None = Query(None, alias="to", description="YYYY-MM-DD, inclusive"),
                      organisation: str | None = Query(None, max_length=200)):
    return (await _build(request, since, until, organisation)).as_dict()


@api.get("/reports/{table}.csv", summary="One report table as CSV", response_class=Response, responses=_problems(401, 403, 404, 422))
async def api_report_csv(request: Request, table: str, since: date | None = Query(None, alias="from"),
                         until: date | None = Query(None, alias="to"), organisation: str | None = Query(None, max_length=200)):
    return await _csv(request, table, since, until, organisation)


@desk.get("/reports/{table}.csv")
async def desk_report_csv(request: Request, table: str, since: date | None = Query(None, alias="from"),
                          until: date | None = Query(None, alias="to"), organisation: str | None = Query(None, max_length=200),
                          operator: str = Depends(require_operator)):
    return await _csv(request, table, since, until, organisation)


async def _csv(request: Request, table: str, since: date | None, until: date | None, organisation: str | None) -> Response:
    if table not in TABLES:
        raise ApiError(404, "Not Found", f"no report table {table[:40]!r} (one of: {', '.join(TABLES)})")
    report = await _build(request, since, until, organisation)
    name = f"{table}-{report.since}-{report.until}.csv"
    return Response(to_csv(report.tables[table], TABLES[table]), media_type="text/csv; charset=utf-8",
                    headers={"content-disposition": f'attachment; filename="{name}"'})


# -- charts ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    y: int
    width: float
    text: str


@dataclass(frozen=True)
class Chart:
    """A horizontal bar chart laid out for an SVG: one mechanism for every figure on the page."""

    id: str
    title: str
    bars: tuple[Bar, ...]
    width: int
    height: int
    label_width: int
    unit: str


def bar_chart(id: str, title: str, items: list[tuple[str, float | None]], unit: str = "", scale: float | None = None,
              width: int = 640, row: int = 22) -> Chart:
    label_width, room = 250, width - 250 - 60
    top = max([v for _, v in items if v is not None] + [scale or 0, 1])
    bars = tuple(
        Bar(label if len(label) <= 36 else label[:35] + "…", v or 0, i * row + 4, round(room * (v or 0) / top, 1), "—" if v is None else f"{v:g}{unit}")
        for i, (label, v) in enumerate(items)
    )
    return Chart(id, title, bars, width, max(1, len(bars)) * row + 8, label_width, unit)


def charts(report: Report, t) -> list[Chart]:
    tables = report.tables
    per_day: dict[str, int] = {}
    for row in tables["contacts"]:
        per_day[row["day"]] = per_day.get(row["day"], 0) + row["contacts"]
    return [
        bar_chart("chart-contacts", t("rep_contacts"), [(d, n) for d, n in sorted(per_day.items())]),
        bar_chart("chart-sla-respond", t("rep_sla_respond"), [(f"{r['organisation']} · {t.level(r['level'])}", r["respond_pct"]) for r in tables["sla"]], "%", 100),
        bar_chart("chart-sla-resolve", t("rep_sla_resolve"), [(f"{r['organisation']} · {t.level(r['level'])}", r["resolve_pct"]) for r in tables["sla"]], "%", 100),
        bar_chart("chart-backlog", t("rep_backlog"), [(t.level(r["level"]), r["open"]) for r in tables["backlog"]]),
        bar_chart("chart-assets", t("rep_assets"), [(f"{r['tag']} {r['name']}", r["tickets"]) for r in tables["assets"]]),
    ]


def _date(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


@desk.get("/reports")
async def desk_reports(request: Request, operator: str = Depends(require_operator)):
    p = request.query_params
    since, until = _date(p.get("from")), _date(p.get("to"))
    organisation = (p.get("organisation") or "").strip()[:200]
    error, report = None, None
    try:
        report = await _build(request, since, until, organisation)
    except ApiError as e:
        error = e.detail
    t = Texts(language(request))
    query = f"from={report.since}&to={report.until}" if report else ""
    return render(request, "reports.html", 422 if error else 200, pdf=False, report=report, error=error, tables=TABLES,
                  charts=charts(report, t) if report else [], query=query, organisation=organisation)


# -- the monthly PDF for a client body -------------------------------------------------------------------------
def _month(text: str | None) -> tuple[date, date]:
    """`YYYY-MM` to its first and last day; a bad month is the caller's error."""
    try:
        first = date.fromisoformat(f"{(text or '').strip()}-01")
    except ValueError:
        raise ApiError(422, "Unprocessable Content", "month must be YYYY-MM") from None
    nxt = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return first, nxt - timedelta(days=1)


def pdf(request: Request, report: Report, organisation: str | None, lang: str) -> bytes:
    """The report page drawn as a PDF by WeasyPrint (its SVG charts included), for the desk to send to the client."""
    from weasyprint import HTML  # imported here: a heavy import only the PDF needs

    t = Texts(lang)
    page = web(request).templates.get_template("reports.html").render(
        t=t, lang=lang, other_lang=lang, path="", csrf=lambda purpose="": "", operator=None, pdf=True,
        report=report, error=None, tables=TABLES, charts=charts(report, t), query="", organisation=organisation or "",
    )
    return HTML(string=page).write_pdf()


async def _monthly(request: Request, month: str, organisation: str) -> Response:
    since, until = _month(month)
    report = await _build(request, since, until, organisation)
    body = await run_in_threadpool(pdf, request, report, organisation, language(request))
    name = f"report-{(organisation or 'all').replace(' ', '_')[:60]}-{month}.pdf".encode("ascii", "replace").decode().replace("?", "_")
    return Response(body, media_type="application/pdf", headers={"content-disposition": f'attachment; filename="{name}"'})


@api.get("/reports/monthly.pdf", summary="The monthly report of one organisation (or all) as a PDF", response_class=Response, responses=_problems(401, 403, 404, 422))
async def api_monthly(request: Request, month: str = Query(..., description="YYYY-MM"), organisation: str = Query("", max_length=200)):
    return await _monthly(request, month, organisation)


@desk.get("/reports/monthly.pdf")
async def desk_monthly(request: Request, month: str = Query(...), organisation: str = Query("", max_length=200),
                       operator: str = Depends(require_operator)):
    return await _monthly(request, month, organisation)


router.include_router(api)
router.include_router(desk)
