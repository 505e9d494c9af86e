"""Request ids: made or taken from ``X-Request-ID`` by the middleware, read by everyone else.

The id lives in the request's ASGI scope (``scope["state"]``, Starlette's ``request.state``);
``request_id_of`` reads it from a scope or from a request alike.
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
from collections.abc import Mapping, MutableMapping
from typing import Any

__all__ = ["REQUEST_ID_OK", "new_request_id", "request_id_of", "set_request_id"]

#: What a client's ``X-Request-ID`` may be to be kept (else a new one is made).
REQUEST_ID_OK = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")


class _RequestIds:
    """Request ids: 32 hex digits, a random per-process half and a counter half.

    Unique like uuid4 (a fresh random half per process, forks included) at a tenth of its
    cost on the hot path; request ids are labels, not secrets.
    """

    def __init__(self) -> None:
        self.reseed()
        os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        """A new random half and a fresh counter (in a new process)."""
        self.prefix = secrets.token_hex(8).encode()
        self.counter = itertools.count(1)

    def next(self) -> bytes:
        """The next id."""
        return b"%s%016x" % (self.prefix, next(self.counter))


_REQUEST_IDS = _RequestIds()


def new_request_id() -> bytes:
    """A fresh request id (32 hex digits, unique across processes)."""
    return _REQUEST_IDS.next()


def set_request_id(scope: MutableMapping[str, Any], request_id: str) -> None:
    """Record the request's id in its scope (the middleware does, before anything answers)."""
    state = scope.get("state")
    if state is None:
        state = scope["state"] = {}
    state["request_id"] = request_id


def request_id_of(scope: Mapping[str, Any]) -> str | None:
    """The request id recorded in ``scope``: an ASGI scope or a request (None outside one)."""
    state = scope.get("state")
    request_id = state.get("request_id") if isinstance(state, dict) else None
    return request_id if isinstance(request_id, str) else None
