"""Shared pieces of the operator scripts (soak, overload): a served city, a lean HTTP client.

``serve_city`` runs ``geo-router serve`` as an operator would (supervisor, guarded protocol,
admission control), on 127.0.0.1 only, in a process group of its own that is killed at exit.
``Connection`` is a minimal HTTP/1.1 keep-alive client on asyncio streams: a Python load
generator spends most of its time in its HTTP library, and this one does little more than
write the request and read ``Content-Length`` bytes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from _servers import HOST, REPO_ROOT, free_port, launch, stop_servers

__all__ = ["HOST", "REPO_ROOT", "free_port", "stop_servers"]  # re-exported for the scripts


def serve_city(
    city: Path,
    data_dir: Path,
    log: Path,
    *,
    workers: int = 1,
    cpus: Sequence[int] | None = None,
    env: dict[str, str] | None = None,
) -> tuple[str, subprocess.Popen[bytes]]:
    """Start ``geo-router serve`` for ``city`` (its workers on ``cpus`` when given)."""
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("GEO_ROUTER_")}
    environment |= {"GEO_ROUTER_DATA_DIR": str(data_dir), **(env or {})}
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])
    )
    command = [sys.executable, "-m", "geo_router", "serve", "--city", str(city)]
    command += ["--port", str(port), "--workers", str(workers)]
    if cpus and shutil.which("taskset"):
        command = ["taskset", "-c", ",".join(map(str, cpus)), *command]
    return f"http://{HOST}:{port}", launch(command, environment, log)


def wait_ready(base: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    """Until ``/readyz`` answers 200 (served workers accept only once their city is in)."""
    port = int(base.rsplit(":", 1)[1])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited during startup; see {log}")
        try:
            with socket.create_connection((HOST, port), timeout=2) as sock:
                sock.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if sock.recv(64).split(b" ", 2)[1] == b"200":
                    return
        except (OSError, IndexError):
            pass
        time.sleep(0.3)
    raise SystemExit(f"{base} not ready within {timeout:.0f} s; see {log}")


class Connection:
    """One keep-alive HTTP/1.1 connection; ``request`` answers (status, retry_after)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.last_used = time.monotonic()

    @classmethod
    async def open(cls, port: int, client: int = 0) -> Connection:
        """Connect to the local server from loopback address number ``client``.

        Many clients, not one: the server caps the connections of each client address
        (``GEO_ROUTER_MAX_CONNECTIONS_PER_CLIENT``), and a crowd of callers is many addresses.
        """
        source = f"127.1.{client // 250 % 250}.{client % 250 + 1}"
        reader, writer = await asyncio.open_connection(HOST, port, local_addr=(source, 0))
        return cls(reader, writer)

    async def request(self, raw: bytes) -> tuple[int, bool]:
        """Send one prepared request; the status and whether ``Retry-After`` came with it."""
        self.last_used = time.monotonic()
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length, retry_after, closing = 0, False, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"retry-after":
                retry_after = True
            elif name == b"connection" and value.strip().lower() == b"close":
                closing = True
        if length:
            await self.reader.readexactly(length)
        if closing:
            self.close()
            raise ConnectionResetError("server closed the connection")
        return status, retry_after

    def close(self) -> None:
        """Close the socket."""
        with contextlib.suppress(Exception):
            self.writer.close()


def get(path: str) -> bytes:
    """A prepared ``GET``."""
    return f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()


def post_json(path: str, body: object) -> bytes:
    """A prepared ``POST`` of a JSON body."""
    data = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


def report(category: str, lon: float, lat: float) -> dict[str, object]:
    """A report located by a point (no phone: no rate limit, no personal data)."""
    return {
        "category": category,
        "channel": "call",
        "description": "load test",
        "location": {"lon": round(lon, 6), "lat": round(lat, 6)},
    }


@dataclass
class Tally:
    """Answers of one class of requests: statuses, latencies (s), shed without Retry-After."""

    statuses: dict[int | str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    shed_without_retry_after: int = 0

    def add(self, status: int | str, latency: float, retry_after: bool = True) -> None:
        """Count one answer (a string status is a transport error)."""
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.latencies.append(latency)
        if status in (429, 503) and not retry_after:
            self.shed_without_retry_after += 1

    def count(self, *wanted: int | str) -> int:
        """How many answers had one of these statuses."""
        return sum(n for s, n in self.statuses.items() if s in wanted)

    def ok(self) -> int:
        """2xx answers."""
        return sum(n for s, n in self.statuses.items() if isinstance(s, int) and 200 <= s < 300)

    def total(self) -> int:
        """Every answer or error."""
        return sum(self.statuses.values())

    def percentiles_ms(self, *qs: float) -> list[float]:
        """Latency percentiles in ms (NaN with no sample)."""
        if not self.latencies:
            return [float("nan")] * len(qs)
        values = np.percentile(np.asarray(self.latencies) * 1000, qs)
        return [float(v) for v in values]
