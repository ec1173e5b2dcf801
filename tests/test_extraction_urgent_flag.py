"""The urgent answer from the web form's box and the API's `urgent` boolean reaches the urgency step as the IVR's
"is the whole office blocked?" does (`Contact.urgent`): ticked or true gives critical; left unticked, the text's
own cues decide ("non è urgente" stays low)."""

from __future__ import annotations

import httpx

from tests.test_web_api import client
from tests.test_web_api import report as api_report
from tests.test_web_public import NUMBER, get_form
from tests.test_web_public import report as form_report
from tests.test_web_support import web, web_factory  # noqa: F401  (fixtures)


def test_the_forms_urgent_box_and_the_apis_urgent_flag_set_the_urgency(web):
    with httpx.Client(base_url=web.url) as c:
        page, _ = get_form(c)
        assert 'name="urgent" type="checkbox"' in page and '<label for="urgent">' in page
        ticked = NUMBER.search(form_report(c, urgent="1").text).group(1)
        plain = NUMBER.search(form_report(c, anomaly="La stampante fa le righe, non è urgente, quando potete.").text).group(1)
    f = web.desk.ticket(ticked).field("urgency")
    assert (f.value, f.source) == ("critical", "form")
    assert web.desk.ticket(plain).field("urgency").value == "low"

    with client(web) as c:
        urgent = api_report(c, "urgent-1", urgent=True).json()["number"]
        not_said = api_report(c, "urgent-2").json()["number"]
        refused = api_report(c, "urgent-3", urgent="maybe")
    assert web.desk.ticket(urgent).field("urgency").value == "critical"
    assert web.desk.ticket(not_said).field("urgency").value != "critical"
    assert refused.status_code in (400, 422)
