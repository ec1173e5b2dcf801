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
   `verify_dkim` is on. It needs the signer's public key from DNS (`dnsfunc`, with a short timeout); with no
   DNS answer the mail is simply not authenticated. A mail without an aligned signature costs no lookup.

SPF of our own is not checked here: the SMTP client's address is the previous hop (the desk's MX or relay),
so only the receiving MTA can check it, and its verdict arrives in Authentication-Results.

`SenderCheck` is a plain picklable object: the parse workers (other processes) run it on each mail.
"""

from __future__ import annotations

import logging
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

    @classmethod
    def from_settings(cls, ack) -> SenderCheck:
        return cls(tuple(ack.trusted_authserv_ids), ack.verify_dkim, ack.dns_timeout_seconds)

    def __call__(self, raw: bytes, msg: Message, from_addr: str | None) -> bool:
        if not from_addr or "@" not in from_addr:
            return False
        from_domain = from_addr.rsplit("@", 1)[1].strip().lower().rstrip(".")
        try:
            if self.trusted_authserv_ids and self._by_results(msg, from_domain):
                return True
            if self.verify_dkim and self._by_dkim(raw, msg, from_domain):
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
        wanted = [i for i, sig in enumerate(signatures) if aligned(_tag(str(sig), "d"), from_domain)]
        if not wanted:
            return False
        import dkim

        dnsfunc = self.dnsfunc or dkim.dnsplug.get_txt
        d = dkim.DKIM(raw, timeout=int(max(1, self.dns_timeout)))
        for idx in wanted:
            try:
                if d.verify(idx=idx, dnsfunc=dnsfunc):
                    return True
            except dkim.DKIMException as e:
                log.debug("DKIM signature %d: %s", idx, e)
        return False


def _domain(value: str | None) -> str | None:
    return value.rsplit("@", 1)[-1] if value else None


def _tag(signature: str, name: str) -> str | None:
    for part in "".join(signature.split()).split(";"):
        key, _, value = part.partition("=")
        if key == name:
            return value
    return None
