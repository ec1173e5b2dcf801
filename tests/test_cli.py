"""The `helpdesk-gateway` command as an administrator uses it: a fresh data dir, imports with a bad row,
contacts fed from files, tickets listed and shown as JSON, and `serve` stopping cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXE = Path(sys.executable).with_name("helpdesk-gateway")


@pytest.fixture
def run(tmp_path):
    env = {**os.environ, "HELPDESK_GATEWAY__STORAGE__DATA_DIR": str(tmp_path / "data")}
    env.pop("HELPDESK_GATEWAY_CONFIG", None)

    def run(*args, check=True, input=None):
        p = subprocess.run([str(EXE), *args], cwd=ROOT, env=env, capture_output=True, text=True, input=input, timeout=120)
        if check and p.returncode != 0:
            raise AssertionError(f"{args} exited {p.returncode}: {p.stderr}")
        return p

    run.env = env
    return run


def test_help_is_everywhere(run):
    for args in (["--help"], ["tickets", "list", "--help"], ["assets", "import", "--help"], ["submit", "--help"], ["db", "upgrade", "--help"]):
        assert "Usage:" in run(*args).stdout


def test_import_reports_bad_rows_by_line_and_keeps_the_rest(run, tmp_path):
    csv = tmp_path / "assets.csv"
    csv.write_text(
        "tag,name,kind,aliases,hostname,serial,location,criticality\n"
        "SRV-1,Server posta,hardware,server posta,srv1,,CED,high\n"
        ",Senza tag,hardware,,,,,low\n"
        "SW-2,Protocollo,program,protocollo,,,,critical\n"
        "SW-3,Strano,gadget,,,,,low\n"
        "SW-4,Archivio,data archive,archivio,,,,urgentissimo\n",
        encoding="utf-8",
    )
    p = run("assets", "import", str(csv), check=False)
    assert p.returncode == 1
    assert "2 assets imported, 3 rows rejected" in p.stdout
    assert "line 3: missing tag" in p.stderr
    assert "line 5: kind 'gadget' is not one of" in p.stderr
    assert "line 6: criticality 'urgentissimo'" in p.stderr
    # importing again updates in place: no duplicates
    run("assets", "import", str(csv), check=False)
    users = tmp_path / "users.csv"
    users.write_text("name,email,phones,department\nAda Lovelace,ada@x.it,+39 055 1234567,CED\nSenza Mail,,12,CED\n", encoding="utf-8")
    p = run("users", "import", str(users), check=False)
    assert "1 users imported, 1 rows rejected" in p.stdout and "line 3: phone '12'" in p.stderr


def test_submit_list_show_round_trip(run, tmp_path):
    run("db", "upgrade")
    run("assets", "import", "config/assets.csv")
    run("users", "import", "config/users.csv")
    contact = tmp_path / "call.json"
    contact.write_text(json.dumps({
        "external_id": "call-42",
        "sender": {"phone": "+39 055 438 2290"},
        "answers": {"asset": {"value": "tributi", "confidence": 0.9}, "anomaly": {"value": "non calcola la tari", "confidence": 0.8}},
    }), encoding="utf-8")
    first = json.loads(run("submit", "--channel", "voice", str(contact)).stdout)
    again = json.loads(run("submit", "--channel", "voice", str(contact)).stdout)
    assert first["outcome"] == "created" and again == {"outcome": "duplicate", "ticket": first["ticket"]}

    eml = tmp_path / "reply.eml"
    eml.write_bytes(
        b"From: Luca Ferrari <luca.ferrari@regione.example.it>\r\nTo: assistenza@example.org\r\n"
        b"Subject: Re: [" + first["ticket"].encode() + b"] tributi\r\nMessage-ID: <r1@regione.example.it>\r\n\r\n"
        b"Aggiungo: succede solo per le utenze non domestiche.\r\n"
    )
    assert json.loads(run("submit", "--channel", "email", str(eml)).stdout)["outcome"] == "appended"

    listed = json.loads(run("tickets", "list", "--json", "--channel", "voice", "--limit", "5").stdout)
    assert [t["number"] for t in listed] == [first["ticket"]]
    assert json.loads(run("tickets", "list", "--json", "--channel", "web").stdout) == []

    shown = json.loads(run("tickets", "show", first["ticket"], "--json").stdout)
    assert shown["fields"]["reporter_name"] == {"value": "Luca Ferrari", "confidence": 0.9, "source": "directory", "check": False}
    assert shown["fields"]["asset"]["value"].startswith("TRIB-01")
    assert shown["fields"]["anomaly"]["value"] == "non calcola la tari"
    assert [m["channel"] for m in shown["messages"]] == ["voice", "email"]
    assert [e["kind"] for e in shown["events"]] == ["created", "message_added"]
    human = run("tickets", "show", first["ticket"]).stdout
    assert "reporter_name" in human and "Luca Ferrari" in human

    missing = run("tickets", "show", "HD-2020-000001", check=False)
    assert missing.returncode == 1 and "no ticket HD-2020-000001" in missing.stderr


def test_a_bad_configuration_stops_with_one_line(run):
    env = dict(run.env, HELPDESK_GATEWAY__WEB__PORT="eighty")
    p = subprocess.run([str(EXE), "tickets", "list"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    assert p.stderr.strip() == (
        "Error: configuration: environment HELPDESK_GATEWAY__WEB__PORT: web.port: "
        "Input should be a valid integer, unable to parse string as an integer (got 'eighty')"
    )


def sip_options(port: int) -> str:
    """Send a SIP OPTIONS (RFC 3261 §11) over UDP; the status line of the answer."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(10)
        me = sock.getsockname()[1]
        request = (
            f"OPTIONS sip:helpdesk@127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK-cli-1;rport\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=cli1\r\nTo: <sip:helpdesk@127.0.0.1>\r\n"
            f"Call-ID: cli-options-1@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nContact: <sip:probe@127.0.0.1:{me}>\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        sock.sendto(request.encode(), ("127.0.0.1", port))
        return sock.recv(65535).decode(errors="replace").split("\r\n", 1)[0]


def test_serve_takes_mail_web_and_sip_on_its_defaults_and_stops_on_sigterm(run):
    import smtplib
    import urllib.request

    from tests.conftest import free_port

    smtp_port, web_port, sip_port = free_port(), free_port(), free_port()
    env = dict(
        run.env,
        HELPDESK_GATEWAY__EMAIL__SMTP__PORT=str(smtp_port),
        HELPDESK_GATEWAY__WEB__PORT=str(web_port),
        HELPDESK_GATEWAY__VOICE__SIP__PORT=str(sip_port),
        HELPDESK_GATEWAY__VOICE__STT__WORKERS="0",  # no speech model loaded for this test
    )
    proc = subprocess.Popen([str(EXE), "serve"], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        lines = []
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            lines.append(line)
            if "ready" in line or not line:
                break
        assert any("helpdesk-gateway ready" in l for l in lines), lines
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as smtp:
            smtp.sendmail(
                "mario.rossi@regione.example.it",
                ["assistenza@example.org"],
                b"From: Mario Rossi <mario.rossi@regione.example.it>\r\nTo: assistenza@example.org\r\n"
                b"Subject: stampante\r\nMessage-ID: <serve-1@x>\r\n\r\nLa stampante multifunzione non stampa.\r\n",
            )
        page = urllib.request.urlopen(f"http://127.0.0.1:{web_port}/", timeout=30).read().decode()
        assert "Segnala un problema" in page
        assert sip_options(sip_port) == "SIP/2.0 200 OK"  # the voice channel answers SIP with no Kamailio
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        rest = proc.stderr.read()
        assert "stopping" in rest
    finally:
        proc.kill()
    listed = json.loads(run("tickets", "list", "--json").stdout)
    assert [(t["channel"], t["reporter"]) for t in listed] == [("email", "Mario Rossi")]
    assert listed[0]["asset"].startswith("PRN-0210")
