"""Public pages (no login): the report form at `/` and the status page at `/status`.

The form carries a submission id made when it is rendered; it is the contact's `external_id`, so pressing
"send" twice (or reloading the result page) makes one ticket and shows the same number. Attachments go to
the blob store before the contact is delivered; the form post itself is kept as the contact's raw input.
A new ticket reported with an email address is acknowledged by email, as a mail would be, through the email
channel's sender (`ctx.shared.mail`) when that channel is on; the number is on screen either way.
"""

from __future__ import annotations

import json
import logging
import re
import secrets

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from ticketing.contact import Answer, Attachment, Channel, Contact, Sender
from ticketing.faults import is_storage_full

from .common import STORAGE_RETRY_SECONDS, csrf_ok, finish, language, rate_limit, render, web
from .forms import read_form
from .i18n import Texts

router = APIRouter(include_in_schema=False)
log = logging.getLogger("channels.web")

LIMITS = {"name": 200, "email": 320, "phone": 40, "asset": 200, "anomaly": 4000}
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
PHONE_RE = re.compile(r"^\+?[\d\s().\-/]{6,40}$")
SID_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
# C0 controls other than tab and newlines: never meaningful in a form, and PostgreSQL refuses NUL in text.
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
EXTENSIONS = {
    "image/png": (".png",),
    "image/jpeg": (".jpg", ".jpeg"),
    "image/gif": (".gif",),
    "application/pdf": (".pdf",),
    "text/plain": (".txt", ".log"),
}


def clean(value) -> str:
    if not isinstance(value, str):
        return ""
    return _CONTROLS.sub("", value).replace("\r\n", "\n").strip()


def _form_context(request: Request, values: dict, errors: dict, sid: str | None = None) -> dict:
    s = web(request).settings
    return dict(
        values=values,
        errors=errors,
        sid=sid or secrets.token_urlsafe(18),
        notice=None,
        max_files=s.max_attachments,
        max_size=s.max_attachment_bytes,
        types=s.attachment_types,
        accept=",".join(s.attachment_types + [e for t in s.attachment_types for e in EXTENSIONS.get(t, ())]),
    )


@router.get("/")
async def form(request: Request):
    return render(request, "form.html", **_form_context(request, {}, {}))


@router.post("/")
async def submit(request: Request):
    w = web(request)
    s = w.settings
    rate_limit(request, "submit")
    lang = language(request)
    t = Texts(lang)
    try:
        data = await read_form(request, max_files=s.max_attachments + 10, max_fields=40, max_part_size=64 * 1024)
    except MultiPartException as e:
        return render(request, "error.html", 400, message=str(e))
    sid = data.get("sid") if isinstance(data.get("sid"), str) else ""
    values = {k: clean(data.get(k)) for k in LIMITS}
    values["urgent"] = "1" if clean(data.get("urgent")) else ""  # the box ticked: the whole office is blocked
    if not SID_RE.match(sid or "") or not csrf_ok(request, data.get("csrf") if isinstance(data.get("csrf"), str) else None, sid):
        # Never a bare error page that loses what the user typed: the form again, their text in it, a fresh
        # token. The submission id stays: if the first post did land (the answer was lost in a restart), sending
        # again returns that ticket instead of making a second one.
        keep = sid if SID_RE.match(sid or "") else None
        return _again(request, 403, values, t("form_expired"), keep, _had_files(data), t)
    if clean(data.get("website")):
        # The honeypot: a field people do not see. Kept as a rejection an operator can look at, never a ticket.
        contact = _contact(values, sid, lang, (), None)
        await run_in_threadpool(w.ctx.intake.reject, contact, "honeypot field filled in: an automated submission", fault="sender")
        return render(request, "thanks.html", number=None, lang=lang)

    errors = _validate(values, t)
    files = [f for f in data.getlist("attachments") if isinstance(f, UploadFile) and f.filename]
    uploads: list[tuple[UploadFile, bytes]] = []
    if len(files) > s.max_attachments:
        errors["attachments"] = t("err_too_many_files", n=s.max_attachments)
    else:
        for f in files:
            content = await f.read(s.max_attachment_bytes + 1)
            problem = _check_file(f, content, s, t)
            if problem:
                errors["attachments"] = problem
                break
            uploads.append((f, content))
    if errors:
        return render(request, "form.html", 400, **_form_context(request, values, errors, sid))

    try:
        attachments = []
        for f, content in uploads:
            ref = await run_in_threadpool(w.ctx.blobs.put, content)
            attachments.append(Attachment(filename=f.filename[:255], content_type=_type_of(f), blob=ref))
        raw_doc = {"form": values, "language": lang, "attachments": [a.filename for a in attachments]}
        raw = await run_in_threadpool(w.ctx.blobs.put, json.dumps(raw_doc, ensure_ascii=False, sort_keys=True).encode())
        contact = _contact(values, sid, lang, tuple(attachments), raw)
        result = await w.batcher.submit(contact)
    except Exception as e:
        if not is_storage_full(e):
            raise
        # Nothing was stored: the form again with the user's text, and when to try (the same id: no duplicate).
        log.warning("storage full: a form post was answered 503")
        response = _again(request, 503, values, t("err_storage_full"), sid, bool(uploads), t)
        response.headers["retry-after"] = str(STORAGE_RETRY_SECONDS)
        return response
    mailed = _acknowledge(w.ctx, contact, result)
    return render(request, "thanks.html", number=result.ticket_number, email=contact.sender.email if mailed else None, lang=lang,
                  pin=getattr(result, "pin", None))  # the status PIN: only for a ticket this post created


