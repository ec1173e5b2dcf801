"""`[logging] format = "json"`: one JSON object per line on stderr (with the traceback when there is one), what
log shippers take as it is; aiosmtpd's per-command lines stay out unless the level is DEBUG; the version banner."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

from tests.conftest import ROOT


def test_json_lines_and_the_banner(tmp_path):
    env = {**os.environ, "HELPDESK_GATEWAY__LOGGING__FORMAT": "json", "HELPDESK_GATEWAY__STORAGE__DATA_DIR": str(tmp_path)}
    code = ("import logging, sys; from gateway.cli import State; State(None).config; "
            "log = logging.getLogger('gateway'); from gateway.logging_setup import banner; log.info(banner()); "
            "logging.getLogger('mail.log').info('250 OK to someone@example.org')\n"
            "try:\n    1/0\nexcept ZeroDivisionError:\n    log.exception('it failed')")
    r = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    lines = [json.loads(line) for line in r.stderr.splitlines()]
    assert [x["msg"] for x in lines][0].startswith("helpdesk-gateway 0.") and lines[0]["level"] == "INFO"
    assert lines[1]["msg"] == "it failed" and "ZeroDivisionError" in lines[1]["exc"] and lines[1]["logger"] == "gateway"
    assert len(lines) == 2  # aiosmtpd's line is not there at INFO


def test_text_is_the_default():
    from gateway.logging_setup import TEXT_FORMAT, setup

    root = logging.getLogger()
    saved = (list(root.handlers), root.level, logging.getLogger("mail.log").level)
    try:
        setup("INFO")
        assert root.handlers[0].formatter._fmt == TEXT_FORMAT
        assert logging.getLogger("mail.log").level == logging.WARNING
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging.getLogger("mail.log").setLevel(saved[2])
