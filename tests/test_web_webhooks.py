"""Outbound webhooks against a real local HTTP receiver: signed JSON POSTs that verify, in event order, only
the kinds a URL asked for; a receiver that fails gets the event again after a backoff, once; a receiver that
is down never holds up the form; a restart resumes from the cursor kept in the database."""

from __future__ import annotations

import time

import httpx
from sqlalchemy import select

from channels.web.testing import WebhookReceiver
from channels.web.webhooks import verify
from tests.conftest import wait_for
from tests.test_web_support import form_fields, web_factory  # noqa: F401  (fixtures)

SECRET = "s3cret-for-the-hooks-0123456789"
FAST = dict(webhook_poll_seconds=0.05, webhook_retry_seconds=0.1, webhook_max_retry_seconds=0.5, webhook_timeout_seconds=5)


def hook(url: str, *events: str) -> dict:
    return {"url": url, "secret": SECRET, **({"events": list(events)} if events else {})}


def api(web) -> httpx.Client:
    return httpx.Client(base_url=web.url, headers={"authorization": f"Bearer {web.token}"})


def report(c: httpx.Client, external_id: str) -> str:
    body = {"external_id": external_id, "name": "Mario Rossi", "email": "mario.rossi@regione.example.it",
            "asset": "stampante tributi", "anomaly": "Non stampa da stamattina."}
    r = c.post("/api/v1/tickets", json=body)
    assert r.status_code == 201, r.text
    return r.json()["number"]


def cursor(core, url: str):
    from ticketing.desk import WebhookCursor

    with core.sessions() as s:
        return s.scalars(select(WebhookCursor).where(WebhookCursor.url == url)).one()


def test_events_arrive_signed_in_order_and_filtered(sqlite_core, web_factory):
    with WebhookReceiver() as every, WebhookReceiver() as resolved_only:
        web = web_factory(sqlite_core, webhooks=[hook(every.url), hook(resolved_only.url, "resolved")], **FAST)
        web.desk.accounts.add("bot", "Bot", "password lunga 1")  # a service account takes a ticket for an existing operator
        with api(web) as c:
            number = report(c, "hook-1")
            for action, text in (("take", ""), ("escalate", "serve il livello II"), ("note", "chiamato l'utente"), ("resolve", "driver reinstallato")):
                assert c.post(f"/api/v1/tickets/{number}/actions", json={"action": action, "operator": "bot", "text": text}).status_code == 200
        got = every.wait(5)
        assert [h.json["event"] for h in got] == ["ticket.created", "ticket.updated", "ticket.escalated", "ticket.updated", "ticket.resolved"]
        ids = [h.json["id"] for h in got]
        assert ids == sorted(ids) and len(set(ids)) == 5
        for h in got:
            assert h.headers["content-type"] == "application/json"
            assert verify(SECRET.encode(), h.body, h.headers["x-helpdesk-signature"])
            assert h.headers["x-helpdesk-signature"].startswith("sha256=")
            assert h.headers["x-helpdesk-delivery"] == str(h.json["id"])
            assert h.headers["x-helpdesk-event"] == h.json["event"]
            assert int(h.headers["x-helpdesk-timestamp"]) == h.json["sent_at"] and abs(h.json["sent_at"] - time.time()) < 60
            assert h.json["ticket"]["number"] == number
        assert not verify(b"another secret of 16 bytes", got[0].body, got[0].headers["x-helpdesk-signature"])
        tampered = got[0].body.replace(b'"kind":"created"', b'"kind":"resolved"')
        assert tampered != got[0].body and not verify(SECRET.encode(), tampered, got[0].headers["x-helpdesk-signature"])
        assert got[2].json["data"] == {"from": "I", "to": "II", "reason": "serve il livello II", "group": "Postazioni di lavoro",
                                       "notified": "postazioni@helpdesk.example.it"}  # routed by the asset (issue 12)
        assert got[2].json["ticket"]["group"] == "Postazioni di lavoro" and got[2].json["ticket"]["organisation"] == "Regione"
        assert got[4].json["ticket"]["status"] == "resolved" and got[4].json["actor"].startswith("service:")

        only = resolved_only.wait(1)
        assert [h.json["event"] for h in only] == ["ticket.resolved"]
        assert only[0].body == got[4].body.replace(b'"sent_at":%d' % got[4].json["sent_at"], b'"sent_at":%d' % only[0].json["sent_at"])
        wait_for(lambda: cursor(sqlite_core, resolved_only.url).last_event_id == ids[-1])  # the passed-over events are done too


