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


# What a group reads, in the ticket's language (the reporter's words are in it too); the reporter's texts follow.
GROUP_TEXTS = {
    "it": {
        "labels": ("Segnalazione", "Ente", "Utente", "Bene", "Urgenza", "Priorità", "Livello", "Rispondere entro",
                   "Risolvere entro", "Anomalia"),
        "urgency": {"low": "bassa", "normal": "normale", "high": "alta", "critical": "critica"},
        "assigned": "Segnalazione assegnata", "request": "Richiesta di intervento",
        "hands": "Il service desk affida questa segnalazione a {group} (livello {level}).\nMotivo: {reason}",
        "reply": "Risponda a questa mail lasciando [{n}] nell'oggetto: la risposta è aggiunta alla segnalazione per "
                 "gli operatori del desk, che la chiudono con l'utente.",
        "sla_subject": {"warning": "SLA in scadenza", "breached": "SLA scaduto"},
        "sla_target": {"respond": "presa in carico", "resolve": "risoluzione"},
        "sla_level": {"warning": "all'80 %", "breached": "scaduto"},
        "sla_intro": "La segnalazione {n} del gruppo {group} ha raggiunto:", "due": "scadenza",
    },
    "fr": {
        "labels": ("Signalement", "Organisme", "Utilisateur", "Bien", "Urgence", "Priorité", "Niveau",
                   "Répondre avant", "Résoudre avant", "Anomalie"),
        "urgency": {"low": "basse", "normal": "normale", "high": "haute", "critical": "critique"},
        "assigned": "Signalement attribué", "request": "Demande d'intervention",
        "hands": "Le service desk confie ce signalement à {group} (niveau {level}).\nMotif : {reason}",
        "reply": "Répondez à ce message en gardant [{n}] dans l'objet : votre réponse est ajoutée au signalement "
                 "pour les opérateurs du desk, qui le clôturent avec l'utilisateur.",
        "sla_subject": {"warning": "SLA bientôt échu", "breached": "SLA dépassé"},
        "sla_target": {"respond": "prise en charge", "resolve": "résolution"},
        "sla_level": {"warning": "à 80 %", "breached": "dépassé"},
        "sla_intro": "Le signalement {n} du groupe {group} a atteint :", "due": "échéance",
    },
    "en": {
        "labels": ("Ticket", "Organisation", "Reporter", "Asset", "Urgency", "Priority", "Level", "Respond by",
                   "Resolve by", "Anomaly"),
        "urgency": {"low": "low", "normal": "normal", "high": "high", "critical": "critical"},
        "assigned": "Ticket assigned", "request": "Intervention request",
        "hands": "The service desk hands this ticket to {group} (level {level}).\nReason: {reason}",
        "reply": "Reply to this mail keeping [{n}] in the subject: your answer is added to the ticket for the "
                 "desk's operators, who close it with the user.",
        "sla_subject": {"warning": "SLA warning", "breached": "SLA breached"},
        "sla_target": {"respond": "respond", "resolve": "resolve"},
        "sla_level": {"warning": "80 % reached", "breached": "breached"},
        "sla_intro": "The ticket {n} of your group {group} reached:", "due": "due",
    },
}


def _texts(t: Ticket) -> dict:
    return GROUP_TEXTS.get(t.language or "it", GROUP_TEXTS["it"])


def ticket_summary(t: Ticket, number: str, organisation: str | None = None) -> str:
    v, tx = t.value, _texts(t)
    ticket, org, reporter, asset, urgency, priority, level, respond, resolve, anomaly = tx["labels"]
    return "\n".join([
        f"{ticket}: {number}",
        f"{org}: {organisation or '-'}",
        f"{reporter}: {v('reporter_name') or '-'} <{v('reporter_email') or '-'}> {v('reporter_phone') or ''}".rstrip(),
        f"{asset}: {v('asset') or '-'}",
        f"{urgency}: {tx['urgency'].get(t.urgency, t.urgency)} · {priority}: P{t.priority} · {level}: {'I' * t.level}",
        f"{respond}: {_when(t.respond_by)}",
        f"{resolve}: {_when(t.resolve_by)}",
        "",
        f"{anomaly}:",
        (v("anomaly") or "").strip() or "-",
    ])


def notify_group(s: Session, t: Ticket, number: str, group, *, reason: str, organisation: str | None = None) -> None:
    """Hand `t` to `group` by email (when it has an address), in the ticket's language."""
    if not group.email:
        return
    tx = _texts(t)
    subject = f"[{number}] {tx['assigned'] if group.kind == 'internal' else tx['request']}: {(t.value('asset') or t.value('anomaly') or '')[:80]}".rstrip(": ")
    text = (
        tx["hands"].format(group=group.name, level="I" * group.level, reason=reason) + "\n\n"
        + ticket_summary(t, number, organisation) + "\n\n" + tx["reply"].format(n=number) + "\n"
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
    tx = _texts(t)
    level = "breached" if any(a[0] == "breached" for a in alerts) else "warning"
    lines = "\n".join(
        f"- {tx['sla_target'].get(target, target)}: {tx['sla_level'].get(lv, lv)}, {tx['due']} {due[:16].replace('T', ' ')} UTC"
        for lv, target, due in alerts
    )
    subject = f"[{number}] {tx['sla_subject'][level]}"
    text = f"{tx['sla_intro'].format(n=number, group=group.name)}\n{lines}\n\n{ticket_summary(t, number)}\n"
    _enqueue(s, kind=NOTIFICATION, to=group.email, subject=subject, text=text, ticket_id=t.id, headers={"Auto-Submitted": "auto-generated"})
