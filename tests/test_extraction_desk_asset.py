"""An operator's asset edit on the desk goes through the inventory matching a contact's does: the ticket's asset
(its card, competent group, criticality and the other open tickets on it) follows what the operator typed."""

from __future__ import annotations

from ticketing.contact import Channel, Contact, Sender

MARIO = Sender("Mario Rossi", "mario.rossi@regione.example.it")


def report(core, n: int, text: str):
    return core.intake.submit(Contact(Channel.EMAIL, f"<asset-edit-{n}@example.org>", sender=MARIO, subject="Guasto", text=text))


def test_an_asset_typed_on_the_desk_is_the_inventorys_asset(sqlite_core):
    core, desk = sqlite_core, sqlite_core.desk
    other = report(core, 1, "La stampante del secondo piano fa le righe").ticket_number
    n = report(core, 2, "Il protocollo informatico non registra").ticket_number
    assert desk.ticket_cards(n).asset.tag == "PROT-01"

    for typed in ("la stampante del secondo piano", "prn-0210", "l'imprimante du deuxième étage"):
        view = desk.set_field(n, "api", "asset", typed)  # a service account: no operator role to check
        f = view.field("asset")
        assert (f.value, f.source, f.confidence) == ("PRN-0210 Stampante multifunzione piano 2", "operator", 1.0)
        card = desk.ticket_cards(n).asset
        assert card.tag == "PRN-0210" and card.matched_by == "operator"
        assert [o.number for o in card.open_tickets] == [other]  # the other open ticket on that printer
        assert card.competent_group == "Postazioni di lavoro"  # the printer's group, not the protocol's

    # something the inventory does not know: kept as typed, and the ticket names no asset any more
    view = desk.set_field(n, "api", "asset", "macchina del caffè")
    assert view.field("asset").value == "macchina del caffè" and desk.ticket_cards(n).asset is None
    desk.set_field(n, "api", "asset", "")
    assert desk.ticket_cards(n).asset is None
