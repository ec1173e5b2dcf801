"""Child processes die with the gateway: `die_with_parent()` for every process the gateway starts.

Linux's `prctl(PR_SET_PDEATHSIG, sig)` (prctl(2)) has the kernel send `sig` to this process when its parent
dies, kill -9 included, so no SIP worker, parse worker or helper outlives a crashed gateway. Two rules from the
man page shape how it is used:
- the "parent" is the *thread* that forked the child: spawn children from a thread that lives as long as the
  gateway (the event loop's thread, a pool created at start), never from a short-lived `asyncio.to_thread`
  worker, or the child is signalled when that thread ends;
- the parent may already be gone when the child asks, so the child compares `getppid()` with the pid the
  parent passed it (`PARENT_ENV`, see `child_env()`) and leaves at once when they differ.

Two ways to call it:
- in the child, first thing: `die_with_parent()` (Python children: SIP workers, multiprocessing initializers);
- as `preexec_fn=pdeathsig_preexec(sig)` for a program we exec (Kamailio): the setting survives execve.
The settings survive execve of a non-setuid program, and are cleared by fork, so grandchildren ask themselves.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
from typing import Callable

PR_SET_PDEATHSIG = 1
PARENT_ENV = "HELPDESK_GATEWAY_PARENT_PID"

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_prctl = _libc.prctl  # resolved here, in the parent: a preexec_fn must not load libraries after fork
_prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_prctl.restype = ctypes.c_int


def child_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a child (default: ours) with this process's pid as its expected parent."""
    out = dict(os.environ if env is None else env)
    out[PARENT_ENV] = str(os.getpid())
    return out


def die_with_parent(sig: int = signal.SIGKILL, parent_pid: int | None = None) -> None:
    """Have the kernel send `sig` to this process when its parent dies; exit now if it already has.

    `parent_pid` defaults to `$HELPDESK_GATEWAY_PARENT_PID` (set by `child_env()`), else the current parent.
    Use SIGTERM for a child that must finish something on its way out (it then has to exit by itself), SIGKILL
    (the default) for one with nothing to save.
    """
    if _prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_PDEATHSIG): {os.strerror(err)}")
    if parent_pid is None:
        env = os.environ.get(PARENT_ENV, "")
        parent_pid = int(env) if env.isdigit() else None
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)  # the parent died before we asked: nobody would signal us


def pdeathsig_preexec(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A `preexec_fn` (subprocess / asyncio.create_subprocess_exec) setting PR_SET_PDEATHSIG before exec.

    It only calls the already resolved `prctl`, so it is safe between fork and exec.
    """
    parent = os.getpid()

    def preexec() -> None:
        _prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return preexec
