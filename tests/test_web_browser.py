"""The web channel in a real browser: Debian's Chromium driven by Playwright against uvicorn on loopback.

Users report in Italian and in English and see their number, check the status right and wrong; an operator
logs in, finds the ticket in the queue, escalates it I→II→III and resolves it with a report. The service desk
story (issue 12): a level I operator escalates to level II, the asset's group's specialist finds it in their
queue, sets it waiting with a question, the user's reply resumes it, the specialist resolves, and the user's
/status shows the report. Screenshots are saved in artifacts/.
"""

from __future__ import annotations

import re

from tests.test_web_support import chromium, login, page, shot, web_factory  # noqa: F401  (fixtures)

NUMBER = re.compile(r"[A-Z]{2,5}-\d{4}-\d{6,}")


def fill_report(page, name, email, asset, anomaly):
    page.get_by_label(re.compile(r"^(Nome e cognome|Full name)")).fill(name)
    page.locator("#email").fill(email)
    page.locator("#asset").fill(asset)
    page.locator("#anomaly").fill(anomaly)


def test_report_in_italian_and_in_english_and_check_the_status(sqlite_core, web_factory, page):
    web = web_factory(sqlite_core)  # default settings: Secure cookies (Chromium keeps them on http://127.0.0.1)
    page.goto(web.url + "/")
    assert page.locator("h1").inner_text() == "Segnala un problema"
    fill_report(page, "Giulia Bianchi", "giulia.bianchi@regione.example.it", "protocollo informatico",
                "Il protocollo informatico dà errore 500 quando registro un documento in entrata.")
    form = shot(page, "web-form.png")
    assert form.stat().st_size > 10_000
    page.get_by_role("button", name="Invia la segnalazione").click()
    number_it = page.locator("#ticket-number").inner_text()
    assert NUMBER.fullmatch(number_it)
    assert "Il numero della tua segnalazione è" in page.content()

    # English, by the visible link, and by keyboard only.
    page.goto(web.url + "/")
    page.get_by_role("link", name="English").click()
    assert page.locator("h1").inner_text() == "Report a problem"
    page.locator("#name").focus()
    page.keyboard.type("John Smith")
    page.keyboard.press("Tab")
    page.keyboard.type("john.smith@example.org")
    page.keyboard.press("Tab")  # phone
    page.keyboard.press("Tab")  # asset
    page.keyboard.type("tax office printer PRN-TRIB-02")
    page.keyboard.press("Tab")
    page.keyboard.type("It prints blank pages since this morning.")
    page.keyboard.press("Tab")  # the "urgent" box, left unticked
    page.keyboard.press("Tab")  # attachments
    page.keyboard.press("Tab")  # the honeypot is skipped: the send button
    assert page.evaluate("document.activeElement.type") == "submit"
    page.keyboard.press("Enter")
    page.wait_for_selector("#ticket-number")
    number_en = page.locator("#ticket-number").inner_text()
    assert NUMBER.fullmatch(number_en) and number_en != number_it
    assert "Your ticket number is" in page.content()
    shot(page, "web-thanks.png")

    # Status: right pair, then a wrong contact.
    page.goto(web.url + "/status?lang=it")
    page.fill("#number", number_it)
    page.fill("#contact", "giulia.bianchi@regione.example.it")
    page.get_by_role("button", name="Controlla").click()
    assert page.locator("#status-value").inner_text() == "Ricevuta, in attesa di presa in carico"
    assert page.locator("#level-value").inner_text() == "I livello"
    page.fill("#number", number_it)
    page.fill("#contact", "john.smith@example.org")
    page.get_by_role("button", name="Controlla").click()
    assert "Nessuna segnalazione trovata" in page.locator("#status-not-found").inner_text()
    assert page.locator("#status-result").count() == 0
    assert page.dialogs == []


def test_form_errors_are_announced_without_javascript(sqlite_core, web_factory, chromium):
    web = web_factory(sqlite_core)
    context = chromium.new_context(java_script_enabled=False, locale="en-GB", viewport={"width": 390, "height": 844})
    p = context.new_page()
    p.goto(web.url + "/")
    p.get_by_role("button", name="Send the report").click()
    assert p.locator("#errors").get_attribute("role") == "alert"
    assert p.locator("#name-error").inner_text() == "This field is required."
    assert p.locator("#name").get_attribute("aria-invalid") == "true"
    # Phone-sized screen: no horizontal scrolling.
    assert p.evaluate("document.documentElement.scrollWidth") <= 390
    context.close()


