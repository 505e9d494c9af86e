"""Requests come out as the usual Prometheus counter and histogram, summed over workers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from api.request_metrics import Metrics, multiprocess_dir


def _samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return _parsed(generate_latest(metrics.registry).decode())


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


_WORKER = """
import sys
from prometheus_client import generate_latest
from api.request_metrics import Metrics, multiprocess_dir

assert multiprocess_dir() is not None, "not in multiprocess mode"
metrics = Metrics()
metrics.set_versions({"kelurahan": "abc"}, {})
for status, seconds in [tuple(row.split(":")) for row in sys.argv[2].split(",")]:
    metrics.observe("/v1/route", "GET", int(status), float(seconds))
if sys.argv[1] == "scrape":
    sys.stdout.write(generate_latest(metrics.registry).decode())
else:
    metrics.close()  # shutting down: its live gauges leave the sums, its counts stay
"""


def _worker(folder: Path, role: str, requests: str) -> str:
    """One worker process in multiprocess mode: observes ``status:seconds,...``."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    done = subprocess.run(
        [sys.executable, "-c", _WORKER, role, requests],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def _parsed(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_workers_in_multiprocess_mode_count_each_others_requests(tmp_path: Path) -> None:
    _worker(tmp_path, "exit", "200:0.0004")
    got = _parsed(_worker(tmp_path, "scrape", "200:0.002,404:0.001"))
    route = (("method", "GET"), ("route", "/v1/route"))
    assert got[("geo_router_http_requests_total", (*route, ("status", "200")))] == 2
    assert got[("geo_router_http_requests_total", (*route, ("status", "404")))] == 1
    assert got[("geo_router_http_request_duration_seconds_count", route)] == 3
    bucket = "geo_router_http_request_duration_seconds_bucket"
    assert got[(bucket, (("le", "0.0005"), *route))] == 1
    assert got[(bucket, (("le", "0.001"), *route))] == 2
    assert got[(bucket, (("le", "+Inf"), *route))] == 3
    # the worker that shut down no longer counts among the live ones
    assert got[("geo_router_ready", ())] == 1
    key = (("kind", "layer"), ("name", "kelurahan"), ("version", "abc"))
    assert got[("geo_router_layer_version_info", key)] == 1
    assert len(list(tmp_path.glob("gauge_live*.db"))) == 2  # the scraping worker's only


def test_in_memory_without_a_multiprocess_folder() -> None:
    assert multiprocess_dir() is None  # the test process: PROMETHEUS_MULTIPROC_DIR unset
