"""Entry points of the processes the gateway starts, wired here like `serve`: each builds its core with
`gateway.app` and hands its channel code a `ChannelContext`, never building one of its own.

    python -m gateway.workers sip CONFIG_JSON VOICE_JSON INDEX PORT
    python -m gateway.workers exec PROGRAM [ARG...]

`sip`: one SIP worker (channels/voice/sipworkers.py). CONFIG_JSON is the gateway's configuration as its parent
resolved it (file and environment), VOICE_JSON the voice section the channel was given; the worker listens on
PORT (0: any), spools its calls under `<spool>/sip-INDEX`, prints `ready PORT` on stdout once it answers, and
stops on SIGTERM or when the gateway dies (`die_with_parent`).
`exec`: a program the gateway runs (Kamailio), made to get SIGTERM when the gateway dies: PR_SET_PDEATHSIG
is set here, then the program replaces this process (the setting survives execve).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from .children import die_with_parent

USAGE = "usage: python -m gateway.workers sip CONFIG_JSON VOICE_JSON INDEX PORT | exec PROGRAM [ARG...]"


def sip_worker(config_json: Path, voice_json: Path, index: int, port: int) -> None:
    # SIGTERM, not SIGKILL: the worker hangs its calls up and delivers what was said (bounded by an alarm).
    die_with_parent(signal.SIGTERM)
    from channels.voice.build import spool_dir
    from channels.voice.settings import VoiceSettings
    from channels.voice.sipworkers import run_worker, worker_settings

    from .app import build_core, channel_context
    from .config import Config

    config = Config.model_validate_json(Path(config_json).read_text(encoding="utf-8"))
    voice = VoiceSettings.model_validate_json(Path(voice_json).read_text(encoding="utf-8"))
    config = config.model_copy(update={"voice": voice})
    logging.basicConfig(level=config.logging.level, stream=sys.stderr,
                        format=f"%(asctime)s %(levelname)s sip-worker-{index} %(name)s: %(message)s")
    own = worker_settings(voice, index, port)
    core = build_core(config, upgrade=False)
    try:
        ctx = channel_context(core, own)
        spool = spool_dir(ctx, own) / f"sip-{index}"

        def announce(bound: int) -> None:
            print(f"ready {bound}", flush=True)

        asyncio.run(run_worker(ctx, own, index, spool=spool, announce=announce))
    finally:
        core.close()


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 5 and argv[0] == "sip":
        sip_worker(Path(argv[1]), Path(argv[2]), int(argv[3]), int(argv[4]))
        return
    if len(argv) >= 2 and argv[0] == "exec":
        die_with_parent(signal.SIGTERM)
        os.execvp(argv[1], argv[1:])
    raise SystemExit(USAGE)


if __name__ == "__main__":
    main()
