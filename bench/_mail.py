"""What the email benches share: a realistic corpus, a core's configuration, a free port, and the floor.

The corpus (`realistic_mail(n)`) is what a service desk receives, not one-line mails: a relay's trace
headers (Received ×3, DKIM-Signature, Authentication-Results), multipart/alternative text and HTML, a quoted
reply and a signature with a phone number; every third mail carries a PDF-like attachment (40–120 KiB), every
fifth a PNG-like one (~20 KiB). Senders and assets come from config/users.csv and config/assets.csv, so the
extraction does its real work (directory lookups, asset matching).

The floor (`floor()`) is the least any intake can do with the same mails and the same durability, measured
in the same run: the standard library's parser (`email.message_from_bytes` and the text body), the raw bytes
written and fsynced, and one row a mail committed in SQLite (WAL, synchronous=FULL) in batches of the
clients' number, all in one process with no protocol and no extraction.
"""

from __future__ import annotations

import csv
import email
import email.policy
import hashlib
import os
import random
import socket
import sqlite3
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_config(data_dir: Path, url: str | None = None, **sections: str):
    """The gateway's configuration on `data_dir` (and `url`), with the sample directory to seed."""
    from gateway.config import load_config

    env = {
        "HELPDESK_GATEWAY__STORAGE__DATA_DIR": str(Path(data_dir) / "data"),
        "HELPDESK_GATEWAY__DIRECTORY__ASSETS_CSV": f'"{CONFIG / "assets.csv"}"',
        "HELPDESK_GATEWAY__DIRECTORY__USERS_CSV": f'"{CONFIG / "users.csv"}"',
    }
    if url:
        env["HELPDESK_GATEWAY__STORAGE__URL"] = url
    for key, value in sections.items():
        env["HELPDESK_GATEWAY__" + key.upper()] = value
    return load_config(None, environ=env)


