"""Desk ticket page server time for a long ticket: 50 messages and 4 recordings with their transcripts (issue 15).

A fresh SQLite database (`--postgres` for a throwaway PostgreSQL cluster) gets the sample directory and
`--background` other tickets (5,000, as `bench/desk_queue.py` writes them), then one call with 4 recorded answers
(each with a `transcribed` event of 12 words with times) followed by 49 mails and desk replies on the same ticket,
plus notes and field edits. The web channel is served by uvicorn on loopback; one keep-alive client logged in as
a supervisor (who also gets the events' raw data) asks, one request at a time, for the ticket page in Italian and
in English. Figures: p50 / p99 wall time per request as the client measured it, and CPU time per request, beside
two floors measured in the same run: the login page (a template, no database) and the queue's first page.

    .venv/bin/python bench/ticket_page.py
    .venv/bin/python bench/ticket_page.py --postgres --requests 100
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.desk_queue import config, fill, measure  # noqa: E402

WORDS = "buongiorno la stampante dell'ufficio tributi al secondo piano non stampa più da stamattina".split()


def long_ticket(core, messages: int = 50, recordings: int = 4) -> str:
    """A call with `recordings` answers, transcribed, then mails and replies up to `messages` messages."""
    from sqlalchemy import insert

    from ticketing.contact import Attachment, Channel, Contact, Sender
    from ticketing.models import Event, Message

    wav = (ROOT / "tests" / "data" / "stt" / "it_stampante.wav").read_bytes()  # a data file, not test code
    questions = ("name", "asset", "anomaly", "message")[:recordings]
    atts = tuple(Attachment(f"answer-{q}.wav", "audio/wav", core.blobs.put(wav + q.encode()), kind="recording", question=q) for q in questions)
    result = core.intake.submit(Contact(Channel.VOICE, "bench-call", sender=Sender(phone="+39 055 438 2101"), language="it", attachments=atts))
    now = datetime.now(timezone.utc)
    with core.sessions() as s, s.begin():
        events = [
            {"ticket_id": result.ticket_id, "at": now, "kind": "transcribed", "actor": "transcription",
             "data": {"question": q, "recording": a.blob.sha256, "engine": "vosk", "model": "small-it", "text": " ".join(WORDS),
                      "confidence": 0.7, "silent": False, "words": [[w, 0.3 + (i % 7) / 10] for i, w in enumerate(WORDS)],
                      "times": [[i * 0.4, i * 0.4 + 0.35] for i in range(len(WORDS))]}}
            for q, a in zip(questions, atts)
        ]
        rows = []
        for i in range(messages - 1):
            out = i % 2 == 1
            rows.append({"ticket_id": result.ticket_id, "channel": "email", "external_id": f"bench-{i}@x", "direction": "out" if out else "in",
                         "received_at": now + timedelta(minutes=i), "sender_name": None if out else "Mario Rossi",
                         "sender_email": None if out else "mario.rossi@regione.example.it", "subject": "Re: stampante",
                         "text": ("Abbiamo controllato il fusore. " if out else "La stampante ancora non stampa, ecco il messaggio di errore. ") * 8})
            events.append({"ticket_id": result.ticket_id, "at": now + timedelta(minutes=i), "kind": "message_sent" if out else "message_added",
                           "actor": "bench", "data": {"to": "mario.rossi@regione.example.it"} if out else {}})
            if i % 10 == 0:
                events.append({"ticket_id": result.ticket_id, "at": now + timedelta(minutes=i), "kind": "note", "actor": "bench.op", "data": {"text": "Sentito l'utente"}})
        s.execute(insert(Message), rows)
        s.execute(insert(Event), events)
    return result.ticket_number


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--background", type=int, default=5_000)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--postgres", action="store_true")
    args = ap.parse_args()
    os.chdir(ROOT)
    import logging

    logging.basicConfig(level=logging.WARNING)
    import httpx

    from channels.web.app import create_app
    from channels.web.settings import WebSettings
    from channels.web.testing import ServerThread
    from gateway.app import build_core, channel_context, seed_directory

    from bench._pg import bench_database

    workdir, url, pg = bench_database("hd-bench-ticket-", args.postgres)
    core = build_core(config(workdir, url))
    seed_directory(core)
    fill(core, args.background)
    number = long_ticket(core)
    view = core.desk.ticket(number)
    print(f"# {number}: {len(view.messages)} messages, {sum(a.kind == 'recording' for m in view.messages for a in m.attachments)} recordings, "
          f"{len(view.events)} events ({core.engine.dialect.name}, {args.background} other tickets)")
    core.desk.accounts.add("bench.op", "Bench", "password lunga 1", role="supervisor")
    settings = WebSettings(enabled=True, port=0, cookie_secure=False, submit_per_minute=0, status_per_minute=0,
                           login_per_minute=0, api_per_minute=0)
    app = create_app(channel_context(core, settings), core.desk)
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=30) as c:
        hidden = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', c.get("/desk/login").text))
        assert c.post("/desk/login", data={"username": "bench.op", "password": "password lunga 1", **hidden}).status_code == 303
        cases = [
            ("floor: login page (no database)", "/desk/login"),
            ("floor: desk queue, open, page 1", "/desk/"),
            ("ticket page, 50 messages, 4 recordings (it)", f"/desk/tickets/{number}?lang=it"),
            ("ticket page, 50 messages, 4 recordings (en)", f"/desk/tickets/{number}?lang=en"),
        ]
        print(f"# loadavg {open('/proc/loadavg').read().split()[:3]}")
        print(f"{'request':<46} {'p50 ms':>8} {'p99 ms':>8} {'cpu ms':>8}")
        for name, path in cases:
            p50, p99, cpu = measure(c, path, args.requests)
            print(f"{name:<46} {p50:8.1f} {p99:8.1f} {cpu:8.1f}", flush=True)
        size = len(c.get(f"/desk/tickets/{number}").content)
        print(f"# ticket page size {size / 1024:.0f} KiB; loadavg {open('/proc/loadavg').read().split()[:3]}")
    core.close()
    if pg is not None:
        pg.stop()


if __name__ == "__main__":
    main()
