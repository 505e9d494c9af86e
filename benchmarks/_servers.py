"""Servers the operator scripts start: loopback only, each in a process group of its own.

A server's supervisor and workers share its process group, so one signal to the group stops
(or, for the kill -9 script, kills) all of them; every server started here is stopped when the
script exits, also on errors.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"  # never anything else: these scripts must not leave the machine
_STARTED: list[subprocess.Popen[bytes]] = []


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def launch(command: Sequence[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``command`` in the repository, output appended to ``log``, in a new session."""
    with log.open("ab") as sink:
        process = subprocess.Popen(
            list(command),
            cwd=REPO_ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the workers go with it
        )
    if not _STARTED:
        atexit.register(stop_servers)
    _STARTED.append(process)
    return process


def latest_exited() -> bool:
    """Whether the server started last has exited (a failed start)."""
    return bool(_STARTED) and _STARTED[-1].poll() is not None


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a server's whole process group (supervisor and workers) and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    if process in _STARTED:
        _STARTED.remove(process)


def stop_servers() -> None:
    """Stop every server started here: SIGTERM to its group, SIGKILL after 30 s."""
    while _STARTED:
        process = _STARTED.pop()
        if process.poll() is not None:
            continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            kill_group(process)
