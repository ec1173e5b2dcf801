"""Interface texts in Italian (the default) and English, and how a request's language is chosen.

Order: `?lang=` in the address (the visible switch link, remembered in a cookie), the cookie, then the
browser's `Accept-Language` (RFC 9110 §12.5.4, with its q-values), then Italian.

The ticket's coded values (status, level, urgency, channel, the kinds of its history) are shown through
`Texts.status()`, `.level()`, `.urgency()`, `.channel()`, `.event()`; a value without a text shows as it is.
"""

from __future__ import annotations

LANGUAGES = ("it", "en")
DEFAULT = "it"
LANG_COOKIE = "hd_lang"

TEXTS: dict[str, dict[str, str]] = {
    "it": {
        "site": "Assistenza informatica",
        "other_lang": "English",
        "skip": "Vai al contenuto",
        "form_title": "Segnala un problema",
        "form_intro": "Compila il modulo: riceverai subito il numero della tua segnalazione. I campi con * sono obbligatori.",
        "name": "Nome e cognome",
        "email": "Email",
        "phone": "Telefono",
        "contact_hint": "Indica almeno l'email o il telefono, per ricevere aggiornamenti.",
        "asset": "Apparecchio o programma interessato",
        "asset_hint": "Ad esempio «stampante tributi», «protocollo informatico» o il codice sull'etichetta (PC-0142).",
        "anomaly": "Descrivi il problema",
        "anomaly_hint": "Cosa succede, da quando, eventuali messaggi di errore.",
        "attachments": "Allegati (facoltativi)",
        "attachments_hint": "Fino a {n} file, massimo {size} ciascuno: {types}.",
        "honeypot": "Lascia vuoto questo campo",
        "submit": "Invia la segnalazione",
        "errors_title": "Correggi i campi indicati:",
        "err_required": "Campo obbligatorio.",
        "err_contact": "Indica l'email o il telefono.",
        "err_email": "Indirizzo email non valido.",
        "err_phone": "Numero di telefono non valido.",
        "err_too_long": "Testo troppo lungo (massimo {n} caratteri).",
        "err_too_many_files": "Troppi allegati (massimo {n}).",
        "err_file_size": "Il file «{name}» supera il limite di {size}.",
        "err_file_type": "Il file «{name}» è di un tipo non accettato ({type}). Tipi accettati: {types}.",
        "thanks_title": "Segnalazione ricevuta",
        "thanks_number": "Il numero della tua segnalazione è",
        "thanks_keep": "Conservalo: ti servirà per controllare lo stato della segnalazione.",
        "thanks_email": "Riceverai una conferma all'indirizzo {email}.",
        "thanks_generic": "Grazie, la tua segnalazione è stata ricevuta.",
        "new_report": "Nuova segnalazione",
        "status_title": "Stato di una segnalazione",
        "status_intro": "Inserisci il numero della segnalazione e l'email o il telefono usati per inviarla.",
        "number": "Numero della segnalazione",
        "contact": "Email o telefono",
        "status_submit": "Controlla",
        "status_not_found": "Nessuna segnalazione trovata con questi dati. Controlla il numero e l'email o il telefono.",
        "status_status": "Stato",
        "status_level": "Livello di assistenza",
        "status_last": "Ultimo aggiornamento",
        "status_created": "Aperta il",
        "check_status": "Controlla lo stato di una segnalazione",
        "st_new": "Ricevuta, in attesa di presa in carico",
        "st_in_progress": "In lavorazione",
        "st_waiting": "In attesa",
        "st_resolved": "Risolta",
        "st_closed": "Chiusa",
        "ev_created": "segnalazione ricevuta",
        "ev_taken": "presa in carico",
        "ev_escalated": "passata al livello successivo",
        "ev_resolved": "risolta",
        "ev_closed": "chiusa",
        "ev_reopened": "riaperta",
        "ev_message_added": "nuovo messaggio ricevuto",
        "ev_message_sent": "risposta inviata",
        "ev_status_changed": "stato aggiornato",
        "too_many": "Troppe richieste. Riprova tra {n} secondi.",
        "forbidden": "Il modulo è scaduto o non è valido. Ricarica la pagina e riprova.",
        "form_expired": "Il modulo era scaduto e non è stato inviato. Il testo è qui sotto: controllalo e invialo di nuovo.",
        "err_storage_full": "Il servizio non può salvare nuove segnalazioni in questo momento: nulla è stato registrato. Riprova tra qualche minuto.",
        "reattach": "Gli allegati vanno scelti di nuovo.",
        "too_large": "La richiesta è troppo grande.",
        "error": "Si è verificato un errore. Riprova più tardi.",
        "not_found": "Pagina non trovata.",
        # Coded values of a ticket, as the desk shows them.
        "status_new": "Nuovo",
        "status_in_progress": "In lavorazione",
        "status_waiting": "In attesa",
        "status_resolved": "Risolto",
        "status_closed": "Chiuso",
        "status_open": "Aperti (nuovi, in lavorazione, in attesa)",
        "status_all": "Tutti",
        "level_1": "I livello",
        "level_2": "II livello",
        "level_3": "III livello",
        "urgency_low": "Bassa",
        "urgency_normal": "Normale",
        "urgency_high": "Alta",
        "urgency_critical": "Critica",
        "channel_email": "Email",
        "channel_voice": "Telefono",
        "channel_web": "Web",
        "event_created": "Ricevuto",
        "event_taken": "Preso in carico",
        "event_escalated": "Passato al livello successivo",
        "event_resolved": "Risolto",
        "event_closed": "Chiuso",
        "event_reopened": "Riaperto",
        "event_status_changed": "Stato cambiato",
        "event_field_changed": "Campo modificato",
        "event_note": "Nota",
        "event_message_added": "Nuovo messaggio",
        "event_message_sent": "Messaggio inviato",
        "event_delivery_problem": "Problema di consegna",
        "event_transcribed": "Registrazione trascritta",
        "event_transcription_failed": "Trascrizione non riuscita",
        "all": "tutti",
        # The desk's ticket page.
        "t_status": "Stato",
        "t_level": "Livello",
        "t_urgency": "Urgenza",
        "t_assignee": "Assegnato a",
        "t_channel": "Canale",
        "t_received": "Ricevuto",
        "t_respond_by": "Risposta entro",
        "t_resolve_by": "Risoluzione entro",
        "escalate_to": "Passa al {level}",
        "reply_title": "Rispondi all'utente per email",
        "reply_to": "A",
        "reply_no_address": "Nessun indirizzo email noto per chi ha fatto la segnalazione: non si può rispondere per email.",
        "reply_mail_off": "Il canale email è spento: le risposte per email non si possono inviare.",
        "reply_text": "Testo della risposta",
        "reply_send": "Invia la risposta",
        "reply_empty": "Scrivi il testo della risposta.",
        "reply_subject": "Aggiornamento sulla sua segnalazione",
        "done_take": "Ticket preso in carico.",
        "done_escalate": "Ticket passato al livello successivo.",
        "done_resolve": "Ticket risolto.",
        "done_close": "Ticket chiuso.",
        "done_reopen": "Ticket riaperto.",
        "done_note": "Nota aggiunta.",
        "done_field": "Campo modificato.",
        "done_reply": "Risposta inviata per email.",
    },
    "en": {
        "site": "IT service desk",
        "other_lang": "Italiano",
        "skip": "Skip to content",
        "form_title": "Report a problem",
        "form_intro": "Fill in the form: you will get your ticket number straight away. Fields marked * are required.",
        "name": "Full name",
        "email": "Email",
        "phone": "Phone",
        "contact_hint": "Give at least your email or your phone, to receive updates.",
        "asset": "Affected equipment or program",
        "asset_hint": "For example “tax office printer”, “protocol register” or the code on the label (PC-0142).",
        "anomaly": "Describe the problem",
        "anomaly_hint": "What happens, since when, any error messages.",
        "attachments": "Attachments (optional)",
        "attachments_hint": "Up to {n} files, at most {size} each: {types}.",
        "honeypot": "Leave this field empty",
        "submit": "Send the report",
        "errors_title": "Please correct these fields:",
        "err_required": "This field is required.",
        "err_contact": "Give your email or your phone.",
        "err_email": "Not a valid email address.",
        "err_phone": "Not a valid phone number.",
        "err_too_long": "Too long (at most {n} characters).",
        "err_too_many_files": "Too many attachments (at most {n}).",
        "err_file_size": "The file “{name}” is over the {size} limit.",
        "err_file_type": "The file “{name}” is of a type we do not accept ({type}). Accepted: {types}.",
        "thanks_title": "Report received",
        "thanks_number": "Your ticket number is",
        "thanks_keep": "Keep it: you need it to check on your report.",
        "thanks_email": "A confirmation will be sent to {email}.",
        "thanks_generic": "Thank you, your report was received.",
        "new_report": "New report",
        "status_title": "Status of a report",
        "status_intro": "Enter the ticket number and the email or phone you reported with.",
        "number": "Ticket number",
        "contact": "Email or phone",
        "status_submit": "Check",
        "status_not_found": "No report found with these details. Check the number and the email or phone.",
        "status_status": "Status",
        "status_level": "Support level",
        "status_last": "Last update",
        "status_created": "Opened on",
        "check_status": "Check the status of a report",
        "st_new": "Received, waiting to be taken",
        "st_in_progress": "In progress",
        "st_waiting": "Waiting",
        "st_resolved": "Resolved",
        "st_closed": "Closed",
        "ev_created": "report received",
        "ev_taken": "taken by an operator",
        "ev_escalated": "passed to the next level",
        "ev_resolved": "resolved",
        "ev_closed": "closed",
        "ev_reopened": "reopened",
        "ev_message_added": "new message received",
        "ev_message_sent": "reply sent",
        "ev_status_changed": "status updated",
        "too_many": "Too many requests. Try again in {n} seconds.",
        "forbidden": "The form has expired or is not valid. Reload the page and try again.",
        "form_expired": "The form had expired and was not sent. Your text is below: check it and send it again.",
        "err_storage_full": "The service cannot store new reports right now: nothing was recorded. Please try again in a few minutes.",
        "reattach": "Attachments need to be chosen again.",
        "too_large": "The request is too large.",
        "error": "Something went wrong. Please try again later.",
        "not_found": "Page not found.",
        "status_new": "New",
        "status_in_progress": "In progress",
        "status_waiting": "Waiting",
        "status_resolved": "Resolved",
        "status_closed": "Closed",
        "status_open": "Open (new, in progress, waiting)",
        "status_all": "All",
        "level_1": "Level I",
        "level_2": "Level II",
        "level_3": "Level III",
        "urgency_low": "Low",
        "urgency_normal": "Normal",
        "urgency_high": "High",
        "urgency_critical": "Critical",
        "channel_email": "Email",
        "channel_voice": "Phone",
        "channel_web": "Web",
        "event_created": "Received",
        "event_taken": "Taken",
        "event_escalated": "Escalated",
        "event_resolved": "Resolved",
        "event_closed": "Closed",
        "event_reopened": "Reopened",
        "event_status_changed": "Status changed",
        "event_field_changed": "Field edited",
        "event_note": "Note",
        "event_message_added": "New message",
        "event_message_sent": "Message sent",
        "event_delivery_problem": "Delivery problem",
        "event_transcribed": "Recording transcribed",
        "event_transcription_failed": "Transcription failed",
        "all": "all",
        "t_status": "Status",
        "t_level": "Level",
        "t_urgency": "Urgency",
        "t_assignee": "Assigned to",
        "t_channel": "Channel",
        "t_received": "Received",
        "t_respond_by": "Respond by",
        "t_resolve_by": "Resolve by",
        "escalate_to": "Escalate to {level}",
        "reply_title": "Reply to the user by email",
        "reply_to": "To",
        "reply_no_address": "No email address is known for the reporter: a reply by email cannot be sent.",
        "reply_mail_off": "The email channel is off: replies by email cannot be sent.",
        "reply_text": "Text of the reply",
        "reply_send": "Send the reply",
        "reply_empty": "Write the text of the reply.",
        "reply_subject": "Update on your request",
        "done_take": "Ticket taken.",
        "done_escalate": "Ticket escalated to the next level.",
        "done_resolve": "Ticket resolved.",
        "done_close": "Ticket closed.",
        "done_reopen": "Ticket reopened.",
        "done_note": "Note added.",
        "done_field": "Field edited.",
        "done_reply": "Reply sent by email.",
    },
}