def test_operator_escalates_through_three_levels_and_resolves(sqlite_core, web_factory, page):
    web = web_factory(sqlite_core)
    web.desk.accounts.set_role("anna.verdi", "supervisor")  # acts at every level
    page.goto(web.url + "/")
    fill_report(page, "Mario Rossi", "mario.rossi@regione.example.it", "contabilità",
                "Non riesco a emettere i mandati di pagamento: errore di connessione al database.")
    page.get_by_role("button", name="Invia la segnalazione").click()
    number = page.locator("#ticket-number").inner_text()

    page.goto(web.url + "/desk/")
    assert "/desk/login" in page.url  # not logged in: sent to the login page
    login(page, web.url)
    row = page.locator("table.queue tbody tr", has_text=number)
    assert row.count() == 1 and "Mario Rossi" in row.inner_text()
    row.get_by_role("link", name=number).click()
    assert page.locator("h1").inner_text() == number

    page.click("#do-take")
    assert page.locator("#t-assignee").inner_text() == "anna.verdi"
    assert page.locator("#t-status").inner_text() == "In lavorazione"  # status and level in words, in the page's language
    for reason, level in (("serve l'amministratore di sistema", "II livello"), ("problema sul server del database", "III livello")):
        page.fill("#escalate-text", reason)
        page.click("#do-escalate")
        assert page.locator("#t-level").inner_text() == level
        assert reason in page.locator("ol.history").inner_text()
    assert page.locator("#do-escalate").count() == 0  # level III is the last one

    page.click("#do-resolve")  # without a report: refused, with the rule's message
    assert "needs a report" in page.locator("#action-error").inner_text()
    page.fill("#resolve-text", "Riavviato il servizio del database; mandati emessi.")
    page.click("#do-resolve")
    assert page.locator("#t-status").inner_text() == "Risolto"
    assert page.locator("#t-status").get_attribute("data-status") == "resolved"
    shot(page, "web-ticket.png")
    assert page.dialogs == []

    # The same page and the queue in English.
    page.goto(f"{web.url}/desk/tickets/{number}?lang=en")
    assert page.locator("#t-status").inner_text() == "Resolved"
    assert page.locator("#t-level").inner_text() == "Level III"
    assert page.locator("ol.history li[data-kind=escalated] .sentence").first.inner_text().startswith("Escalated from level I to level II")
    page.goto(f"{web.url}/desk/?status=all")
    row = page.locator("table.queue tbody tr", has_text=number)
    assert "Resolved" in row.inner_text() and "Level III" in row.inner_text() and "resolved" not in row.inner_text()
    page.goto(f"{web.url}/desk/?lang=it")

    # The reporter sees it resolved at level III.
    page.goto(web.url + "/status")
    page.fill("#number", number)
    page.fill("#contact", "mario.rossi@regione.example.it")
    page.click("button.primary")
    assert page.locator("#status-value").inner_text() == "Risolta"
    assert page.locator("#level-value").inner_text() == "III livello"
    page.goto(web.url + "/status?lang=en")
    page.fill("#number", number)
    page.fill("#contact", "mario.rossi@regione.example.it")
    page.click("button.primary")
    assert page.locator("#status-value").inner_text() == "Resolved"
    assert page.locator("#level-value").inner_text() == "Level III"


def test_the_queue_updates_without_reload(sqlite_core, web_factory, page):
    from ticketing.contact import Channel, Contact, Sender

    web = web_factory(sqlite_core)
    login(page, web.url)
    page.wait_for_selector("#queue-count")
    assert page.locator("#queue-count").inner_text().startswith("0 ticket")
    page.wait_for_timeout(500)  # let the first poll record the state
    web.ctx.intake.deliver(Contact(Channel.EMAIL, "live-1@example.org", sender=Sender("Luca Ferrari", "luca.ferrari@regione.example.it"),
                            subject="Stampante", text="La stampante tributi non stampa."))
    from playwright.sync_api import expect

    expect(page.locator("#queue-count")).to_have_text(re.compile(r"^1 ticket"), timeout=15000)
    assert "Luca Ferrari" in page.locator("#queue").inner_text()


