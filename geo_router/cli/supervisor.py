"""The process supervisor ``geo-router serve`` always runs, and the workers' tie to it.

``serve`` binds the socket once and runs uvicorn's multiprocess supervisor even for one
worker, so that the listening socket outlives every worker:

- ``SIGHUP`` reloads without a failed request: each worker is replaced by a new one, which
  takes traffic only once its city is loaded (the app's lifespan waits for it when served);
  only then is the old worker asked to finish its requests and stop. A worker that does not
  become ready within ``worker_start_timeout_s`` is killed and the old one keeps serving.
  (uvicorn alone: one worker dies on ``SIGHUP``; several get 5 s to start.)
- a worker that dies is replaced; meanwhile new connections wait in the socket's backlog
  instead of being refused;
- ``SIGTERM``/``SIGINT`` stop the workers gracefully, then the supervisor.

Workers exit when the supervisor dies, even by ``kill -9`` (:func:`exit_with_parent`: Linux
``PR_SET_PDEATHSIG``, elsewhere a thread that watches the parent), so no orphan keeps
serving a port nobody supervises.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import resource
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import uvicorn

__all__ = ["SUPERVISOR_PID_ENV", "exit_with_parent", "raise_open_files_limit", "supervise"]

log = logging.getLogger("uvicorn.error")  # the supervisor logs beside uvicorn's own lines

#: The supervisor's pid, for the workers to tie their life to.
SUPERVISOR_PID_ENV = "GEO_ROUTER_SUPERVISOR_PID"
_PR_SET_PDEATHSIG = 1
_WATCH_EVERY_S = 1.0


def raise_open_files_limit() -> int:
    """Raise this process's (and its workers') open-files soft limit to the hard limit.

    Every connection is a file descriptor: at a soft limit of 1,024 a thousand idle or
    trickling sockets leave none for real callers. Returns the limit now in force.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 65_536)
    if wanted > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            return wanted
    return soft


def exit_with_parent() -> bool:
    """Tie this worker's life to the supervisor named in ``GEO_ROUTER_SUPERVISOR_PID``.

    When the supervisor dies the worker gets ``SIGTERM`` (a graceful stop). Does nothing
    outside a supervised worker; returns whether the tie was made.
    """
    expected = os.environ.get(SUPERVISOR_PID_ENV)
    if not expected or not expected.isdigit() or int(expected) == os.getpid():
        return False
    parent = int(expected)
    if not _pdeathsig():
        threading.Thread(
            target=_watch_parent, args=(parent,), name="geo-router-parent-watch", daemon=True
        ).start()
    if os.getppid() != parent:  # the supervisor died before the tie was made
        os.kill(os.getpid(), signal.SIGTERM)
    return True


def _pdeathsig() -> bool:
    """``prctl(PR_SET_PDEATHSIG, SIGTERM)`` on Linux; False where unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent: int) -> None:
    """Poll the parent pid; stop this process gracefully when it is gone."""
    while os.getppid() == parent:
        time.sleep(_WATCH_EVERY_S)
    os.kill(os.getpid(), signal.SIGTERM)


def supervise(config: uvicorn.Config, start_timeout_s: float) -> None:
    """Bind ``config``'s socket and run its workers under the reloading supervisor."""
    from uvicorn.supervisors.multiprocess import Multiprocess, Process

    class Supervisor(Multiprocess):
        """uvicorn's ``Multiprocess`` whose rolling restart waits for the city to load."""

        def restart_all(self) -> None:
            for index, old in enumerate(self.processes):
                if self.should_exit.is_set():
                    return
                new = Process(self.config, self.sockets)
                new.start()
                if not new.wait_until_ready(start_timeout_s, self.should_exit):
                    new.kill()
                    new.join()
                    if not self.should_exit.is_set():
                        log.error(
                            "new worker [%s] not ready within %.0f s; keeping [%s], reload aborted",
                            new.pid,
                            start_timeout_s,
                            old.pid,
                        )
                    return
                old.terminate()
                old.join()
                self.processes[index] = new
            log.info("reload done: %d worker(s) replaced", len(self.processes))

    os.environ[SUPERVISOR_PID_ENV] = str(os.getpid())
    sock = config.bind_socket()
    try:
        Supervisor(config, sockets=[sock]).run()
    finally:
        sock.close()
