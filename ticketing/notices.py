"""What the desk tells people by email after intake, written into the durable outbox (`ticketing.outbox`) in
the same transaction as the change that causes it, so a notice exists exactly when its change was committed.

- `notify_group`: a support group is handed a ticket (an external group, a vendor, always; an internal one
  when it has an address). The mail carries the pre-filled ticket (who, what, anomaly, urgency, SLA due) and
  the `[HD-…]` reference in its subject; it is recorded on the ticket, so the vendor's reply threads back
  (by the reference or by In-Reply-To) and lands on the ticket as a message. It resolves nothing by itself:
  an operator reads it and resolves.
- `notify_user`: the reporter is told the resolution report, or asked the operator's question when the
  ticket waits for them; their answer threads back and resumes the ticket.
- `sla_alert`: a group is told one of its tickets reached an SLA warning or breach.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import Event, Message, Ticket

NOTIFICATION = "notification"


def _enqueue(s: Session, **kw):
    from .outbox import enqueue  # the outbox module imports models; imported here to keep models' import light

    return enqueue(s, **kw)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "-"


def ticket_summary(t: Ticket, number: str, organisation: str | None = None) -> str:
    v = t.value
    return "\n".join([
        f"Ticket: {number}",
        f"Organisation: {organisation or '-'}",
        f"Reporter: {v('reporter_name') or '-'} <{v('reporter_email') or '-'}> {v('reporter_phone') or ''}".rstrip(),
        f"Asset: {v('asset') or '-'}",
        f"Urgency: {t.urgency}   Priority: P{t.priority}   Level: {'I' * t.level}",
        f"Respond by: {_when(t.respond_by)}",
        f"Resolve by: {_when(t.resolve_by)}",
        "",
        "Anomaly:",
        (v("anomaly") or "").strip() or "-",
    ])


def notify_group(s: Session, t: Ticket, number: str, group, *, reason: str, organisation: str | None = None) -> None:
    """Hand `t` to `group` by email (when it has an address)."""
    if not group.email:
        return
    subject = f"[{number}] {'Ticket assigned' if group.kind == 'internal' else 'Intervention request'}: {(t.value('asset') or t.value('anomaly') or '')[:80]}".rstrip(": ")
    text = (
        f"The service desk hands this ticket to {group.name} (level {'I' * group.level}).\n"
        f"Reason: {reason}\n\n{ticket_summary(t, number, organisation)}\n\n"
        f"Reply to this mail keeping [{number}] in the subject: your answer is added to the ticket for the desk's "
        f"operators, who close it with the user.\n"
    )
    _enqueue(s, kind=NOTIFICATION, to=group.email, subject=subject, text=text, ticket_id=t.id, record=True,
             headers={"Auto-Submitted": "auto-generated"})


def reporter_address(s: Session, t: Ticket) -> tuple[str | None, str | None]:
    """The reporter's address and the Message-ID of their latest mail, to answer in the same thread."""
    inbound = s.execute(
        select(Message.sender_email, Message.rfc_message_id).where(Message.ticket_id == t.id, Message.direction == "in").order_by(Message.id)
    ).all()
    to = t.value("reporter_email") or next((m.sender_email for m in inbound if m.sender_email), None)
    return to, next((m.rfc_message_id for m in reversed(inbound) if m.rfc_message_id), None)


USER_TEXTS = {
    "resolved": {
        "it": ("[{n}] Risolto", "La sua segnalazione {n} è stata risolta.\n\nCosa è stato fatto:\n{text}\n\nSe il problema persiste, risponda a questa mail: la segnalazione sarà riaperta.\n"),
        "en": ("[{n}] Resolved", "Your report {n} has been resolved.\n\nWhat was done:\n{text}\n\nIf the problem persists, reply to this mail and the ticket is reopened.\n"),
        "fr": ("[{n}] Résolu", "Votre signalement {n} a été résolu.\n\nCe qui a été fait :\n{text}\n\nSi le problème persiste, répondez à ce message : le signalement sera rouvert.\n"),
    },
    "waiting": {
        "it": ("[{n}] Abbiamo bisogno di lei", "Per proseguire con la segnalazione {n} ci serve una sua risposta:\n\n{text}\n\nRisponda a questa mail.\n"),
        "en": ("[{n}] We need your answer", "To go on with your report {n} we need your answer:\n\n{text}\n\nPlease reply to this mail.\n"),
        "fr": ("[{n}] Nous avons besoin de vous", "Pour poursuivre votre signalement {n}, nous avons besoin de votre réponse :\n\n{text}\n\nRépondez à ce message.\n"),
    },
}


def notify_user(s: Session, t: Ticket, number: str, what: str, text: str) -> bool:
    """Mail the reporter the resolution report (`what="resolved"`) or the operator's question (`"waiting"`);
    False when no address of theirs is known (the ticket's history says so)."""
    to, in_reply_to = reporter_address(s, t)
    if not to:
        s.add(Event(ticket_id=t.id, kind="user_not_notified", actor="system", data={"mail": what, "reason": "no email address of the reporter"}))
        return False
    texts = USER_TEXTS[what]
    subject, body = texts.get(t.language or "it", texts["it"])
    _enqueue(s, kind=NOTIFICATION, to=to, subject=subject.format(n=number), text=body.format(n=number, text=text.strip()),
             ticket_id=t.id, in_reply_to=in_reply_to, record=True, headers={"Auto-Submitted": "auto-replied"})
    return True


def sla_alert(s: Session, t: Ticket, number: str, group, alerts: list[tuple[str, str, str]]) -> None:
    """One mail to the ticket's group for the alerts one pass raised on it: (level, target, due) each."""
    if group is None or not group.email or not alerts:
        return
    level = "breached" if any(a[0] == "breached" for a in alerts) else "warning"
    lines = "\n".join(f"- {target}: {lv}, due {due[:16].replace('T', ' ')} UTC" for lv, target, due in alerts)
    subject = f"[{number}] SLA {level}"
    text = f"The ticket {number} of your group {group.name} reached:\n{lines}\n\n{ticket_summary(t, number)}\n"
    _enqueue(s, kind=NOTIFICATION, to=group.email, subject=subject, text=text, ticket_id=t.id, headers={"Auto-Submitted": "auto-generated"})