def _rows(name: str) -> list[dict[str, str]]:
    with open(CONFIG / name, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


USERS = [(r["name"], r["email"], (r.get("phones") or "").split("|")[0]) for r in _rows("users.csv") if r.get("email")]
ASSETS = [(r["tag"], r["name"]) for r in _rows("assets.csv")]
PROBLEMS = [
    "non stampa più e sul display compare 'carta inceppata' anche se il cassetto è vuoto",
    "non si apre: dopo il login resta la clessidra e poi si chiude senza messaggi",
    "è lentissimo da stamattina, ogni pagina impiega più di un minuto",
    "si riavvia da solo ogni mezz'ora e perdo il lavoro non salvato",
    "mi dice che la password è scaduta ma il cambio password non funziona",
    "doesn't work since this morning: the screen stays black after the logo",
]
QUOTED = "\n".join(f"> {line}" for line in (
    "Gentile utente,", "abbiamo preso in carico la sua segnalazione precedente e la stiamo analizzando.",
    "La preghiamo di indicare, se possibile, il codice inventario dell'apparecchio e l'ufficio.",
    "Per urgenze può chiamare il numero interno 2100 dalle 8 alle 18.", "", "Cordiali saluti,", "Il servizio di assistenza",
    "--", "Servizio assistenza informatica - Regione", "Questo messaggio è confidenziale e destinato solo al destinatario.",
))


def realistic_mail(n: int, *, seed: int = 7) -> bytes:
    rnd = random.Random(seed * 1_000_003 + n)
    name, addr, phone = USERS[n % len(USERS)]
    tag, asset = ASSETS[rnd.randrange(len(ASSETS))]
    problem = rnd.choice(PROBLEMS)
    m = EmailMessage()
    host = addr.split("@", 1)[1]
    for hop in range(3):
        m["Received"] = (f"from mx{hop}.{host} (mx{hop}.{host} [10.0.{hop}.{n % 250}]) by relay{hop}.example.org "
                         f"with ESMTPS id {hashlib.sha1(f'{n}-{hop}'.encode()).hexdigest()[:12]}; Tue, 03 Mar 2026 09:0{hop}:00 +0100")
    m["Authentication-Results"] = f"relay0.example.org; spf=pass smtp.mailfrom={host}; dkim=pass header.d={host}"
    m["DKIM-Signature"] = (f"v=1; a=rsa-sha256; c=relaxed/relaxed; d={host}; s=sel; h=from:to:subject:date:message-id; "
                           f"bh={hashlib.sha256(str(n).encode()).hexdigest()[:43]}=; b={'A' * 340}")
    m["From"] = f"{name} <{addr}>"
    m["To"] = "Assistenza <assistenza@example.org>"
    m["Subject"] = f"R: {asset}: {problem[:40]}" if n % 4 == 0 else f"{asset} {problem[:40]}"
    m["Date"] = "Tue, 03 Mar 2026 09:00:00 +0100"
    m["Message-ID"] = f"<bench-{n}-{seed}@{host}>"
    body = (f"Buongiorno,\n\nil {asset} ({tag}) {problem}.\nL'ho già spento e riacceso due volte senza risultato.\n"
            f"Potete intervenire con urgenza? Sono in ufficio fino alle 17.\n\nGrazie,\n{name}\n"
            f"Ufficio {rnd.choice(['Ragioneria', 'Anagrafe', 'Protocollo', 'Tributi'])}\nTel. {phone}\n\n"
            f"Il giorno lun 2 mar 2026 alle 16:12 Assistenza <assistenza@example.org> ha scritto:\n{QUOTED}\n")
    m.set_content(body)
    html = "<html><body>" + "".join(f"<p>{line}</p>" for line in body.splitlines() if line) + "</body></html>"
    m.add_alternative(html, subtype="html")
    if n % 3 == 0:
        m.add_attachment(rnd.randbytes(rnd.randrange(40, 120) * 1024), maintype="application", subtype="pdf", filename=f"errore-{n}.pdf")
    if n % 5 == 0:
        m.add_attachment(rnd.randbytes(20 * 1024), maintype="image", subtype="png", filename="schermata.png")
    return m.as_bytes(policy=email.policy.SMTP)


def big_mail(n: int, mib: float) -> bytes:
    """A mail with one attachment making it about `mib` MiB on the wire (base64)."""
    m = EmailMessage()
    name, addr, _ = USERS[n % len(USERS)]
    m["From"], m["To"], m["Subject"] = f"{name} <{addr}>", "assistenza@example.org", f"allegato grande {n}"
    m["Message-ID"] = f"<big-{n}-{time.time_ns()}@bench.test>"
    m.set_content("In allegato il registro degli errori.\n")
    m.add_attachment(os.urandom(int(mib * 1024 * 1024 * 3 / 4)), maintype="application", subtype="octet-stream", filename="log.bin")
    return m.as_bytes(policy=email.policy.SMTP)


def floor_row(raw: bytes, tmp: Path, n: int) -> tuple[str, str, str, str]:
    """The floor's work on one mail: stdlib parse, the raw bytes fsynced, the row to insert."""
    msg = email.message_from_bytes(raw)
    part = next((p for p in msg.walk() if p.get_content_type() == "text/plain"), None)
    text = part.get_payload(decode=True).decode("utf-8", "replace") if part is not None else ""
    fd = os.open(tmp / hashlib.sha256(raw).hexdigest(), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, raw)
        os.fsync(fd)
    finally:
        os.close(fd)
    return (f"{msg['Message-ID']}{n}", msg["From"], msg["Subject"], text)


def floor(mails: list[bytes], batch: int = 20) -> float:
    """Mails per second of the floor (see the module's docstring) over `mails`."""
    tmp = Path(tempfile.mkdtemp(prefix="hd-bench-floor-"))
    db = sqlite3.connect(tmp / "floor.sqlite3", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE m (id INTEGER PRIMARY KEY, key TEXT UNIQUE, sender TEXT, subject TEXT, text TEXT)")
    t0 = time.perf_counter()
    rows = []
    for i, raw in enumerate(mails):
        rows.append(floor_row(raw, tmp, i))
        if len(rows) == batch or i == len(mails) - 1:
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT INTO m (key, sender, subject, text) VALUES (?, ?, ?, ?)", rows)
            db.execute("COMMIT")
            rows.clear()
    elapsed = time.perf_counter() - t0
    db.close()
    return len(mails) / elapsed
