"""Knowledge at the moment of the call, in a real Chromium (issue 13, Must show).

A supervisor writes a workaround in the desk and publishes it. A call comes in: the caller's recordings go
into the blob store with their transcription jobs, as the voice channel delivers them, and a worker's results
land through the job queue. The suggestion worker (the real background pass after the commit) ranks the
article for the new ticket. An operator logs in, opens the call's ticket, sees the workaround, sends it to the
caller with one click (through the durable outbox to the real email channel's relay, a collecting SMTP sink),
resolves the ticket, turns the resolution into a draft article, and opens the reports page with its charts.

Screenshots go to the test's tmp dir, with copies in /tmp/kbdesk-shots/ (and artifacts/) for a person to look at.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.test_web_mail import mail_core, sink  # noqa: F401  (fixtures)
from tests.test_web_support import ARTIFACTS, OPERATOR, PASSWORD, chromium, login, web_factory  # noqa: F401  (fixtures)
from tests.test_web_a11y import axe, serious  # noqa: F401  (fixture)
from tests.test_web_ticket_page import poll

DATA = Path(__file__).parent / "data" / "stt"
SHOTS = Path("/tmp/kbdesk-shots")
SUPERVISOR = "sara.capo"
CALLER = "+39 055 438 2101"  # Mario Rossi in the sample directory, with his email address
SOLUTION = "Aprire lo sportello frontale, togliere la cartuccia del toner, agitarla e reinserirla; poi stampare una pagina di prova."


def off_loop(coroutine) -> None:
    """Run a service's start/stop where Playwright's sync API (an event loop of its own) is not."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coroutine).result()


def call(core, call_id: str, answers: dict[str, tuple[str, str]]) -> str:
    """A call as the voice channel delivers it: one recording per answer in the blob store, each with its
    transcription job; then each job completed through the job queue with the words a worker heard."""
    from ticketing.contact import Attachment, Channel, Contact, Sender
    from ticketing.transcription import JobQueue, Recognised

    attachments = [Attachment(f"answer-{q}.wav", "audio/wav", core.blobs.put((DATA / wav).read_bytes()), kind="recording", question=q)
                   for q, (wav, _) in answers.items()]
    result = core.intake.submit(Contact(Channel.VOICE, call_id, sender=Sender(phone=CALLER), language="it", attachments=tuple(attachments)))
    queue = JobQueue(core.sessions, core.lifecycle, core.intake.directory.get)
    heard = {a.blob.sha256: answers[a.question][1] for a in attachments}
    while heard:
        claim = queue.claim("story-worker")
        assert claim is not None, "a recording without its transcription job"
        text = heard.pop(claim.blob_sha256)
        words = [{"word": w, "confidence": 0.9, "start": i * 0.4, "end": i * 0.4 + 0.35} for i, w in enumerate(text.split())]
        assert queue.complete(claim, Recognised(text, 0.9, "vosk", "small-it", words))
    return result.ticket_number


