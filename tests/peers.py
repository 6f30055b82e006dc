"""Programs the tests start beside the code under test (Kamailio, sipp): each in a process group of its own,
stopped as a group, and recorded, so that the session can fail when one outlives the run.

Kamailio forks its workers: stopping only the process we started left a worker running, orphaned, after
a whole test run. A group holds the program and everything it forked.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

STARTED: list[tuple[str, int]] = []  # (what, process group id) of every peer started in this session


def popen(what: str, args: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
    """subprocess.Popen in a new session (its own process group), recorded for `survivors()`."""
    proc: subprocess.Popen[Any] = subprocess.Popen(args, start_new_session=True, **kwargs)
    STARTED.append((what, proc.pid))
    return proc


def members(group: int) -> list[int]:
    """Live processes of a process group (zombies, dead but not yet reaped, are not alive)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == group:  # state, ppid, pgrp
            found.append(int(entry.name))
    return found


def _signal_group(group: int, sig: signal.Signals) -> None:
    try:
        os.killpg(group, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop(proc: subprocess.Popen[Any], wait: float = 5.0) -> None:
    """SIGTERM to the program and everything it forked; SIGKILL to whatever is left after `wait` seconds."""
    group = proc.pid
    _signal_group(group, signal.SIGTERM)
    try:
        proc.wait(wait)
    except subprocess.TimeoutExpired:
        _signal_group(group, signal.SIGKILL)
        proc.wait(wait)
    deadline = time.monotonic() + wait
    while members(group):
        if time.monotonic() > deadline:
            _signal_group(group, signal.SIGKILL)
            deadline = time.monotonic() + wait
        time.sleep(0.02)


def survivors() -> list[tuple[str, int, list[int]]]:
    """Peers of this session with a process still alive: (what, group, pids)."""
    left = []
    for what, group in STARTED:
        pids = members(group)
        if pids:
            left.append((what, group, pids))
    return left


def kill(left: list[tuple[str, int, list[int]]]) -> None:
    for _, group, _ in left:
        _signal_group(group, signal.SIGKILL)
