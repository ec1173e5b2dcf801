"""The rejected-contact review (issue 13 §6): an auto-reply kept in `rejections` is listed with its reason in the
API and the desk, and its raw message can be read (as plain text, never rendered)."""

from __future__ import annotations

import httpx

from tests.test_web_mail import desk_login
from tests.test_web_support import web, web_factory  # noqa: F401  (fixtures)
from ticketing.contact import Channel, Contact, Sender

RAW = b"From: Ufficio <ufficio@example.org>\r\nSubject: Fuori sede\r\nAuto-Submitted: auto-replied\r\n\r\nSono fuori sede <b>fino a luned\xc3\xac</b>.\r\n"


def test_a_rejected_mail_is_listed_with_its_reason_and_raw_message(web):
    core = web.core
    ref = core.blobs.put(RAW)
    rid = core.intake.reject(Contact(Channel.EMAIL, "<ooo-1@example.org>", sender=Sender("Ufficio", "ufficio@example.org"), subject="Fuori sede", raw=ref),
                             "auto-reply (Auto-Submitted: auto-replied)")
    with httpx.Client(base_url=web.url, headers={"authorization": f"Bearer {web.token}"}) as api:
        listed = api.get("/api/v1/rejections").json()
        assert listed["total"] == 1
        (item,) = listed["items"]
        assert item["id"] == rid and item["reason"].startswith("auto-reply") and item["fault"] == "sender" and item["sender"] == "ufficio@example.org"
        raw = api.get(f"/api/v1/rejections/{rid}/raw")
        assert raw.status_code == 200 and raw.content == RAW and raw.headers["content-type"].startswith("text/plain")
        assert api.get("/api/v1/rejections", params={"fault": "ours"}).json()["total"] == 0
        assert api.get("/api/v1/rejections/999/raw").status_code == 404
    with httpx.Client(base_url=web.url) as c:
        assert c.get("/api/v1/rejections").status_code == 401
        desk_login(c)
        page = c.get("/desk/rejections")
        assert page.status_code == 200 and "Fuori sede" in page.text and "auto-reply" in page.text
        assert c.get(f"/desk/rejections/{rid}/raw").content == RAW
