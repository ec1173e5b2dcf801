"""Is a mail really from the address in its From:? DMARC-style alignment, for the acknowledgement policy.

A mail's From: is whatever its sender typed; acknowledging it blindly is backscatter. A mail counts as
authenticated (`Sender.verified`) when the domain of its From: address (RFC 5322.From) is aligned with a
domain that passed authentication (DMARC, RFC 7489 §3.1, relaxed alignment: the same domain or one a
subdomain of the other):

1. `Authentication-Results` (RFC 8601) added by the receiving MTA, believed only from an authserv-id listed
   in `[email.ack] trusted_authserv_ids` (that MTA removes such headers with its own id from what arrives):
   `dmarc=pass` for the From: domain, or `dkim=pass` with an aligned `header.d`, or `spf=pass` with an aligned
   `smtp.mailfrom`;
2. otherwise our own DKIM check (RFC 6376, `dkimpy`) of each signature whose `d=` is aligned, when
   `verify_dkim` is on. It needs the signer's public key from DNS (`dnsfunc`, with a short timeout; the answer,
   "none" included, kept five minutes per process); with no key the mail is simply not authenticated, and is
   not parsed for it. A mail without an aligned signature costs no lookup.

3. otherwise our own SPF check (RFC 7208, `pyspf`) of the SMTP client's address against the envelope sender
   (MAIL FROM, or the HELO name), when that domain is aligned and `verify_spf` is on. It means something only
   when the gateway is the MX itself (the client is the sender's server); behind the desk's own MX the client
   is that MX, SPF fails, and the MX's verdict arrives in Authentication-Results instead.

DNS that does not answer (a lookup that ran into its timeout) switches the local checks off for a minute,
so a resolver outage slows no mail by more than one timeout.

`SenderCheck` is a plain picklable object: the parse workers (other processes) run it on each mail.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from email.message import Message
from typing import Callable

log = logging.getLogger("channels.email.auth")


def aligned(domain: str | None, from_domain: str) -> bool:
    """Relaxed alignment, approximated without a public-suffix list: equal, or one a subdomain of the other."""
    if not domain:
        return False
    d, f = domain.strip().lower().rstrip("."), from_domain
    return d == f or f.endswith("." + d) or d.endswith("." + f)


@dataclass(frozen=True)
class SenderCheck:
    trusted_authserv_ids: tuple[str, ...] = ()
    verify_dkim: bool = True
    dns_timeout: float = 2.0
    dnsfunc: Callable | None = None  # dkimpy's DNS hook (name, timeout=…) -> TXT bytes; None: dnspython
    verify_spf: bool = True
    # The SMTP conversation of this mail (`for_client`): the client's address, its HELO name, MAIL FROM.
    client_ip: str | None = None
    helo: str | None = None
    mail_from: str | None = None

    @classmethod
    def from_settings(cls, ack) -> SenderCheck:
        return cls(tuple(ack.trusted_authserv_ids), ack.verify_dkim, ack.dns_timeout_seconds,
                   verify_spf=getattr(ack, "verify_spf", True))

    def for_client(self, client_ip: str | None, helo: str | None, mail_from: str | None) -> SenderCheck:
        return dataclasses.replace(self, client_ip=client_ip, helo=helo, mail_from=mail_from)

    def __call__(self, raw: bytes, msg: Message, from_addr: str | None) -> bool:
        if not from_addr or "@" not in from_addr:
            return False
        from_domain = from_addr.rsplit("@", 1)[1].strip().lower().rstrip(".")
        try:
            if self.trusted_authserv_ids and self._by_results(msg, from_domain):
                return True
            if _dns_down():
                return False
            if self.verify_dkim and self._by_dkim(raw, msg, from_domain):
                return True
            if self.verify_spf and self._by_spf(from_domain):
                return True
        except Exception:  # noqa: BLE001 - a malformed header is an unauthenticated mail, never a lost one
            log.debug("sender authentication of %s failed", from_addr, exc_info=True)
        return False

    # -- 1. the receiving MTA's verdict -------------------------------------------------------------------
    def _by_results(self, msg: Message, from_domain: str) -> bool:
        import authres

        for value in msg.get_all("Authentication-Results") or ():
            try:
                header = authres.AuthenticationResultsHeader.parse_value(" ".join(str(value).split()))
            except Exception:  # noqa: BLE001 - unparseable: not believed
                continue
            if (header.authserv_id or "").lower() not in self.trusted_authserv_ids:
                continue
            for result in header.results:
                props = {f"{p.type}.{p.name}".lower(): (p.value or "").lower() for p in result.properties}
                if result.result.lower() != "pass":
                    continue
                method = result.method.lower()
                if method == "dmarc" and props.get("header.from", from_domain) == from_domain:
                    return True
                if method == "dkim" and aligned(props.get("header.d") or _domain(props.get("header.i")), from_domain):
                    return True
                if method == "spf" and aligned(_domain(props.get("smtp.mailfrom")) or props.get("smtp.helo"), from_domain):
                    return True
        return False

    # -- 2. our own DKIM check ----------------------------------------------------------------------------
    def _by_dkim(self, raw: bytes, msg: Message, from_domain: str) -> bool:
        signatures = msg.get_all("DKIM-Signature") or ()
        wanted = []
        for i, sig in enumerate(signatures):
            d, s = _tag(str(sig), "d"), _tag(str(sig), "s")
            if s and aligned(d, from_domain):
                wanted.append((i, f"{s}._domainkey.{d}.".encode("ascii", "replace")))
        if not wanted:
            return False
        import dkim

        dnsfunc = self.dnsfunc or dkim.dnsplug.get_txt

        def lookup(name: bytes, timeout: float = self.dns_timeout) -> bytes | None:
            return _txt(dnsfunc, name, self.dns_timeout)

        # The key first (cached): with none published the signature cannot verify, and the mail is not parsed
        # again for it (dkimpy's parse of a 45 KiB mail cost a tenth of a parse worker's time).
        wanted = [idx for idx, name in wanted if lookup(name) is not None]
        if not wanted:
            return False
        d = dkim.DKIM(raw, timeout=int(max(1, self.dns_timeout)))
        for idx in wanted:
            try:
                if d.verify(idx=idx, dnsfunc=lookup):
                    return True
            except dkim.DKIMException as e:
                log.debug("DKIM signature %d: %s", idx, e)
        return False


    # -- 3. our own SPF check ---------------------------------------------------------------------------
    def _by_spf(self, from_domain: str) -> bool:
        sender = (self.mail_from or "").strip("<>")
        domain = _domain(sender) if "@" in sender else self.helo
        if not self.client_ip or not domain or not aligned(domain, from_domain):
            return False
        key = (self.client_ip, domain.lower(), (self.helo or "").lower())
        cached = _SPF_SEEN.get(key)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        import spf

        started = time.monotonic()
        try:
            result, _ = spf.check2(i=self.client_ip, s=sender or f"postmaster@{domain}", h=self.helo or domain,
                                   timeout=self.dns_timeout, querytime=self.dns_timeout)
        except Exception as e:  # noqa: BLE001 - a broken record or resolver: not authenticated
            log.debug("SPF of %s: %s", domain, e)
            return False
        finally:
            _note_dns(time.monotonic() - started, self.dns_timeout)
        if len(_SPF_SEEN) > 10_000:
            _SPF_SEEN.clear()
        _SPF_SEEN[key] = (result == "pass", time.monotonic() + 300.0)  # a client sends many: one lookup per 5 min
        return result == "pass"


_SPF_SEEN: dict[tuple, tuple[bool, float]] = {}
_TXT_SEEN: dict[tuple, tuple[bytes | None, float]] = {}


def _txt(dnsfunc: Callable, name: bytes, timeout: float) -> bytes | None:
    """A DKIM key record through `dnsfunc`, kept five minutes in this process (a sender signs every mail with
    the same key), the answer "none" included."""
    key = (dnsfunc, name.lower())
    cached = _TXT_SEEN.get(key)
    if cached is not None and cached[1] > time.monotonic():
        return cached[0]
    started = time.monotonic()
    try:
        value = dnsfunc(name, timeout=timeout)
    except Exception as e:  # noqa: BLE001 - no answer: no key, not authenticated
        log.debug("DKIM key %r: %s", name, e)
        value = None
    finally:
        _note_dns(time.monotonic() - started, timeout)
    if len(_TXT_SEEN) > 10_000:
        _TXT_SEEN.clear()
    _TXT_SEEN[key] = (value, time.monotonic() + 300.0)
    return value


_DNS_DOWN_UNTIL = 0.0


def _dns_down() -> bool:
    return time.monotonic() < _DNS_DOWN_UNTIL


def _note_dns(elapsed: float, timeout: float) -> None:
    global _DNS_DOWN_UNTIL
    if elapsed >= timeout * 0.9:
        _DNS_DOWN_UNTIL = time.monotonic() + 60.0
        log.warning("DNS does not answer within %.1f s: local DKIM/SPF checks are off for a minute", timeout)


def _domain(value: str | None) -> str | None:
    return value.rsplit("@", 1)[-1] if value else None


def _tag(signature: str, name: str) -> str | None:
    for part in "".join(signature.split()).split(";"):
        key, _, value = part.partition("=")
        if key == name:
            return value
    return None
