"""A throwaway Dovecot IMAP server (Debian `dovecot-imapd`) for tests and benches: a generated configuration
in a temporary directory, a passwd-file passdb/userdb, Maildir, plaintext login on a loopback port.

    with Dovecot(users={"desk": "secret"}) as server:
        ImapMailbox(host="127.0.0.1", port=server.port, tls=False, user="desk", password="secret")

Run as root, Dovecot's own processes use the `dovecot`/`dovenull` accounts and the mail is owned by `nobody`
(Dovecot refuses mail access as root); as another user, everything runs as that user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

BINARY = "/usr/sbin/dovecot"


class DovecotMissing(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Dovecot:
    def __init__(self, users: dict[str, str] | None = None, port: int | None = None):
        if not Path(BINARY).exists():
            raise DovecotMissing("Dovecot is not installed (Debian package 'dovecot-imapd')")
        self.users = users or {"desk": "secret"}
        self.port = port or _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="hd-dovecot-"))
        self.proc: subprocess.Popen | None = None

    def _config(self) -> Path:
        root = os.geteuid() == 0
        if root:
            mail_user = pwd.getpwnam("nobody")
            internal, login = "dovecot", "dovenull"
        else:
            mail_user = pwd.getpwuid(os.geteuid())
            internal = login = mail_user.pw_name
        mail = self.dir / "mail"
        mail.mkdir()
        lines = []
        for user, password in self.users.items():
            home = mail / user
            home.mkdir()
            if root:
                os.chown(home, mail_user.pw_uid, mail_user.pw_gid)
            lines.append(f"{user}:{{PLAIN}}{password}:{mail_user.pw_uid}:{mail_user.pw_gid}::{home}::")
        (self.dir / "passwd").write_text("\n".join(lines) + "\n")
        for d in ("run", "state"):
            (self.dir / d).mkdir()
        os.chmod(self.dir, 0o755)
        conf = self.dir / "dovecot.conf"
        conf.write_text(
            f"""
base_dir = {self.dir}/run
state_dir = {self.dir}/state
log_path = {self.dir}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {internal}
default_internal_group = {pwd.getpwnam(internal).pw_name if root else mail_user.pw_name}
default_login_user = {login}
first_valid_uid = {min(mail_user.pw_uid, 1) if not root else mail_user.pw_uid}
mail_location = maildir:~/Maildir
mailbox_idle_check_interval = 1 secs
imap_idle_notify_interval = 1 mins
protocol imap {{
  mail_max_userip_connections = 100
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
  {"" if root else "chroot ="}
}}
service anvil {{
  chroot =
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.dir}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {self.dir}/passwd
}}
"""
        )
        return conf

    def start(self, timeout: float = 15.0) -> Dovecot:
        conf = self._config()
        self.proc = subprocess.Popen([BINARY, "-F", "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out = self.proc.stdout.read().decode(errors="replace") if self.proc.stdout else ""
                raise RuntimeError(f"dovecot exited: {out} {self.log()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(100).startswith(b"* OK"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dovecot did not listen on {self.port}: {self.log()[-2000:]}")

    def log(self) -> str:
        path = self.dir / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Dovecot:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
