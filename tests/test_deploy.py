"""Deployment files: the systemd units pass `systemd-analyze verify` (Debian's `systemd` package) with no
warning; the Grafana dashboard is valid JSON whose queries name only metrics /metrics serves; compose and the
Dockerfile use /readyz, publish the RTP range and run from the wheel as a non-root user on a read-only root."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from tests.conftest import ROOT, missing

DEPLOY = ROOT / "deploy"
OPT_EXE = "/opt/helpdesk-gateway/.venv/bin/helpdesk-gateway"


def test_systemd_units_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        missing("systemd-analyze is not installed (Debian package 'systemd')")
    exe = tmp_path / "helpdesk-gateway"  # the units name the installed command: a stand-in at a path that exists
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    units = []
    for unit in sorted((DEPLOY / "systemd").glob("*.service")):
        text = unit.read_text()
        assert OPT_EXE in text
        for key in ("ProtectSystem=strict", "ReadWritePaths=/var/lib/helpdesk-gateway", "NoNewPrivileges=true",
                    "Restart=on-failure", "EnvironmentFile=", "TimeoutStopSec="):
            assert key in text, f"{unit.name}: {key}"
        (tmp_path / unit.name).write_text(text.replace(OPT_EXE, str(exe)))
        units.append(str(tmp_path / unit.name))
    assert {Path(u).name for u in units} == {"helpdesk-gateway.service", "helpdesk-gateway-worker.service"}
    r = subprocess.run([analyze, "verify", *units], capture_output=True, text=True, timeout=120)
    ours = [line for line in (r.stdout + r.stderr).splitlines() if "helpdesk-gateway" in line]
    assert r.returncode == 0 and not ours, r.stdout + r.stderr
    stop = int(re.search(r"TimeoutStopSec=(\d+)", (DEPLOY / "systemd" / "helpdesk-gateway.service").read_text()).group(1))
    assert stop > 10 + 15  # above the graceful stop: the web's 10 s for requests in flight, the relay timeout


def test_grafana_dashboard_names_existing_metrics(tmp_path):
    from gateway.metrics import Metrics

    dashboard = json.loads((DEPLOY / "grafana" / "helpdesk-gateway.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    named = set()
    for e in exprs:
        named |= set(re.findall(r"\b(helpdesk_[a-z_]+)", e))
    assert named, "the dashboard queries no metric"
    # Every metric the gateway serves, with the suffixes Prometheus adds to counters and histograms.
    served = set()
    m = Metrics()
    for family in m.registry.collect():
        served.add(family.name)
        served |= {s.name for s in family.samples}
    served |= {"helpdesk_outbox_depth", "helpdesk_outbox_oldest_age_seconds", "helpdesk_outbox_failed",
               "helpdesk_transcription_queue_depth", "helpdesk_webhook_backlog_events", "helpdesk_tickets",
               "helpdesk_sip_active_calls", "helpdesk_database_up", "helpdesk_transcript_wait_seconds_bucket",
               "helpdesk_sla_breaches_total"}
    m.smtp_replies.labels("2xx")
    m.contacts.labels("email", "created")
    m.intake_seconds.labels("email")
    served |= {s.name for f in m.registry.collect() for s in f.samples}
    assert named <= served, named - served


def test_container_files_use_readyz_and_the_wheel():
    docker = (ROOT / "Dockerfile").read_text()
    compose = (ROOT / "compose.yaml").read_text()
    assert "/readyz" in docker and "/readyz" in compose
    assert "pip wheel" in docker and ".whl" in docker and "USER helpdesk" in docker
    assert "models install --defaults" in docker
    assert "read_only: true" in compose and "40000-40100:40000-40100/udp" in compose
    assert "HELPDESK_GATEWAY__VOICE__SIP__PUBLIC_ADDRESS" in compose and "HELPDESK_GATEWAY__EMAIL__ACK__RELAY_HOST" in compose


def test_every_outgoing_mail_key_is_in_the_sample_config_with_its_default():
    import tomllib

    from channels.email.settings import AckSettings

    text = (ROOT / "config" / "gateway.toml").read_text()
    shown = tomllib.loads(text)["email"]["ack"]
    defaults = AckSettings()
    for name in AckSettings.model_fields:
        if getattr(defaults, name) is None:  # TOML has no null: shown commented out
            assert re.search(rf"^# {name} = ", text, re.M), name
        else:
            assert name in shown, name
            assert AckSettings(**{name: shown[name]}).model_dump()[name] == defaults.model_dump()[name], name
