"""Kamailio in front of several call-handling workers: its configuration, rendered, and its process.

`config/kamailio/kamailio.cfg` is a plain Kamailio 5.6 configuration with `${...}` placeholders (the public
address and port, the dispatcher list, pike's limits); `render()` fills them in and writes the dispatcher list
(RFC 3261 SIP URIs of the workers, one per line, set 1). `KamailioProcess` checks the rendered file with
`kamailio -c`, runs Kamailio in the foreground (`-DD -E`, its log on stderr into our log) and stops it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import string
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from channels.datafiles import config_root

log = logging.getLogger("channels.voice.kamailio")

# Kamailio is exec'd through the gateway's child shim, so it gets SIGTERM (and stops its own children) when the
# gateway dies, kill -9 included (gateway/workers.py `exec`, gateway/children.py).
DIE_WITH_PARENT = (sys.executable, "-m", "gateway.workers", "exec")
TEMPLATE = config_root() / "kamailio" / "kamailio.cfg"  # the checkout's or the installed wheel's (channels/datafiles.py)
MODULE_DIRS = ("/usr/lib/x86_64-linux-gnu/kamailio/modules", "/usr/lib/aarch64-linux-gnu/kamailio/modules", "/usr/lib/kamailio/modules")


@dataclass(frozen=True)
class Rendered:
    config: Path
    dispatcher_list: Path


def module_dir() -> str:
    for d in MODULE_DIRS:
        if Path(d, "dispatcher.so").exists():
            return d
    raise RuntimeError("Kamailio's modules are not installed (Debian package 'kamailio')")


def render(
    directory: Path,
    *,
    host: str,
    port: int,
    destinations: list[str],
    pike_requests: int = 200,
    pike_seconds: int = 2,
    children: int = 4,
    debug: int = 1,
    template: Path = TEMPLATE,
) -> Rendered:
    """Write kamailio.cfg and dispatcher.list for `destinations` (sip:host:port) into `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    dispatcher_list = directory / "dispatcher.list"
    dispatcher_list.write_text("".join(f"1 {d}\n" for d in destinations), encoding="utf-8")
    values = dict(
        host=host, port=port, dispatcher_list=dispatcher_list, modules=module_dir(), pike_requests=pike_requests,
        pike_seconds=pike_seconds, children=children, debug=debug,
    )
    text = string.Template(template.read_text(encoding="utf-8")).safe_substitute({k: str(v) for k, v in values.items()})
    left = [name for name in values if "${" + name + "}" in text]
    if left:
        raise ValueError(f"{template}: placeholders not filled: {left}")
    config = directory / "kamailio.cfg"
    config.write_text(text, encoding="utf-8")
    return Rendered(config, dispatcher_list)


def binary(name: str = "kamailio") -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if not found:
        raise RuntimeError("kamailio is not installed (Debian package 'kamailio')")
    return found


class KamailioProcess:
    """Kamailio running a rendered configuration, in the foreground, stopped with SIGTERM."""

    name = "voice-kamailio"

    def __init__(self, rendered: Rendered, *, kamailio: str = "kamailio", run_dir: Path | None = None):
        self.rendered, self.kamailio = rendered, kamailio
        self.run_dir = Path(run_dir or rendered.config.parent)
        self.proc: asyncio.subprocess.Process | None = None
        self._log_task: asyncio.Task | None = None

    def check(self) -> None:
        """`kamailio -c`: the configuration parses and its modules load (raises with Kamailio's words)."""
        out = subprocess.run([binary(self.kamailio), "-c", "-f", str(self.rendered.config)], capture_output=True, text=True)
        if out.returncode != 0:
            lines = [ln for ln in out.stderr.splitlines() if "ERROR" in ln or "error" in ln] or out.stderr.splitlines()[-3:]
            raise RuntimeError(f"{self.rendered.config}: Kamailio refuses the configuration: {' / '.join(lines)[:800]}")

    async def start(self) -> None:
        self.check()
        cmd = [binary(self.kamailio), "-DD", "-E", "-f", str(self.rendered.config), "-Y", str(self.run_dir),
               "-P", str(self.run_dir / "kamailio.pid"), "-w", str(self.run_dir)]
        env = {**os.environ, "HELPDESK_GATEWAY_PARENT_PID": str(os.getpid())}
        self.proc = await asyncio.create_subprocess_exec(
            *DIE_WITH_PARENT, *cmd, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, start_new_session=True
        )
        self._log_task = asyncio.create_task(self._relay_log(), name="kamailio-log")
        await self._until_it_answers()
        log.info("kamailio %d answering for the workers (%s)", self.proc.pid, self.rendered.config)

    async def _until_it_answers(self, timeout: float = 15.0) -> None:
        """Wait until Kamailio answers an OPTIONS on its UDP port (its own 200: `uri == myself`)."""
        import re

        text = self.rendered.config.read_text(encoding="utf-8")
        m = re.search(r"^listen=udp:([^:\s]+):(\d+)", text, re.M)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            if self.proc.returncode is not None:
                raise RuntimeError(f"kamailio exited at start with status {self.proc.returncode} (see the log above)")
            if m is None or await asyncio.to_thread(_answers_options, m[1], int(m[2])):
                return
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"kamailio did not answer on {m[1]}:{m[2]} within {timeout:.0f} s")
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._log_task is not None:
            await asyncio.gather(self._log_task, return_exceptions=True)
        self.proc = None

    async def _relay_log(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        async for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            if not line:
                continue
            level = (logging.ERROR if "ERROR" in line or "CRITICAL" in line
                     else logging.WARNING if ("WARN" in line or "ALERT" in line)
                     else logging.INFO if "NOTICE" in line else logging.DEBUG)
            log.log(level, "%s", line)


def _answers_options(host: str, port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        s.settimeout(0.3)
        me = s.getsockname()[1]
        s.sendto((f"OPTIONS sip:{host}:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {host}:{me};branch=z9hG4bK-start-{me}\r\n"
                  f"From: <sip:gateway@{host}>;tag=start\r\nTo: <sip:{host}:{port}>\r\nCall-ID: start-{me}@{host}\r\n"
                  f"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode(), (host, port))
        try:
            return s.recv(4096).startswith(b"SIP/2.0 ")
        except OSError:
            return False
