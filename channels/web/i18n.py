"""Interface texts in Italian (the default), French and English, and how a request's language is chosen.

Order: `?lang=` in the address (the visible switch link, remembered in a cookie), the cookie, then the
browser's `Accept-Language` (RFC 9110 §12.5.4, with its q-values), then Italian.

The ticket's coded values (status, level, urgency, channel, the kinds of its history) are shown through
`Texts.status()`, `.level()`, `.urgency()`, `.channel()`, `.event()`; a value without a text shows as it is.
"""

from __future__ import annotations

LANGUAGES = ("it", "fr", "en")
LANGUAGE_NAMES = {"it": "Italiano", "fr": "Français", "en": "English"}  # each in its own language, for the switch
DEFAULT = "it"
LANG_COOKIE = "hd_lang"

TEXTS: dict[str, dict[str, str]] = {
    "it": {
        "site": "Assistenza informatica",
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
        "thanks_pin": "Per conoscere lo stato per telefono da qualsiasi numero, il PIN è {pin}.",
        "status_report": "Cosa è stato fatto",
        "status_question": "Ci serve una sua risposta",
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
        "event_mail_queued": "Email in coda",
        "event_mail_sent": "Email inviata",
        "event_mail_waiting": "Email non ancora inviata",
        "event_mail_failed": "Email rifiutata dal server di posta",
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
        "kb_suggestions": "Soluzioni possibili",
        "kb_article": "Articolo",
        "kb_ticket": "Ticket risolto",
        "kb_workaround": "Soluzione",
        "kb_report": "Resoconto",
        "kb_send": "Invia questa soluzione all'utente per email",
        "done_take": "Ticket preso in carico.",
        "done_wait": "Ticket in attesa: l'orologio SLA è fermo.",
        "done_resume": "Ticket ripreso: l'orologio SLA riparte.",
        "done_assign": "Ticket assegnato.",
        "t_organisation": "Organizzazione",
        "t_group": "Gruppo",
        "sla_breached": "SLA violato",
        "sla_warning": "SLA in scadenza",
        "sla_paused": "SLA in pausa",
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
        "thanks_pin": "To hear its status by phone from any line, the PIN is {pin}.",
        "status_report": "What was done",
        "status_question": "We need your answer",
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
        "event_mail_queued": "Email queued",
        "event_mail_sent": "Email sent",
        "event_mail_waiting": "Email not sent yet",
        "event_mail_failed": "Email refused by the mail relay",
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
        "kb_suggestions": "Possible solutions",
        "kb_article": "Article",
        "kb_ticket": "Resolved ticket",
        "kb_workaround": "Workaround",
        "kb_report": "Resolution report",
        "kb_send": "Send this workaround to the user by email",
        "done_take": "Ticket taken.",
        "done_wait": "Ticket waiting: the SLA clock is paused.",
        "done_resume": "Ticket resumed: the SLA clock runs again.",
        "done_assign": "Ticket assigned.",
        "t_organisation": "Organisation",
        "t_group": "Group",
        "sla_breached": "SLA breached",
        "sla_warning": "SLA due soon",
        "sla_paused": "SLA paused",
        "done_escalate": "Ticket escalated to the next level.",
        "done_resolve": "Ticket resolved.",
        "done_close": "Ticket closed.",
        "done_reopen": "Ticket reopened.",
        "done_note": "Note added.",
        "done_field": "Field edited.",
        "done_reply": "Reply sent by email.",
    },
    "fr": {
        "site": "Assistance informatique",
        "skip": "Aller au contenu",
        "form_title": "Signaler un problème",
        "form_intro": "Remplissez le formulaire : vous recevrez tout de suite le numéro de votre signalement. Les champs marqués * sont obligatoires.",
        "name": "Prénom et nom",
        "email": "Courriel",
        "phone": "Téléphone",
        "contact_hint": "Indiquez au moins votre courriel ou votre téléphone, pour recevoir des nouvelles.",
        "asset": "Appareil ou logiciel concerné",
        "asset_hint": "Par exemple « imprimante des impôts », « registre du protocole » ou le code sur l'étiquette (PC-0142).",
        "anomaly": "Décrivez le problème",
        "anomaly_hint": "Ce qui se passe, depuis quand, les éventuels messages d'erreur.",
        "attachments": "Pièces jointes (facultatives)",
        "attachments_hint": "Jusqu'à {n} fichiers, au plus {size} chacun : {types}.",
        "honeypot": "Laissez ce champ vide",
        "submit": "Envoyer le signalement",
        "errors_title": "Corrigez les champs indiqués :",
        "err_required": "Champ obligatoire.",
        "err_contact": "Indiquez votre courriel ou votre téléphone.",
        "err_email": "Adresse de courriel non valide.",
        "err_phone": "Numéro de téléphone non valide.",
        "err_too_long": "Texte trop long ({n} caractères au plus).",
        "err_too_many_files": "Trop de pièces jointes ({n} au plus).",
        "err_file_size": "Le fichier « {name} » dépasse la limite de {size}.",
        "err_file_type": "Le fichier « {name} » est d'un type non accepté ({type}). Types acceptés : {types}.",
        "thanks_title": "Signalement reçu",
        "thanks_number": "Le numéro de votre signalement est",
        "thanks_keep": "Conservez-le : il vous servira à suivre l'état de votre signalement.",
        "thanks_pin": "Pour connaître son état par téléphone depuis n'importe quelle ligne, le code PIN est {pin}.",
        "status_report": "Ce qui a été fait",
        "status_question": "Nous avons besoin de votre réponse",
        "thanks_email": "Une confirmation sera envoyée à {email}.",
        "thanks_generic": "Merci, votre signalement a été reçu.",
        "new_report": "Nouveau signalement",
        "status_title": "État d'un signalement",
        "status_intro": "Saisissez le numéro du signalement et le courriel ou le téléphone utilisés pour l'envoyer.",
        "number": "Numéro du signalement",
        "contact": "Courriel ou téléphone",
        "status_submit": "Vérifier",
        "status_not_found": "Aucun signalement trouvé avec ces données. Vérifiez le numéro et le courriel ou le téléphone.",
        "status_status": "État",
        "status_level": "Niveau d'assistance",
        "status_last": "Dernière mise à jour",
        "status_created": "Ouvert le",
        "check_status": "Vérifier l'état d'un signalement",
        "st_new": "Reçu, en attente de prise en charge",
        "st_in_progress": "En cours de traitement",
        "st_waiting": "En attente",
        "st_resolved": "Résolu",
        "st_closed": "Clos",
        "ev_created": "signalement reçu",
        "ev_taken": "pris en charge",
        "ev_escalated": "transmis au niveau supérieur",
        "ev_resolved": "résolu",
        "ev_closed": "clos",
        "ev_reopened": "rouvert",
        "ev_message_added": "nouveau message reçu",
        "ev_message_sent": "réponse envoyée",
        "ev_status_changed": "état mis à jour",
        "too_many": "Trop de demandes. Réessayez dans {n} secondes.",
        "forbidden": "Le formulaire a expiré ou n'est pas valide. Rechargez la page et réessayez.",
        "form_expired": "Le formulaire avait expiré et n'a pas été envoyé. Votre texte est ci-dessous : vérifiez-le et envoyez-le de nouveau.",
        "err_storage_full": "Le service ne peut pas enregistrer de nouveaux signalements pour le moment : rien n'a été enregistré. Réessayez dans quelques minutes.",
        "reattach": "Les pièces jointes doivent être choisies de nouveau.",
        "too_large": "La demande est trop volumineuse.",
        "error": "Une erreur s'est produite. Réessayez plus tard.",
        "not_found": "Page introuvable.",
        "status_new": "Nouveau",
        "status_in_progress": "En cours",
        "status_waiting": "En attente",
        "status_resolved": "Résolu",
        "status_closed": "Clos",
        "status_open": "Ouverts (nouveaux, en cours, en attente)",
        "status_all": "Tous",
        "level_1": "Niveau I",
        "level_2": "Niveau II",
        "level_3": "Niveau III",
        "urgency_low": "Basse",
        "urgency_normal": "Normale",
        "urgency_high": "Haute",
        "urgency_critical": "Critique",
        "channel_email": "Courriel",
        "channel_voice": "Téléphone",
        "channel_web": "Web",
        "event_created": "Reçu",
        "event_taken": "Pris en charge",
        "event_escalated": "Transmis au niveau supérieur",
        "event_resolved": "Résolu",
        "event_closed": "Clos",
        "event_reopened": "Rouvert",
        "event_status_changed": "État modifié",
        "event_field_changed": "Champ modifié",
        "event_note": "Note",
        "event_message_added": "Nouveau message",
        "event_message_sent": "Message envoyé",
        "event_delivery_problem": "Problème de distribution",
        "event_mail_queued": "Courriel en file d'attente",
        "event_mail_sent": "Courriel envoyé",
        "event_mail_waiting": "Courriel pas encore envoyé",
        "event_mail_failed": "Courriel refusé par le relais",
        "event_transcribed": "Enregistrement transcrit",
        "event_transcription_failed": "Transcription échouée",
        "all": "tous",
        "t_status": "État",
        "t_level": "Niveau",
        "t_urgency": "Urgence",
        "t_assignee": "Attribué à",
        "t_channel": "Canal",
        "t_received": "Reçu",
        "t_respond_by": "Réponse avant le",
        "t_resolve_by": "Résolution avant le",
        "escalate_to": "Transmettre au {level}",
        "reply_title": "Répondre à l'utilisateur par courriel",
        "reply_to": "À",
        "reply_no_address": "Aucune adresse de courriel n'est connue pour l'auteur du signalement : impossible de répondre par courriel.",
        "reply_mail_off": "Le canal courriel est désactivé : les réponses par courriel ne peuvent pas être envoyées.",
        "reply_text": "Texte de la réponse",
        "reply_send": "Envoyer la réponse",
        "reply_empty": "Écrivez le texte de la réponse.",
        "reply_subject": "Nouvelles de votre demande",
        "kb_suggestions": "Solutions possibles",
        "kb_article": "Article",
        "kb_ticket": "Ticket résolu",
        "kb_workaround": "Contournement",
        "kb_report": "Compte rendu",
        "kb_send": "Envoyer cette solution à l'utilisateur par courriel",
        "done_take": "Ticket pris en charge.",
        "done_wait": "Ticket en attente : l'horloge SLA est arrêtée.",
        "done_resume": "Ticket repris : l'horloge SLA repart.",
        "done_assign": "Ticket attribué.",
        "t_organisation": "Organisation",
        "t_group": "Groupe",
        "sla_breached": "SLA dépassé",
        "sla_warning": "SLA bientôt échu",
        "sla_paused": "SLA en pause",
        "done_escalate": "Ticket transmis au niveau supérieur.",
        "done_resolve": "Ticket résolu.",
        "done_close": "Ticket clos.",
        "done_reopen": "Ticket rouvert.",
        "done_note": "Note ajoutée.",
        "done_field": "Champ modifié.",
        "done_reply": "Réponse envoyée par courriel.",
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

    def others(self) -> list[tuple[str, str]]:
        """The other languages as (code, name in that language): the page's language switch."""
        return [(code, LANGUAGE_NAMES[code]) for code in LANGUAGES if code != self.lang]

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

    # The desk's coded values and events (tables in `desk_texts.py`).
    def field(self, name: str) -> str:
        return desk_texts.field_label(self, name)

    def source(self, source: str | None) -> str:
        return desk_texts.source_label(self, source)

    def value(self, name: str, value: str | None) -> str:
        return desk_texts.field_value(self, name, value)

    def question(self, question: str | None) -> str:
        return desk_texts.question_label(self, question)

    def criticality(self, value: str | None) -> str:
        return self._coded("criticality_", value)

    def kind(self, value: str | None) -> str:
        return self._coded("kind_", value)

    def span(self, minutes: int) -> str:
        """A duration as the desk says it: days and hours past a day, else hours and minutes."""
        d, rest = divmod(max(0, int(minutes)), 1440)
        return self("span_days", d=d, h=rest // 60) if d else self("span_hours", h=rest // 60, m=rest % 60)

    def sentence(self, kind: str, data: dict) -> str:
        return desk_texts.event_sentence(self, kind, data)


from . import desk_texts  # noqa: E402  (the desk's tables, merged into each language's texts)

for _lang, _texts in desk_texts.DESK_TEXTS.items():
    TEXTS[_lang].update({k: v for k, v in _texts.items() if k not in TEXTS[_lang]})
