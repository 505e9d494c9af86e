"""The service's Prometheus metrics: requests and latencies tallied in plain Python.

``prometheus_client``'s Counter and Histogram take a lock and walk the buckets on every
observation, a few microseconds a request on a hot path that routes a point in tens. Here
each (route, method, status) keeps a count, a sum and bucket counts in a list, updated only
from the event loop's thread, and a collector turns them into the usual metric families when
``/metrics`` is scraped. Layer versions and readiness stay ordinary gauges.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

__all__ = ["LATENCY_BUCKETS_S", "Metrics"]

#: Upper bounds of the latency histogram, in seconds.
LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)


class _Tally:
    """Requests of one (route, method, status): count, latency sum and per-bucket counts."""

    __slots__ = ("buckets", "count", "total_s")

    def __init__(self) -> None:
        self.count = 0
        self.total_s = 0.0
        self.buckets = [0] * (len(LATENCY_BUCKETS_S) + 1)  # the last one is +Inf


class _RequestCollector:
    """Yields the request counter and latency histogram families from the tallies."""

    def __init__(self, tallies: dict[tuple[str, str, int], _Tally]) -> None:
        self._tallies = tallies

    def collect(self) -> Iterator[Metric]:
        """The two families, as prometheus_client's Counter and Histogram would give them."""
        tallies = list(self._tallies.items())  # a snapshot: the loop may add keys meanwhile
        requests = CounterMetricFamily(
            "geo_router_http_requests",
            "HTTP requests by route template, method and status.",
            labels=["route", "method", "status"],
        )
        merged: dict[tuple[str, str], tuple[list[int], float]] = {}
        for (route, method, status), tally in tallies:
            requests.add_metric([route, method, str(status)], tally.count)
            buckets, total = merged.get((route, method), ([0] * len(tally.buckets), 0.0))
            merged[(route, method)] = (
                [a + b for a, b in zip(buckets, tally.buckets, strict=True)],
                total + tally.total_s,
            )
        yield requests
        latency = HistogramMetricFamily(
            "geo_router_http_request_duration_seconds",
            "Request latency by route template and method.",
            labels=["route", "method"],
        )
        bounds = [floatToGoString(b) for b in LATENCY_BUCKETS_S] + ["+Inf"]
        for (route, method), (buckets, total) in merged.items():
            cumulative, running = [], 0
            for bound, count in zip(bounds, buckets, strict=True):
                running += count
                cumulative.append((bound, running))
            latency.add_metric([route, method], cumulative, total)
        yield latency


class Metrics:
    """The service's Prometheus metrics, in a registry of their own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._tallies: dict[tuple[str, str, int], _Tally] = {}
        self.registry.register(_RequestCollector(self._tallies))
        self.layer_info = Gauge(
            "geo_router_layer_version_info",
            "Loaded zone layers and facility sets (1 = loaded) with their versions.",
            ["kind", "name", "version"],
            registry=self.registry,
        )
        self.ready = Gauge(
            "geo_router_ready", "1 once the city layers are loaded.", registry=self.registry
        )

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one request and its latency (from the event loop's thread only)."""
        tally = self._tallies.get((route, method, status))
        if tally is None:
            tally = self._tallies.setdefault((route, method, status), _Tally())
        tally.count += 1
        tally.total_s += seconds
        tally.buckets[bisect_left(LATENCY_BUCKETS_S, seconds)] += 1

    def set_versions(self, layers: dict[str, str], facilities: dict[str, str]) -> None:
        """Publish the loaded layer and facility versions."""
        self.layer_info.clear()
        for name, version in layers.items():
            self.layer_info.labels("layer", name, version).set(1)
        for name, version in facilities.items():
            self.layer_info.labels("facility", name, version).set(1)
        self.ready.set(1)
