"""The desk's ticket page as an operator reads it (issue 15): every desk page in Italian, French and English
with no internal field key or raw coded value on screen, the history as sentences (raw data only for
supervisors), each recording beside its transcript with unsure words shaded, and a word that seeks the audio
in a real Chromium."""

from __future__ import annotations

import html
import re
import time
from pathlib import Path

import httpx
import pytest

from tests.test_web_support import OPERATOR, PASSWORD, chromium, form_fields, login, page, web, web_factory  # noqa: F401

DATA = Path(__file__).parent / "data" / "stt"
LANGS = ("it", "fr", "en")


def poll(check, seconds: float = 10.0) -> bool:
    """Polled from Python: the desk's CSP forbids the eval that Playwright's wait_for_function needs."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.1)
    return False


def desk_login(c: httpx.Client, username=OPERATOR, password=PASSWORD) -> None:
    hidden = form_fields(c.get("/desk/login").text)
    assert c.post("/desk/login", data={"username": username, "password": password, **hidden}).status_code == 303


def visible_text(page_html: str) -> str:
    """What the page itself says: no tags, attributes, scripts, the closed raw-data toggle, nor the messages'
    own words (a mail's text is what its writer wrote: the notice mail to a group quotes "Urgency: high")."""
    body = re.sub(r"(?s)<(script|style|details)\b.*?</\1>", " ", page_html)
    body = re.sub(r'(?s)<pre class="text">.*?</pre>', " ", body)
    body = re.sub(r"(?s)<[^>]+>", " ", body)
    return html.unescape(body)


def voice_ticket(web, phone="+39 055 000 0000", call_id=None, words=(("il", 0.95, 0.10, 0.25), ("computer", 0.42, 0.25, 0.80), ("dello", 0.9, 0.80, 1.05), ("sportello", 0.35, 1.05, 1.70))):
    """A call as the voice channel delivers it (the recording in the blob store, a transcription job), and the
    worker's result landing through the job queue, as a transcription worker's does."""
    from ticketing.contact import Attachment, Channel, Contact, Sender
    from ticketing.transcription import JobQueue, Recognised

    wav = (DATA / "it_stampante.wav").read_bytes()
    core = web.core
    att = Attachment("answer-asset.wav", "audio/wav", core.blobs.put(wav), kind="recording", question="asset")
    result = core.intake.submit(Contact(Channel.VOICE, call_id or f"call-{phone}-{len(words)}", sender=Sender(phone=phone), language="it", attachments=(att,)))
    queue = JobQueue(core.sessions, core.lifecycle, core.intake.directory.get)
    claim = queue.claim("test-worker")
    while claim is not None and claim.blob_sha256 != att.blob.sha256:  # an earlier call's job: leave it done
        queue.complete(claim, Recognised("", 0.0, "vosk", "small-it", [], silent=True))
        claim = queue.claim("test-worker")
    assert claim is not None
    text = " ".join(w[0] for w in words)
    assert queue.complete(claim, Recognised(text, 0.66, "vosk", "small-it", [
        {"word": w, "confidence": c, "start": s, "end": e} for w, c, s, e in words
    ]))
    return result.ticket_number, att.blob.sha256


def email_ticket(web):
    from ticketing.contact import Channel, Contact, Sender

    text = "Buongiorno, la stampante dell'ufficio tributi non stampa da stamattina.\n\nMario Rossi\nTel. +39 055 123 4567"
    return web.ctx.intake.deliver(Contact(Channel.EMAIL, "ticket-page@x", sender=Sender(name="Mario Rossi", email="mario.rossi@regione.example.it"),
                                          subject="Stampante bloccata", text=text)).ticket_number


def forbidden_on_screen(lang: str) -> set[str]:
    """Internal names that must never be read: field keys, coded values, unless the language's own words
    spell them ("asset" is Italian office speech, "High" English)."""
    from channels.web.i18n import TEXTS
    from ticketing.extraction import FIELD_NAMES
    from ticketing.lifecycle import STATUSES, URGENCIES

    words = set(FIELD_NAMES) | {"transcript_asset", "transcript_anomaly", "transcript_name", "anomaly", "transcribed", "status_changed"}
    coded = set(URGENCIES) | set(STATUSES) | {"medium", "caller_id", "directory", "header", "signature", "transcript", "inventory"}
    shown = {w for v in TEXTS[lang].values() for w in re.findall(r"[\w-]+", v.lower())}
    # a coded value is allowed only where the language's own words spell it ("email header", "High")
    return {w for w in words | coded if "_" in w or w not in shown}


def test_every_desk_page_in_every_language_shows_no_internal_key_or_raw_value(web):
    from channels.web.i18n import TEXTS

    voice, _ = voice_ticket(web)
    email = email_ticket(web)
    web.desk.take(email, OPERATOR)
    web.desk.set_field(email, OPERATOR, "urgency", "high")
    web.desk.note(email, OPERATOR, "Chiamato l'utente")
    web.desk.escalate(email, OPERATOR, "Serve il tecnico")
    with httpx.Client(base_url=web.url) as c:
        desk_login(c)
        for lang in LANGS:
            pages = {"login": c.get(f"/desk/login?lang={lang}"), "queue": c.get(f"/desk/?lang={lang}"), "email": c.get(f"/desk/tickets/{email}?lang={lang}"),
                     "voice": c.get(f"/desk/tickets/{voice}?lang={lang}"), "rejections": c.get(f"/desk/rejections?lang={lang}"),
                     "search": c.get(f"/desk/search?q=stampante&lang={lang}"), "outbox": c.get(f"/desk/outbox?lang={lang}"),
                     "articles": c.get(f"/desk/articles?lang={lang}"), "reports": c.get(f"/desk/reports?lang={lang}")}
            for name, r in pages.items():
                assert r.status_code == 200, (lang, name)
                assert f'<html lang="{lang}">' in r.text
                seen = visible_text(r.text)
                for word in forbidden_on_screen(lang):
                    assert not re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", seen, re.I if "_" in word else 0), (lang, name, word)
                headings = re.findall(r"(?s)<h[12][^>]*>(.*?)</h[12]>", r.text)
                assert headings and not any(" / " in h for h in headings), (lang, name, headings)
            texts = TEXTS[lang]
            ticket_text = visible_text(pages["email"].text)
            for key in ("h_fields", "h_actions", "h_history", "field_reporter_name", "field_anomaly", "field_urgency", "urgency_high"):
                assert texts[key] in ticket_text, (lang, key)
            assert texts["evs_escalated"].split("{")[0].strip() in ticket_text  # the escalation as a sentence
            assert texts["h_transcripts"] in visible_text(pages["voice"].text)


def test_a_transcription_reads_as_a_sentence_and_its_raw_data_is_for_supervisors(web):
    voice, _ = voice_ticket(web)
    web.desk.accounts.add("sara.capo", "Sara Capo", PASSWORD, role="supervisor")
    with httpx.Client(base_url=web.url) as c:
        desk_login(c)
        r = c.get(f"/desk/tickets/{voice}?lang=it")
        seen = visible_text(r.text)
        assert "Trascrizione della risposta «apparecchio»: il computer dello sportello" in seen
        assert "words" not in r.text and "[[" not in r.text  # no raw JSON for a level I operator
    with httpx.Client(base_url=web.url) as c:
        desk_login(c, "sara.capo")
        r = c.get(f"/desk/tickets/{voice}?lang=fr")
        assert "Transcription de la réponse « équipement » : il computer" in visible_text(r.text)
        raw = re.findall(r"(?s)<details class=\"raw\"><summary>Détails</summary><pre>(.*?)</pre>", r.text)
        assert any('"words"' in d and '"times"' in d for d in raw)  # behind the toggle


def test_each_recording_plays_beside_its_transcript_with_unsure_words_shaded(web):
    voice, sha = voice_ticket(web)
    with httpx.Client(base_url=web.url) as c:
        desk_login(c)
        r = c.get(f"/desk/tickets/{voice}?lang=en")
    fig = re.search(r'(?s)<figure class="recording"[^>]*data-recording="%s">(.*?)</figure>' % sha, r.text)
    assert fig, "the recording's figure"
    assert f'src="/desk/tickets/{voice}/files/{sha}"' in fig.group(1)
    words = re.findall(r'<button type="button" class="word( unsure)?"[^>]*data-start="([\d.]+)"[^>]*>([^<]+)</button>', fig.group(1))
    assert [(w, bool(u), float(s)) for u, s, w in words] == [("il", False, 0.1), ("computer", True, 0.25), ("dello", False, 0.8), ("sportello", True, 1.05)]
    assert 'src="/static/transcript.js"' in r.text


def test_clicking_a_word_seeks_the_recording_to_it(web, page):
    voice, _ = voice_ticket(web, words=(("la", 0.9, 0.2, 0.4), ("stampante", 0.3, 0.9, 1.6), ("tributi", 0.8, 1.7, 2.3)))
    login(page, web.url)
    page.goto(f"{web.url}/desk/tickets/{voice}?lang=it")
    audio = "() => { const a = document.querySelector('figure.recording audio'); return [a.readyState, a.currentTime]; }"
    assert poll(lambda: page.evaluate(audio)[0] >= 1)  # metadata read: the desk serves the recording
    page.click("button.word:has-text('stampante')")  # said from 0.9 s
    assert poll(lambda: abs(page.evaluate(audio)[1] - 0.85) < 0.4), page.evaluate(audio)
    assert page.locator("button.word.playing").inner_text() == "stampante"
    assert page.dialogs == []


def test_the_asset_card_highlights_the_words_that_matched_and_lists_open_tickets_on_it(web):
    """Whatever the inventory: the card's marked words are words of the contact that name the asset."""
    from ticketing.contact import Channel, Contact, Sender
    from ticketing.models import Asset

    first = email_ticket(web)
    second = web.ctx.intake.deliver(Contact(
        Channel.EMAIL, "ticket-page-2@x", sender=Sender(email="x@example.org"), subject="Stampante",
        text="Anche qui la stampante dei tributi è ferma")).ticket_number
    t = web.desk.ticket(first)
    assert t.field("asset") and t.field("asset").value, "the sample inventory's tax-office printer was not matched"
    with web.core.sessions() as s:
        asset = s.query(Asset).filter(Asset.tag == t.field("asset").value.split()[0]).one()
        stem = lambda w: w.lower()[:-2] if len(w) >= 6 else w.lower()  # noqa: E731
        names = {stem(w) for w in re.findall(r"\w+", f"{asset.tag} {asset.name} {asset.location or ''} {asset.hostname or ''} {' '.join(asset.aliases or [])}") if len(w) >= 3}
    with httpx.Client(base_url=web.url) as c:
        desk_login(c)
        r = c.get(f"/desk/tickets/{first}?lang=it")
    card = re.search(r'(?s)<section class="card" aria-labelledby="h-asset-card" id="card-asset">(.*?)</section>', r.text).group(1)
    marked = re.findall(r"<mark>([^<]+)</mark>", card)
    assert marked and all(stem(m) in names for m in marked), (marked, names)
    assert "stampa" not in [m.lower() for m in marked]  # the verb is no printer ("stampante")
    assert f'href="/desk/tickets/{second}"' in card  # the other open ticket on the same asset
    reporter = re.search(r'(?s)id="card-reporter">(.*?)</section>', r.text).group(1)
    assert 'href="mailto:mario.rossi@regione.example.it"' in reporter and 'href="tel:' in reporter


def test_screenshots_of_the_ticket_page_per_channel_language_and_width(web, chromium):
    """artifacts/ticket-<case>-<lang>-<width>.png: an email, a web form, a call from a known caller and one
    from an unknown number, in each language, at a desktop and a phone width (looked at by a person)."""
    from tests.test_web_support import ARTIFACTS
    from ticketing.contact import Channel, Contact, Sender

    cases = {
        "email": email_ticket(web),
        "web": web.ctx.intake.deliver(Contact(Channel.WEB, "shot-web", sender=Sender(name="Lucia Neri", email="lucia.neri@example.org"),
                                              subject=None, text="Il protocollo informatico dà errore 500 quando allego un PDF")).ticket_number,
        "call-known": voice_ticket(web, phone="+39 055 438 2101", call_id="shot-known")[0],
        "call-unknown": voice_ticket(web, phone="+39 333 765 4321", call_id="shot-unknown")[0],
    }
    ARTIFACTS.mkdir(exist_ok=True)
    made = []
    for width, height in ((1440, 1000), (390, 844)):
        context = chromium.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        login(page, web.url)
        for case, number in cases.items():
            for lang in LANGS:
                page.goto(f"{web.url}/desk/tickets/{number}?lang={lang}")
                path = ARTIFACTS / f"ticket-{case}-{lang}-{width}.png"
                page.screenshot(path=str(path), full_page=True)
                made.append(path)
                overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
                assert overflow <= 1, (case, lang, width, overflow)  # nothing wider than the screen
        context.close()
    assert len(made) == 24 and all(p.stat().st_size > 10_000 for p in made)


def test_the_queue_keeps_its_filters_and_an_escalation_opens_the_next_ticket_of_that_queue(web):
    from ticketing.contact import Channel, Contact, Sender

    email = email_ticket(web)
    webs = [web.ctx.intake.deliver(Contact(Channel.WEB, f"filter-{i}", sender=Sender(name="Lucia Neri", email="lucia.neri@example.org"),
                                           text=f"Outlook non si apre ({i})")).ticket_number for i in range(2)]
    with httpx.Client(base_url=web.url) as c:
        desk_login(c)
        assert c.get("/desk/?channel=web&lang=en").status_code == 200
        page = c.get(f"/desk/tickets/{webs[0]}")
        back = re.search(r'href="([^"]*)" id="back-queue"', page.text).group(1)
        assert html.unescape(back) == "/desk/?status=open&channel=web"
        hidden = form_fields(page.text)
        r = c.post(f"/desk/tickets/{webs[0]}/escalate", data={"csrf": hidden["csrf"], "text": "Serve il livello II"})
        assert r.status_code == 303 and r.headers["location"] == f"/desk/tickets/{webs[1]}?done=escalate&prev={webs[0]}"
        assert email not in r.headers["location"]  # the email is not in the filtered queue
        landed = c.get(r.headers["location"])
        assert f"{webs[0]}: {TEXTS_EN_DONE}" in visible_text(landed.text)


TEXTS_EN_DONE = "Ticket escalated to the next level."


def test_the_desk_language_is_remembered_per_operator_on_any_browser(web):
    """Issue 15 §3: the operator's choice follows the account, not the browser's cookie."""
    with httpx.Client(base_url=web.url, headers={"accept-language": "it-IT"}) as first:
        desk_login(first)
        assert '<html lang="fr">' in first.get("/desk/?lang=fr").text
    # Another browser, another cookie jar, a browser set to Italian: the desk still speaks French to this operator.
    with httpx.Client(base_url=web.url, headers={"accept-language": "it-IT"}) as second:
        desk_login(second)
        assert '<html lang="fr">' in second.get("/desk/").text
        assert '<html lang="en">' in second.get("/desk/?lang=en").text
    assert web.desk.accounts.language(OPERATOR) == "en"
