"""The installed wheel carries everything `serve` needs: build the wheel from the checkout, install it into a fresh
venv outside the checkout, run `helpdesk-gateway serve` from an empty folder with only environment overrides,
and fetch `/`, `/desk/login`, `/readyz` and `/metrics`.

To stay fast the venv reuses the suite venv's installed dependencies (a `.pth` line naming its site-packages, so
its own `.pth` files, the checkout's editable install among them, are not processed) and the wheel goes in with
`--no-deps`: what is tested is the built wheel, and only it provides `gateway`, `channels` and `ticketing`."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import httpx

from tests.conftest import ROOT, free_port, wait_for


def _pip(*args: str, cwd: Path | None = None) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args], check=True, capture_output=True,
                   cwd=cwd, timeout=600)


def test_the_installed_wheel_serves_from_an_empty_folder(tmp_path):
    # Built from a copy of what the wheel is made of, so the build leaves nothing in the checkout.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("gateway", "channels", "ticketing", "config"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.wav", "*.pyc"))
    dist = tmp_path / "dist"
    _pip("wheel", "--no-deps", "-w", str(dist), str(src))
    (wheel,) = dist.glob("helpdesk_gateway-*.whl")

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "_suite_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _pip("--python", str(python), "install", "--no-deps", str(wheel))

    empty = tmp_path / "empty"
    empty.mkdir()
    where = subprocess.run([str(python), "-c", "import gateway, channels.web; print(gateway.__file__)"], cwd=empty,
                           check=True, capture_output=True, text=True, env={"PATH": os.environ["PATH"]}).stdout
    assert str(site) in where and str(ROOT) not in where  # the wheel's code, not the checkout's

    web = free_port()
    env = {
        "PATH": os.environ["PATH"], "HOME": str(tmp_path),
        "HELPDESK_GATEWAY__STORAGE__DATA_DIR": str(tmp_path / "data"),
        "HELPDESK_GATEWAY__WEB__PORT": str(web), "HELPDESK_GATEWAY__WEB__COOKIE_SECURE": "false",
        "HELPDESK_GATEWAY__EMAIL__SMTP__PORT": str(free_port()),
        "HELPDESK_GATEWAY__VOICE__ENABLED": "false",
    }
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen([str(venv / "bin" / "helpdesk-gateway"), "serve"], cwd=empty, env=env, stdout=log, stderr=log)
    try:
        url = f"http://127.0.0.1:{web}"

        def up():
            if proc.poll() is not None:
                raise AssertionError((tmp_path / "serve.log").read_text()[-3000:])
            try:
                return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=90, interval=0.3)
        with httpx.Client(base_url=url, timeout=30) as c:
            assert c.get("/").status_code == 200 and "<form" in c.get("/").text
            assert c.get("/desk/login").status_code == 200
            assert c.get("/static/style.css").status_code == 200
            ready = c.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert "helpdesk_outbox_depth" in c.get("/metrics").text
        logged = (tmp_path / "serve.log").read_text()
        assert "helpdesk-gateway" in logged and "no mail relay is configured" in logged
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    assert proc.returncode == 0, (tmp_path / "serve.log").read_text()[-3000:]
    assert not list(empty.iterdir())  # nothing written where it was started: everything went to the data dir
    time.sleep(0)
