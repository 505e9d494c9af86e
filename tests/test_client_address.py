"""The client address: X-Forwarded-For only from trusted proxies, the same for open mode."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.client_address import TrustedProxies, client_host
from api.settings import AppSettings
from geo_router.errors import ConfigurationError


def _scope(peer: str, *forwarded: str) -> dict[str, object]:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    return {"client": (peer, 4000), "headers": headers}


def test_forwarded_for_counts_only_from_a_trusted_proxy() -> None:
    proxies = TrustedProxies.parse("10.0.0.0/8, 192.0.2.7")
    assert client_host(_scope("10.1.2.3", "203.0.113.9"), proxies) == "203.0.113.9"
    assert client_host(_scope("192.0.2.7", "127.0.0.1"), proxies) == "127.0.0.1"
    # anyone else claiming loopback is just its own address
    assert client_host(_scope("198.51.100.4", "127.0.0.1"), proxies) == "198.51.100.4"
    assert client_host(_scope("198.51.100.4", "127.0.0.1"), TrustedProxies()) == "198.51.100.4"


def test_the_rightmost_untrusted_hop_is_the_client() -> None:
    proxies = TrustedProxies.parse("10.0.0.0/8")
    # the client forged a first hop; the trusted chain appended the real one
    scope = _scope("10.0.0.2", "127.0.0.1, 203.0.113.9, 10.0.0.1")
    assert client_host(scope, proxies) == "203.0.113.9"
    assert client_host(_scope("10.0.0.2", "10.0.0.5", "10.0.0.1"), proxies) == "10.0.0.5"
    assert client_host(_scope("10.0.0.2", "not-an-ip"), proxies) is None
    assert client_host(_scope("10.0.0.2", "[2001:db8::1]"), proxies) == "2001:db8::1"
    assert client_host(_scope("10.0.0.2"), proxies) == "10.0.0.2"  # no header: the peer


def test_a_bad_trusted_proxy_setting_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="GEO_ROUTER_TRUSTED_PROXIES"):
        AppSettings.of(trusted_proxies="10.0.0.0/8, nonsense", _env_file=None)


def test_open_mode_serves_the_resolved_loopback_client_only(
    demo_router: object, tmp_path: Path
) -> None:
    settings = AppSettings.of(data_dir=tmp_path, trusted_proxies="10.9.9.9", _env_file=None)
    app = create_app(settings, city_loader=lambda s: (demo_router, None))
    with TestClient(app, client=("10.9.9.9", 5000)) as proxy:  # a load balancer on the box
        assert (
            proxy.get("/v1/subscribers", headers={"X-Forwarded-For": "127.0.0.1"}).status_code
            == 200
        )
        remote = proxy.get("/v1/subscribers", headers={"X-Forwarded-For": "203.0.113.9"})
        assert remote.status_code == 401
    with TestClient(app, client=("127.0.0.1", 5000)) as local:  # loopback, not a proxy
        assert (
            local.get("/v1/subscribers", headers={"X-Forwarded-For": "203.0.113.9"}).status_code
            == 200
        )
