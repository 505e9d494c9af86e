"""Who the client is: the peer, or what a trusted proxy says in ``X-Forwarded-For``.

Behind a load balancer every connection comes from the balancer; its ``X-Forwarded-For``
names the client, but only a configured proxy may say so (``GEO_ROUTER_TRUSTED_PROXIES``:
addresses or networks, comma-separated; none by default), or any caller could claim to be
``127.0.0.1``. The header is read from the right: each hop appends the address it saw, so
the rightmost address that is not itself a trusted proxy is the client. The loopback check
of open mode (``api.auth``) and the connection cap (``api.connections``) use this one
resolution.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

__all__ = ["TrustedProxies", "client_host"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An IP address (IPv6 brackets and an IPv4 ``:port`` tolerated), or None."""
    text = text.strip().strip("[]")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        host, _, port = text.rpartition(":")
        if port.isdigit() and "." in host:
            try:
                return ipaddress.ip_address(host)
            except ValueError:
                return None
        return None


class TrustedProxies:
    """The configured proxies (``ServerSettings.trusted_proxies``, checked when loaded)."""

    def __init__(self, networks: tuple[_Network, ...] = ()) -> None:
        self.networks = networks

    @classmethod
    def parse(cls, text: str) -> TrustedProxies:
        """``"10.0.0.0/8, 192.0.2.7"``; ``ValueError`` naming a bad entry."""
        networks = []
        for entry in filter(None, (part.strip() for part in text.split(","))):
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(
                    f"GEO_ROUTER_TRUSTED_PROXIES: {entry!r} is not an address or network"
                ) from None
        return cls(tuple(networks))

    def trusts(self, host: str | None) -> bool:
        """Whether ``host`` (a peer address) is a configured proxy."""
        if not self.networks or not host:
            return False
        address = _address(host)
        return address is not None and any(address in net for net in self.networks)

    def resolve(self, peer: str | None, forwarded: list[bytes]) -> str | None:
        """The client address of a request from ``peer`` with these ``X-Forwarded-For`` values."""
        if not self.trusts(peer) or not forwarded:
            return peer
        hops = [hop.strip() for value in forwarded for hop in value.decode("latin-1").split(",")]
        for hop in reversed(hops):
            if _address(hop) is None:
                return None  # a malformed hop: nobody can be sure who this is
            if not self.trusts(hop):
                return hop.strip("[]")
        return hops[0].strip("[]") if hops else peer


def client_host(scope: Mapping[str, Any], proxies: TrustedProxies) -> str | None:
    """The resolved client address of an ASGI request (None when unknown)."""
    client = scope.get("client")
    peer: str | None = client[0] if client else None
    if not proxies.networks:
        return peer
    forwarded = [value for name, value in scope["headers"] if name == b"x-forwarded-for"]
    return proxies.resolve(peer, forwarded)