def pick_language(query_lang: str | None, cookie_lang: str | None, accept_language: str | None) -> str:
    for lang in (query_lang, cookie_lang):
        if lang in LANGUAGES:
            return lang
    best, best_q = DEFAULT, 0.0
    for part in (accept_language or "").split(",")[:20]:
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and q > best_q:
            best, best_q = primary, q
    return best


class Texts:
    """The texts of one language; `t("key", n=3)` formats, an unknown key shows itself (never a crash)."""

    def __init__(self, lang: str):
        self.lang = lang if lang in LANGUAGES else DEFAULT
        self._texts = TEXTS[self.lang]

    def __call__(self, key: str, **kw) -> str:
        text = self._texts.get(key) or TEXTS[DEFAULT].get(key) or key
        return text.format(**kw) if kw else text

    def _coded(self, prefix: str, value) -> str:
        return self._texts.get(f"{prefix}{value}") or ("—" if value is None else str(value))

    def status(self, status: str) -> str:
        return self._coded("status_", status)

    def level(self, level: int) -> str:
        return self._coded("level_", level)

    def urgency(self, urgency: str) -> str:
        return self._coded("urgency_", urgency)

    def channel(self, channel: str) -> str:
        return self._coded("channel_", channel)

    def event(self, kind: str) -> str:
        return self._coded("event_", kind)
