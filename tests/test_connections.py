"""The guarded uvicorn protocol of ``geo-router serve``: header timeout, connection cap per
client, quiet pipelined disconnects (issue 10, Medium 7 and the Low item on tracebacks)."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from typing import Any

import httpx
import orjson
import pytest

REPORT = (
    b'{"category":"fire","channel":"call","description":"p","location":{"lon":107.6,"lat":-6.9}}'
)
POST = (
    b"POST /v1/reports HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\n\r\n" % len(REPORT) + REPORT
)
JSON = {"content-type": "application/json"}
GET = b"GET /v1/route?lon=107.6&lat=-6.9 HTTP/1.1\r\nHost: t\r\n\r\n"


def _trickler(port: int, source: str) -> socket.socket:
    """A connection from ``source`` that has sent only the start of a request line."""
    sock = socket.socket()
    sock.bind((source, 0))
    sock.settimeout(30)
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"GET /v1/route?lon=10")
    return sock


def _closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closed (or reset: a capped connection) the connection."""
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@pytest.mark.slow
def test_trickling_sockets_are_capped_and_timed_out_while_emergencies_pass(serve: Any) -> None:
    served = serve(GEO_ROUTER_HEADER_TIMEOUT_S="3", GEO_ROUTER_MAX_CONNECTIONS_PER_CLIENT="50")
    served.wait_ready()
    socks = [_trickler(served.port, "127.0.0.2") for _ in range(200)]  # one attacker address
    started = time.monotonic()
    try:
        answers = []
        for _ in range(10):  # another address: its emergencies are answered meanwhile
            r = httpx.post(served.base + "/v1/reports", content=REPORT, headers=JSON, timeout=10)
            answers.append(r.status_code)
        assert answers == [201] * 10
        assert time.monotonic() - started < 15
        closed = [_closed_by_server(sock) for sock in socks]  # capped at once or timed out
        assert all(closed), f"{closed.count(False)} still open"
        assert time.monotonic() - started < 30
    finally:
        for sock in socks:
            sock.close()


@pytest.mark.slow
def test_a_header_that_never_ends_is_cut_but_a_keep_alive_connection_is_not(serve: Any) -> None:
    served = serve(GEO_ROUTER_HEADER_TIMEOUT_S="1", GEO_ROUTER_KEEP_ALIVE_S="5")
    served.wait_ready()
    slow = _trickler(served.port, "127.0.0.1")
    with httpx.Client(base_url=served.base) as client:  # one keep-alive connection
        assert client.get("/livez").status_code == 200
        time.sleep(2.5)  # idle past the header timeout, within the keep-alive timeout
        assert client.get("/livez").status_code == 200
    assert _closed_by_server(slow)


