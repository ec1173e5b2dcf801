"""Accessibility of the public pages and the desk (issue 15 §5): axe-core (bundled by axe-playwright-python,
nothing fetched from a CDN) in Debian's Chromium finds no serious or critical violation of WCAG 2.1 A/AA on
the form, the status page, the login, the queue and the ticket pages; and an operator does the day's work
with the keyboard alone: log in, take, escalate with a reason, resolve with a report, no mouse event."""

from __future__ import annotations

import pytest

from tests.conftest import missing
from tests.test_web_support import OPERATOR, PASSWORD, chromium, login, page, web, web_factory  # noqa: F401
from tests.test_web_ticket_page import email_ticket, poll, voice_ticket

WCAG = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}, "resultTypes": ["violations"]}


@pytest.fixture(scope="module")
def axe():
    try:
        from axe_playwright_python.sync_playwright import Axe
    except ImportError:
        missing("the axe-playwright-python package is not installed (pip install -e .[test])")
    return Axe()


def serious(axe, page) -> list[str]:
    results = axe.run(page, options=WCAG)
    return [f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:5]}"
            for v in results.response["violations"] if v.get("impact") in ("serious", "critical")]


@pytest.mark.parametrize("lang", ["it", "fr", "en"])
def test_public_pages_and_desk_have_no_serious_axe_violation(web, page, axe, lang):
    voice, _ = voice_ticket(web)
    email = email_ticket(web)
    found = {}
    for path in ("/", "/status", "/desk/login"):
        page.goto(f"{web.url}{path}?lang={lang}")
        found[path] = serious(axe, page)
    login(page, web.url)
    for path in ("/desk/", f"/desk/tickets/{email}", f"/desk/tickets/{voice}"):
        page.goto(f"{web.url}{path}?lang={lang}")
        found[path] = serious(axe, page)
    assert found == {p: [] for p in found}


MOUSE_WATCH = """
window.__mouse = 0;
for (const kind of ["mousedown", "mouseup", "pointerdown", "mousemove"]) {
  window.addEventListener(kind, () => { window.__mouse += 1; }, true);
}
"""


def tab_to(page, element_id: str, limit: int = 80) -> None:
    """Press Tab until the element has the focus, as a keyboard user does."""
    for _ in range(limit):
        if page.evaluate("() => document.activeElement && document.activeElement.id") == element_id:
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"#{element_id} is not reachable with Tab")


def test_an_operator_takes_escalates_and_resolves_with_the_keyboard_alone(web, chromium):
    """Level I takes a ticket and escalates it with a reason; the next ticket of the queue opens; they take
    that one and resolve it with a report. Shortcuts from the page's legend, Tab and Enter; no mouse."""
    from ticketing.contact import Channel, Contact, Sender

    first = email_ticket(web)
    second = web.ctx.intake.deliver(Contact(Channel.WEB, "kbd-2", sender=Sender(name="Lucia Neri", email="lucia.neri@example.org"),
                                            subject="Posta", text="Outlook non si apre")).ticket_number
    context = chromium.new_context(locale="it-IT", viewport={"width": 1280, "height": 900})
    context.add_init_script(MOUSE_WATCH)
    page = context.new_page()
    try:
        page.goto(f"{web.url}/desk/login?lang=it")
        tab_to(page, "username")
        page.keyboard.type(OPERATOR)
        tab_to(page, "password")
        page.keyboard.type(PASSWORD)
        page.keyboard.press("Enter")
        page.wait_for_url(f"{web.url}/desk/")
        for _ in range(80):  # Tab through the queue to the first ticket's link
            if page.evaluate("() => document.activeElement.textContent") == first:
                break
            page.keyboard.press("Tab")
        page.keyboard.press("Enter")
        page.wait_for_url(f"**/desk/tickets/{first}")
        page.keyboard.press("t")  # take (the legend's shortcut)
        page.wait_for_url("**done=take")
        page.keyboard.press("e")  # escalate: the reason's box has the focus
        page.keyboard.type("Serve un tecnico sul posto")
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")
        page.wait_for_url(f"**/desk/tickets/{second}?done=escalate&prev={first}")  # the next ticket of the queue
        assert web.desk.ticket(first).level == 2
        page.keyboard.press("t")
        page.wait_for_url(f"**/desk/tickets/{second}?done=take")
        page.keyboard.press("r")
        page.keyboard.type("Ricreato il profilo di posta, Outlook si apre")
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")
        page.wait_for_url("**done=resolve**")
        assert poll(lambda: web.desk.ticket(second).status == "resolved")
        assert page.evaluate("() => window.__mouse") == 0
    finally:
        context.close()
