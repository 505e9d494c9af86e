"""Request ids made by the middleware layer."""

from __future__ import annotations

import os
import re
import sys

import pytest

from api.middleware import REQUEST_ID_OK, new_request_id


def test_request_ids_are_32_hex_digits_and_unique() -> None:
    made = [new_request_id() for _ in range(10_000)]
    assert len(set(made)) == len(made)
    assert all(re.fullmatch(rb"[0-9a-f]{32}", rid) for rid in made)
    assert all(REQUEST_ID_OK.match(rid) for rid in made[:10])


@pytest.mark.skipif(sys.platform == "win32", reason="needs os.fork")
def test_a_forked_worker_gets_its_own_random_half() -> None:
    parent = new_request_id()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id and leave at once
        os.write(write, new_request_id())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64)
    os.close(read)
    os.waitpid(pid, 0)
    assert child[:16] != parent[:16]


def test_fastapi_telemetry_is_off_unless_opentelemetry_is_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from api.app import _telemetry_off

    for name in [n for n in os.environ if n.startswith(("OTEL_", "FASTAPI_OTEL_"))]:
        monkeypatch.delenv(name)
    off = {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
    assert _telemetry_off() in (off, {})  # {} only for a FastAPI without the parameter
    monkeypatch.setenv("OTEL_SERVICE_NAME", "geo-router")
    assert _telemetry_off() == {}