def test_a_failing_receiver_gets_the_event_once_after_retries(sqlite_core, web_factory):
    with WebhookReceiver() as receiver:
        receiver.fail(2, status=503)
        web = web_factory(sqlite_core, webhooks=[hook(receiver.url, "created")], **FAST)
        with api(web) as c:
            number = report(c, "hook-retry")
        got = receiver.wait(1)
        assert receiver.refused == 2
        assert [h.json["ticket"]["number"] for h in got] == [number]
        time.sleep(0.5)  # several polls later: still once
        assert len(receiver.received) == 1
        row = cursor(sqlite_core, receiver.url)
        assert row.last_event_id == got[0].json["id"] and row.failures == 0 and row.last_error is None


def test_a_receiver_that_is_down_never_holds_up_the_form(sqlite_core, web_factory):
    from tests.conftest import free_port

    down = f"http://127.0.0.1:{free_port()}/hooks"  # nothing listens there
    web = web_factory(sqlite_core, webhooks=[hook(down)], cookie_secure=False, **FAST)
    with httpx.Client(base_url=web.url) as c:
        hidden = form_fields(c.get("/").text)
        r = c.post("/", data={"name": "Mario Rossi", "email": "mario.rossi@regione.example.it", "asset": "pc",
                              "anomaly": "il pc non si accende", **hidden})
    assert r.status_code == 200 and 'id="ticket-number"' in r.text
    row = wait_for(lambda: (lambda r: r if r.failures >= 2 else None)(cursor(sqlite_core, down)))
    assert "ConnectError" in row.last_error and row.last_event_id == 0  # kept for later, with the reason in sight


def test_a_restart_resumes_from_the_cursor(sqlite_core, web_factory):
    from ticketing.contact import Channel, Contact, Sender

    def deliver(n: int) -> str:
        return sqlite_core.intake.submit(Contact(Channel.EMAIL, f"restart-{n}@example.org", sender=Sender("Luca Ferrari", "luca.ferrari@regione.example.it"),
                                                 subject="Stampante", text=f"guasto {n}")).ticket_number

    with WebhookReceiver() as receiver:
        first = web_factory(sqlite_core, webhooks=[hook(receiver.url, "created")], **FAST)
        a = deliver(1)
        receiver.wait(1)
        first.server.__exit__(None, None, None)  # the gateway stops; intake goes on (another process, say)
        b, c = deliver(2), deliver(3)
        time.sleep(0.3)
        assert len(receiver.received) == 1
        web_factory(sqlite_core, webhooks=[hook(receiver.url, "created")], **FAST)
        got = receiver.wait(3)
        time.sleep(0.3)
        assert [h.json["ticket"]["number"] for h in receiver.received] == [a, b, c]


def test_the_cursor_lease_on_each_database(core):
    """One gateway at a time delivers to a URL; a clean stop hands over at once (SQLite and PostgreSQL)."""
    from ticketing.contact import Channel, Contact, Sender

    desk, url = core.desk, "http://127.0.0.1:9/hooks"
    core.intake.submit(Contact(Channel.EMAIL, "lease-1@example.org", sender=Sender(None, "a@example.org"), text="uno"))
    newest = desk.events_after(0, 1000)[-1].id
    assert desk.webhook_claim(url, "gw-a", 60) == newest  # a new URL starts after the history
    assert desk.webhook_claim(url, "gw-b", 60) is None
    core.intake.submit(Contact(Channel.EMAIL, "lease-2@example.org", sender=Sender(None, "a@example.org"), text="due"))
    [event] = desk.events_after(newest)
    assert event.kind == "created" and event.ticket.status == "new"
    assert not desk.webhook_advance(url, "gw-b", event.id)  # not the holder
    desk.webhook_failed(url, "gw-a", "HTTP 503 Service Unavailable")
    assert desk.webhook_advance(url, "gw-a", event.id)
    desk.webhook_release(url, "gw-a")
    assert desk.webhook_claim(url, "gw-b", 60) == event.id
    assert desk.webhook_claim(url, "gw-a", 0.0) is None