def test_level_one_escalates_the_specialist_waits_the_user_answers_and_status_shows_the_report(sqlite_core, web_factory, page, chromium):
    from ticketing.contact import Channel, Contact, Sender
    from ticketing.groups import set_member

    web = web_factory(sqlite_core)
    web.desk.accounts.add("sara.applicativi", "Sara Applicativi", "password lunga 12", role="specialist")
    set_member(sqlite_core.sessions, "Applicativi", "sara.applicativi")
    # The user reports a problem of the accounting software (CONT-01: level II is the group "Applicativi").
    page.goto(web.url + "/")
    fill_report(page, "Mario Rossi", "mario.rossi@regione.example.it", "contabilità",
                "I mandati di pagamento restano in bozza: il pulsante Emetti non fa nulla.")
    page.get_by_role("button", name="Invia la segnalazione").click()
    number = page.locator("#ticket-number").inner_text()
    assert re.search(r"\d{4}", page.locator("#ticket-pin").inner_text())

    # Level I: Anna takes it, sees the organisation, and escalates it to level II.
    login(page, web.url)
    page.locator("table.queue tbody tr", has_text=number).get_by_role("link", name=number).click()
    assert page.locator("#t-organisation").inner_text() == "Regione"
    page.click("#do-take")
    page.fill("#escalate-text", "Serve l'amministratore della contabilità")
    page.click("#do-escalate")
    assert page.locator("#t-level").inner_text() == "II livello"
    assert page.locator("#t-group").inner_text() == "Applicativi"
    shot(page, "desk-escalated-to-group.png")
    # A level I operator no longer acts on it: the page says why instead of offering the actions.
    assert page.locator("#do-take").count() == 0 and "level I operator" in page.locator("#cannot-act").inner_text()

    # Level II: the group's specialist finds it in their queue, and only their groups' tickets are there.
    other = web.ctx.intake.deliver(Contact(Channel.EMAIL, "<other@x>", sender=Sender("Luca Ferrari", "luca.ferrari@regione.example.it"),
                                           subject="Stampante", text="La stampante tributi non stampa.")).ticket_number
    context = chromium.new_context(locale="it-IT", viewport={"width": 1100, "height": 900})
    sp = context.new_page()
    login(sp, web.url, "sara.applicativi", "password lunga 12")
    queue = sp.locator("#queue").inner_text()
    assert number in queue and other not in queue
    shot(sp, "desk-specialist-queue.png")
    sp.locator("table.queue tbody tr", has_text=number).get_by_role("link", name=number).click()
    sp.click("#do-take")
    sp.fill("#wait-text", "Da quale postazione prova a emettere i mandati?")
    sp.click("#do-wait")
    assert sp.locator("#t-status").get_attribute("data-status") == "waiting"
    assert sp.locator("#t-sla").get_attribute("data-paused") == "true"
    shot(sp, "desk-waiting.png")

    # The user's answer by mail (threaded by the number in the subject) resumes it.
    web.ctx.intake.deliver(Contact(Channel.EMAIL, "<answer@x>", sender=Sender("Mario Rossi", "mario.rossi@regione.example.it"),
                                   subject=f"Re: [{number}] Abbiamo bisogno di lei", text="Dal PC-0142 della ragioneria."))
    sp.reload()
    assert sp.locator("#t-status").get_attribute("data-status") == "in_progress"
    assert sp.locator("#t-sla").get_attribute("data-paused") == "false"
    assert "Dal PC-0142 della ragioneria." in sp.content()
    sp.fill("#resolve-text", "Ripristinati i permessi di emissione del profilo utente.")
    sp.click("#do-resolve")
    assert sp.locator("#t-status").get_attribute("data-status") == "resolved"
    shot(sp, "desk-resolved-by-specialist.png")
    assert page.dialogs == []
    context.close()

    # The user's /status shows how it ended.
    page.goto(web.url + "/status")
    page.fill("#number", number)
    page.fill("#contact", "mario.rossi@regione.example.it")
    page.click("button.primary")
    assert page.locator("#status-value").inner_text() == "Risolta"
    assert page.locator("#status-report").inner_text() == "Ripristinati i permessi di emissione del profilo utente."
    shot(page, "status-with-report.png")
