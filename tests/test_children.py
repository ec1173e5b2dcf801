"""gateway/children.py: a child the gateway starts dies with it (PR_SET_PDEATHSIG), kill -9 included, and one
whose parent is already gone when it asks leaves at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT, wait_for

PARENT = r'''
import subprocess, sys, time
sys.path.insert(0, sys.argv[1])
from gateway.children import child_env, pdeathsig_preexec
python = subprocess.Popen([sys.executable, "-c",
    "import sys; sys.path.insert(0, sys.argv[1]); from gateway.children import die_with_parent; die_with_parent(); "
    "import time; time.sleep(60)", sys.argv[1]], env=child_env())
program = subprocess.Popen(["sleep", "60"], preexec_fn=pdeathsig_preexec())
print(python.pid, program.pid, flush=True)
time.sleep(60)
'''


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_children_die_when_their_parent_is_killed_with_sigkill():
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(ROOT)], stdout=subprocess.PIPE, text=True)
    pids = [int(x) for x in parent.stdout.readline().split()]
    time.sleep(0.3)  # the python child has asked for its signal
    assert all(running(p) for p in pids)
    parent.kill()
    parent.wait(5)
    try:
        wait_for(lambda: not any(running(p) for p in pids), timeout=10)
    finally:
        for p in pids:
            if running(p):
                os.kill(p, signal.SIGKILL)


def test_a_child_whose_parent_is_already_gone_leaves_at_once():
    code = "import sys; sys.path.insert(0, sys.argv[1]); from gateway.children import die_with_parent; die_with_parent(); print('stayed')"
    env = {**os.environ, "HELPDESK_GATEWAY_PARENT_PID": "999999999"}  # not our pid: the parent it expected died
    p = subprocess.run([sys.executable, "-c", code, str(ROOT)], env=env, capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "stayed" not in p.stdout
