"""Request tallies come out as the usual Prometheus counter and histogram."""

from __future__ import annotations

import time
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from api.request_metrics import Metrics


def _samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_counts_by_status_and_latency_by_route() -> None:
    metrics = Metrics()
    for seconds in (0.0004, 0.001, 0.003, 20.0):  # 0.001 sits on a bound: le is inclusive
        metrics.observe("/v1/route", "GET", 200, seconds)
    metrics.observe("/v1/route", "GET", 422, 0.0002)
    got = _samples(metrics)
    route = (("method", "GET"), ("route", "/v1/route"))
    assert got[("geo_router_http_requests_total", (*route, ("status", "200")))] == 4
    assert got[("geo_router_http_requests_total", (*route, ("status", "422")))] == 1
    bucket = "geo_router_http_request_duration_seconds_bucket"
    assert got[(bucket, (("le", "0.0005"), *route))] == 2
    assert got[(bucket, (("le", "0.001"), *route))] == 3
    assert got[(bucket, (("le", "0.005"), *route))] == 4
    assert got[(bucket, (("le", "10.0"), *route))] == 4
    assert got[(bucket, (("le", "+Inf"), *route))] == 5
    assert got[("geo_router_http_request_duration_seconds_count", route)] == 5
    total = got[("geo_router_http_request_duration_seconds_sum", route)]
    assert abs(total - 20.0046) < 1e-9


def test_versions_and_readiness_are_gauges() -> None:
    metrics = Metrics()
    metrics.set_versions({"kelurahan": "abc"}, {"hospital": "def"})
    got = _samples(metrics)
    assert got[("geo_router_ready", ())] == 1
    key = (("kind", "layer"), ("name", "kelurahan"), ("version", "abc"))
    assert got[("geo_router_layer_version_info", key)] == 1


def test_workers_sharing_a_folder_count_each_others_requests(tmp_path: Path) -> None:
    one = Metrics(tmp_path, worker_id="1", publish_every_s=3600)
    two = Metrics(tmp_path, worker_id="2", publish_every_s=3600)
    try:
        one.observe("/v1/route", "GET", 200, 0.0004)
        two.observe("/v1/route", "GET", 200, 0.002)
        two.observe("/v1/route", "GET", 404, 0.001)
        two.publish()
        got = _samples(one)  # one's live tallies + two's published file
        route = (("method", "GET"), ("route", "/v1/route"))
        assert got[("geo_router_http_requests_total", (*route, ("status", "200")))] == 2
        assert got[("geo_router_http_requests_total", (*route, ("status", "404")))] == 1
        assert got[("geo_router_http_request_duration_seconds_count", route)] == 3
        bucket = "geo_router_http_request_duration_seconds_bucket"
        assert got[(bucket, (("le", "0.0005"), *route))] == 1
        # one has published nothing yet: two sees only itself until it does
        assert _samples(two)[("geo_router_http_requests_total", (*route, ("status", "200")))] == 1
        one.close()  # a last publication on the way out
        assert _samples(two)[("geo_router_http_requests_total", (*route, ("status", "200")))] == 2
    finally:
        one.close()
        two.close()


def test_a_torn_or_foreign_file_in_the_folder_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "worker-9.json").write_text("[[1, 2", encoding="utf-8")
    (tmp_path / "worker-8.json").write_text('{"not": "rows"}', encoding="utf-8")
    metrics = Metrics(tmp_path, worker_id="1", publish_every_s=3600)
    try:
        metrics.observe("/livez", "GET", 200, 0.0001)
        route = (("method", "GET"), ("route", "/livez"))
        assert (
            _samples(metrics)[("geo_router_http_requests_total", (*route, ("status", "200")))] == 1
        )
    finally:
        metrics.close()


def test_publishing_runs_in_the_background(tmp_path: Path) -> None:
    metrics = Metrics(tmp_path, worker_id="7", publish_every_s=0.05)
    try:
        metrics.observe("/livez", "GET", 200, 0.0001)
        deadline = time.monotonic() + 5
        while not (tmp_path / "worker-7.json").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert (tmp_path / "worker-7.json").exists()
    finally:
        metrics.close()