def test_an_operator_sends_the_suggested_workaround_to_a_caller_resolves_and_reads_the_reports(mail_core, sink, web_factory, chromium, axe, tmp_path):  # noqa: F811
    from ticketing.suggestions import SuggestionWorker

    web = web_factory(mail_core)
    web.desk.accounts.add(SUPERVISOR, "Sara Capo", PASSWORD, role="supervisor")
    worker = SuggestionWorker(mail_core.sessions, mail_core.config.ticketing.number_prefix, seconds=0.2)
    off_loop(worker.start())
    shots: list[Path] = []

    def shot(page, name: str) -> None:
        path = tmp_path / name
        page.screenshot(path=str(path), full_page=True)
        shots.append(path)

    try:
        # 1. A supervisor writes the workaround in the desk and publishes it.
        boss = chromium.new_context(locale="it-IT", viewport={"width": 1280, "height": 900})
        page = boss.new_page()
        login(page, web.url, SUPERVISOR)
        page.click("#articles-link")
        page.click("#kb-new")
        page.fill("#kb-f-title", "La stampante stampa pagine bianche")
        page.fill("#kb-f-symptom", "La stampante esce fogli bianchi: il toner è esaurito o mal inserito.")
        page.fill("#kb-f-solution", SOLUTION)
        page.fill("#kb-f-assets", "PRN-0305")
        page.check("#kb-kind-hardware")
        page.select_option("#kb-f-status", "published")
        shot(page, "1-article-editor.png")
        page.click("#kb-save")
        page.wait_for_url(re.compile(r"/desk/articles/\d+\?done=created"))
        assert page.locator("#kb-status").get_attribute("data-status") == "published"
        page.wait_for_selector("#kb-done")
        assert page.locator("#kb-versions tbody tr").count() == 1
        shot(page, "2-article-published.png")
        boss.close()

        # 2. The call: the caller names the tax office's printer and says what it does.
        number = call(mail_core, "story-call-1", {
            "asset": ("it_stampante.wav", "la stampante dell'ufficio tributi"),
            "anomaly": ("en_payroll.wav", "la stampante stampa solo pagine bianche da stamattina"),
        })

        # 3. An operator opens it from the queue and sees the workaround the worker found after the commit.
        desk = chromium.new_context(locale="it-IT", viewport={"width": 1280, "height": 900})
        page = desk.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        login(page, web.url)
        page.click(f"a:has-text('{number}')")
        page.wait_for_url(f"**/desk/tickets/{number}")
        assert page.locator("#t-status").get_attribute("data-status") == "new"

        def suggested() -> bool:
            page.reload()
            return page.locator("#suggestions li.article").count() > 0

        assert poll(suggested, 15), "no suggestion on the call's ticket"
        first = page.locator("#suggestions li.suggestion").first
        assert "La stampante stampa pagine bianche" in first.inner_text()
        assert "pagine bianche" in page.locator('tr[data-field="anomaly"] td.value').inner_text()  # the transcript made the anomaly
        assert page.locator("#reply-to").inner_text() == "mario.rossi@regione.example.it"
        assert page.locator("#suggestions li.article .kb-detail").first.is_visible()  # the best workaround is open
        shot(page, "3-call-ticket-suggestion.png")

        # 4. One click sends it, through the outbox, to the caller's address.
        before = len(sink.received)
        page.locator("#suggestions li.article .do-send-workaround").first.click()
        page.wait_for_selector("#action-done")
        workaround = lambda: [m for m in sink.received[before:] if "toner" in m.message.get_content()]  # noqa: E731  (not an acknowledgement)
        assert poll(workaround, 15), "the workaround never reached the relay"
        sent = workaround()[0]
        assert sent.rcpt_tos == ["mario.rossi@regione.example.it"]
        assert SOLUTION in " ".join(sent.message.get_content().split()) and number in sent.message["subject"]
        assert page.locator("article.message.out").count() >= 1  # the reply is in the ticket's messages

        # 5. Resolved with a report.
        page.fill("#resolve-text", "Inviata la procedura per il toner: l'utente conferma che la stampante funziona.")
        page.click("#do-resolve")
        page.wait_for_url(re.compile(r"done=resolve"))
        assert page.locator("#t-status").get_attribute("data-status") == "resolved"
        assert page.locator("#suggestions .do-send-workaround").count() == 0  # nothing to send on a resolved ticket
        shot(page, "4-call-ticket-resolved.png")

        # 6. The resolution becomes a draft article, pre-filled from the ticket.
        page.click("#to-article")
        page.wait_for_url("**/desk/articles/new?ticket=*")
        assert page.locator("#kb-f-assets").input_value() == "PRN-0305"
        assert "pagine bianche" in page.locator("#kb-f-symptom").input_value()
        assert "toner" in page.locator("#kb-f-solution").input_value()
        assert page.locator("#kb-kind-hardware").is_checked() and page.locator("#kb-f-status").count() == 0  # an operator drafts
        shot(page, "5-article-from-ticket.png")
        page.click("#kb-save")
        page.wait_for_url(re.compile(r"/desk/articles/\d+\?done=created"))
        assert page.locator("#kb-status").get_attribute("data-status") == "draft"
        assert page.locator("#kb-source").inner_text() == number

        # 7. The reports page with its charts.
        page.click("#reports-link")
        page.wait_for_url("**/desk/reports**")
        for chart in ("chart-contacts", "chart-sla-respond", "chart-sla-resolve", "chart-backlog", "chart-assets"):
            assert page.locator(f"#{chart} svg").count() == 1, chart
        assert page.locator("#chart-contacts svg title").count() >= 1  # today's call is counted
        shot(page, "6-reports.png")
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, overflow
        assert dialogs == []
        desk.close()

        # 8. The knowledge pages on a phone: nothing wider than the screen.
        phone = chromium.new_context(locale="it-IT", viewport={"width": 390, "height": 844})
        page = phone.new_page()
        login(page, web.url)
        for url, name in (("/desk/articles", "7-articles-phone.png"), ("/desk/articles/1", "8-article-phone.png")):
            page.goto(web.url + url)
            shot(page, name)
            assert page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth") <= 1, url
        # and no serious or critical WCAG 2.1 A/AA violation (axe-core, as tests/test_web_a11y.py checks the others)
        for url in ("/desk/articles", "/desk/articles/1", "/desk/articles/new", f"/desk/articles/new?ticket={number}"):
            page.goto(web.url + url)
            assert serious(axe, page) == [], url
        phone.close()
    finally:
        off_loop(worker.stop())
        SHOTS.mkdir(exist_ok=True)
        ARTIFACTS.mkdir(exist_ok=True)
        for path in shots:
            shutil.copy(path, SHOTS / path.name)
            shutil.copy(path, ARTIFACTS / f"kb-story-{path.name}")
    assert len(shots) == 8 and all(p.stat().st_size > 10_000 for p in shots)