def _had_files(data) -> bool:
    return any(isinstance(f, UploadFile) and f.filename for f in data.getlist("attachments"))


def _again(request: Request, status: int, values: dict, notice: str, sid: str | None, had_files: bool, t: Texts):
    """The form re-rendered after a refusal that is not the user's fault, with what they typed."""
    if had_files:
        notice = f"{notice} {t('reattach')}"
    return render(request, "form.html", status, **{**_form_context(request, values, {}, sid), "notice": notice})


def _acknowledge(ctx, contact: Contact, result) -> bool:
    """Queue the acknowledgement by email of a new ticket (sent by the email channel's thread, so mail trouble
    never slows or fails the form); False when there is none to send."""
    mail = getattr(getattr(ctx, "shared", None), "mail", None)
    if mail is None or not contact.sender.email or str(result.outcome) != "created":
        return False
    try:
        queued = mail.acknowledge_contact(contact, result)  # the intake queued it, or the policy said no
    except Exception:  # noqa: BLE001 - ours, and the ticket is safe: log it, the user has the number on screen
        log.exception("acknowledgement of %s could not be queued", result.ticket_number)
        return False
    return bool(queued)


def _contact(values: dict, sid: str, lang: str, attachments, raw) -> Contact:
    answers = {k: Answer(values[k], "form") for k in ("name", "asset", "anomaly") if values.get(k)}
    return Contact(
        channel=Channel.WEB,
        external_id=f"form:{sid}",
        sender=Sender(values.get("name") or None, values.get("email") or None, values.get("phone") or None),
        text=values.get("anomaly") or "",
        language=lang,
        attachments=attachments,
        raw=raw,
        answers=answers,
        urgent=True if values.get("urgent") else None,  # unticked says nothing: the text's cues decide
    )


def _validate(values: dict, t: Texts) -> dict[str, str]:
    errors: dict[str, str] = {}
    for key, limit in LIMITS.items():
        if len(values[key]) > limit:
            errors[key] = t("err_too_long", n=limit)
    for key in ("name", "asset", "anomaly"):
        if not values[key]:
            errors[key] = t("err_required")
    if not values["email"] and not values["phone"]:
        errors["email"] = t("err_contact")
    if values["email"] and "email" not in errors and not EMAIL_RE.match(values["email"]):
        errors["email"] = t("err_email")
    if values["phone"] and "phone" not in errors and not (PHONE_RE.match(values["phone"]) and sum(c.isdigit() for c in values["phone"]) >= 6):
        errors["phone"] = t("err_phone")
    return errors


def _type_of(f: UploadFile) -> str:
    return (f.content_type or "application/octet-stream").split(";")[0].strip().lower()


def _check_file(f: UploadFile, content: bytes, s, t: Texts) -> str | None:
    from .common import _size

    kind = _type_of(f)
    types = ", ".join(s.attachment_types)
    name = f.filename or "?"
    if len(content) > s.max_attachment_bytes:
        return t("err_file_size", name=name, size=_size(s.max_attachment_bytes))
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if kind not in s.attachment_types or (kind in EXTENSIONS and suffix not in EXTENSIONS[kind]):
        return t("err_file_type", name=name, type=kind, types=types)
    return None


@router.get("/status")
async def status_form(request: Request):
    return render(request, "status.html", result=None, not_found=False, number="", contact="")


@router.post("/status")
async def status_lookup(request: Request):
    w = web(request)
    rate_limit(request, "status")
    t = Texts(language(request))
    data = await read_form(request, max_files=0, max_fields=10, max_part_size=4096)
    token = data.get("csrf")
    if not csrf_ok(request, token if isinstance(token, str) else None, "status"):
        return render(request, "error.html", 403, message=t("forbidden"))
    number, contact = clean(data.get("number"))[:40], clean(data.get("contact"))[:320]
    result = await run_in_threadpool(w.desk.status_lookup, number, contact)
    if result is None:
        # The same answer for a wrong number and a wrong contact: the page must not confirm that a number exists.
        return render(request, "status.html", 404, result=None, not_found=True, number=number, contact=contact)
    return render(request, "status.html", result=result, not_found=False, number=number, contact=contact)


@router.get("/assets/suggest")
async def suggest(request: Request, q: str = ""):
    rate_limit(request, "suggest")
    found = await run_in_threadpool(web(request).desk.suggest_assets, clean(q)[:100], 8)
    response = JSONResponse([{"tag": a.tag, "name": a.name} for a in found])
    finish(request, response)
    return response