@pytest.mark.slow
def test_pipelining_clients_that_hang_up_log_no_traceback(serve: Any) -> None:
    served = serve()
    served.wait_ready()

    def hang_up(i: int) -> None:
        sock = socket.create_connection(("127.0.0.1", served.port))
        sock.sendall((POST if i % 2 else GET) * 50)
        if i % 3 == 0:  # some reset the connection instead of closing it
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        time.sleep(0.002 * (i % 5))
        sock.close()

    threads = [threading.Thread(target=hang_up, args=(i,)) for i in range(60)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    time.sleep(2)
    assert httpx.get(served.base + "/readyz", timeout=5).status_code == 200
    log = served.output()
    assert "Traceback" not in log and "ERROR" not in log, log[-3000:]


async def _echo_app(scope: Any, receive: Any, send: Any) -> None:
    """A bare ASGI app answering 200 ``ok`` (the body read), recording what reached it."""
    _REACHED.append(f"{scope['method']} {scope['path']}?{scope['query_string'].decode()}")
    if b"slow" in scope["query_string"]:
        await asyncio.sleep(2.0)  # longer than the keep-alive timeout
    while (await receive()).get("more_body", False):
        pass
    length = (b"content-length", b"2")
    await send({"type": "http.response.start", "status": 200, "headers": [length]})
    await send({"type": "http.response.body", "body": b"ok"})


_REACHED: list[str] = []


def _answer(reader: Any, head: bool = False) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 answer read from a socket file: status, headers, body (none to a HEAD)."""
    status = int(reader.readline().split()[1])
    headers: dict[str, str] = {}
    while (line := reader.readline().decode().strip()) != "":
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, b"" if head else reader.read(int(headers.get("content-length", 0)))


@pytest.fixture
def overloaded_server() -> Any:
    """The guarded protocol in this process (a thread) over ``_echo_app``, its admission
    control overloaded for good: every lower-lane request is to be shed."""
    import uvicorn

    from api.admission import Admission, AdmissionLimits
    from api.connections import GuardedHttpToolsProtocol, shed_with

    admission = Admission(
        AdmissionLimits(shed_lag_s=-1.0, retry_after_s=7), lambda: frozenset({"fire"})
    )
    admission.open_connections = lambda: 10**6
    _REACHED.clear()
    config = uvicorn.Config(
        _echo_app,
        port=0,
        http=GuardedHttpToolsProtocol,
        lifespan="off",
        log_level="warning",
        timeout_keep_alive=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    shed_with(admission)
    thread.start()
    try:
        for _ in range(500):
            if server.started:
                break
            time.sleep(0.01)
        yield server.servers[0].sockets[0].getsockname()[1], admission
    finally:
        shed_with(None)
        server.should_exit = True
        thread.join(timeout=10)


def test_an_overloaded_worker_sheds_lower_gets_unread_and_keeps_the_connection(
    overloaded_server: Any,
) -> None:
    port, admission = overloaded_server
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        reader = sock.makefile("rb")
        sock.sendall(GET)
        status, headers, body = _answer(reader)
        assert (status, headers["retry-after"]) == (503, "7")
        assert headers["content-type"] == "application/problem+json"
        problem = orjson.loads(body)
        assert problem["lane"] == "route" and problem["request_id"] == headers["x-request-id"]
        assert "connection" not in headers  # the same connection serves on
        urgent = b"GET /v1/route?lon=107.6&lat=-6.9&category=fire HTTP/1.1\r\nHost: t\r\n\r\n"
        listing = b"GET /v1/reports HTTP/1.1\r\nHost: t\r\n\r\n"
        head = b"HEAD /v1/reports HTTP/1.1\r\nHost: t\r\n\r\n"
        probe = b"GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n"
        sock.sendall(urgent + listing + POST + head + probe + GET)  # pipelined
        assert [_answer(reader)[0] for _ in range(3)] == [200, 503, 200]
        status, headers, _ = _answer(reader, head=True)
        assert status == 503 and int(headers["content-length"]) > 0  # but no body: a HEAD
        assert _answer(reader)[0] == 200 and _answer(reader)[0] == 503
        sock.sendall(GET.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
        status, headers, _ = _answer(reader)
        assert (status, headers["connection"]) == (503, "close")
        assert reader.read() == b""  # closed, as asked
        # Thousands pipelined behind a request the app answers: shed one by one, no recursion.
        sock.close()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        reader = sock.makefile("rb")
        # A shed answer starts the idle clock; a slow request in the same read stops it.
        slow = b"GET /v1/route?category=fire&slow=1 HTTP/1.1\r\nHost: t\r\n\r\n"
        sock.sendall(GET + slow)
        assert _answer(reader)[0] == 503 and _answer(reader)[0] == 200
        sock.sendall(POST + GET * 3000)
        assert _answer(reader)[0] == 200
        assert {_answer(reader)[0] for _ in range(3000)} == {503}
    assert _REACHED == [
        "GET /v1/route?lon=107.6&lat=-6.9&category=fire",
        "POST /v1/reports?",
        "GET /readyz?",
        "GET /v1/route?category=fire&slow=1",
        "POST /v1/reports?",
    ]
    assert admission.shed["route"] == 3004 and admission.shed["other"] == 2
