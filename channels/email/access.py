"""Who may hand mail to the SMTP receiver: STARTTLS (RFC 3207) and AUTH PLAIN / LOGIN (RFC 4954, RFC 4616).

Both are off by default; they are for the relays that use them (`email.smtp.tls_cert`, `tls_key`,
`require_tls`, `auth`, `auth_users_file`, `auth_require_tls`).

- `tls_context`: the server's TLS context from PEM files; TLS 1.2 or newer; no client certificate asked.
- `PasswordFile`: the relays' accounts, one `user:hash` line each with an Argon2 hash (never a clear
  password on disk); `#` comments and blank lines are ignored. The file is read again when it changes, so an
  account is added or revoked without a restart; a file that has become unreadable or malformed refuses
  everyone (an error of ours: AUTH answers `454 4.7.0`, a temporary failure) rather than keep old accounts.

Make a line with `python -m channels.email.access USER` (it asks for the password).
"""

from __future__ import annotations

import logging
import ssl
import threading
from pathlib import Path

from argon2 import PasswordHasher, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError

log = logging.getLogger("channels.email.smtp")


def tls_context(cert: Path, key: Path | None = None) -> ssl.SSLContext:
    """The server side of STARTTLS; a missing or unreadable file fails here, at start, naming itself."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)  # no client certificates, TLS >= 1.2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as e:
        raise ValueError(f"email.smtp.tls_cert / tls_key: cannot load {cert}{f' and {key}' if key else ''}: {e}") from e
    return context


def read_password_file(path: Path) -> dict[str, str]:
    """`user:argon2-hash` lines to a dict; a line that is not one is an error that names the file and line."""
    users: dict[str, str] = {}
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, _, stored = line.rpartition(":")  # an Argon2 hash has no colon; a user name might
        try:
            if not user or not stored.startswith("$argon2"):
                raise InvalidHashError
            extract_parameters(stored)
        except InvalidHashError:
            raise ValueError(
                f"{path}:{n}: expected 'user:$argon2id$…' (make one with: python -m channels.email.access USER)"
            ) from None
        if user in users:
            raise ValueError(f"{path}:{n}: user {user!r} appears twice")
        users[user] = stored
    return users


class PasswordFile:
    """The accounts of `auth_users_file`, checked with Argon2 (slow on purpose: call `verify` off the loop)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._hasher = PasswordHasher()
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._users: dict[str, str] = {}
        self._current()  # read now: a bad file stops the start with its name and line
        # Unknown users are checked against this, so that a quick 535 does not tell which users exist.
        self._decoy = self._hasher.hash("not a password of anyone")

    def _current(self) -> dict[str, str]:
        st = self.path.stat()
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        with self._lock:
            if stamp != self._stamp:
                self._users = read_password_file(self.path)
                self._stamp = stamp
            return self._users

    def verify(self, user: bytes | str, password: bytes | str) -> bool:
        """True for a known user with the right password. Raises (OSError, ValueError) when the file is broken."""
        if isinstance(user, bytes):
            user = user.decode("utf-8", "replace")
        stored = self._current().get(user)
        try:
            return self._hasher.verify(stored or self._decoy, password) and stored is not None
        except (VerificationError, InvalidHashError):
            return False


def _main() -> None:
    import getpass
    import sys

    if len(sys.argv) != 2:
        sys.exit("usage: python -m channels.email.access USER   (prints a line for email.smtp.auth_users_file)")
    password = getpass.getpass(f"password for {sys.argv[1]}: ")
    if password != getpass.getpass("again: "):
        sys.exit("the two passwords differ")
    print(f"{sys.argv[1]}:{PasswordHasher().hash(password)}")


if __name__ == "__main__":
    _main()
