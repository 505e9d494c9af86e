"""The service's Prometheus metrics: requests and latencies tallied in plain Python.

``prometheus_client``'s Counter and Histogram take a lock and walk the buckets on every
observation, a few microseconds a request on a hot path that routes a point in tens. Here
each (route, method, status) keeps a count, a sum and bucket counts in a list, updated only
from the event loop's thread, and a collector turns them into the usual metric families when
``/metrics`` is scraped. Layer versions and readiness stay ordinary gauges.

With several worker processes (``geo-router serve --workers N``), a scrape reaches one of them.
Given a shared folder, each worker publishes its tallies there once a second (a JSON file per
process, replaced atomically) and the collector adds the other workers' latest files to its
own, so ``/metrics`` counts every worker's requests, at most a second late for the others.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from bisect import bisect_left
from collections.abc import Iterator
from pathlib import Path

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


_Key = tuple[str, str, int]


def _merged(rows: list[tuple[_Key, int, float, list[int]]]) -> dict[_Key, _Tally]:
    """Tallies summed by (route, method, status)."""
    out: dict[_Key, _Tally] = {}
    for key, count, total_s, buckets in rows:
        tally = out.setdefault(key, _Tally())
        tally.count += count
        tally.total_s += total_s
        tally.buckets = [a + b for a, b in zip(tally.buckets, buckets, strict=True)]
    return out


def _rows(tallies: dict[_Key, _Tally]) -> list[tuple[_Key, int, float, list[int]]]:
    """A snapshot of live tallies as plain rows (the event loop may add keys meanwhile)."""
    return [(key, t.count, t.total_s, list(t.buckets)) for key, t in list(tallies.items())]


class _SharedFolder:
    """Where the worker processes of one server publish their tallies (a file each)."""

    def __init__(self, folder: Path, worker_id: str) -> None:
        self.folder = folder
        self.own = folder / f"worker-{worker_id}.json"
        folder.mkdir(parents=True, exist_ok=True)

    def publish(self, rows: list[tuple[_Key, int, float, list[int]]]) -> None:
        """Replace this worker's file with ``rows`` (readers never see half a file)."""
        data = [[*key, count, total_s, buckets] for key, count, total_s, buckets in rows]
        partial = self.own.with_suffix(".tmp")
        partial.write_text(json.dumps(data), encoding="utf-8")
        os.replace(partial, self.own)

    def others(self) -> list[tuple[_Key, int, float, list[int]]]:
        """The rows every other worker published last (unreadable files are skipped)."""
        rows: list[tuple[_Key, int, float, list[int]]] = []
        for path in sorted(self.folder.glob("worker-*.json")):
            if path == self.own:
                continue
            with contextlib.suppress(OSError, ValueError, TypeError):
                for route, method, status, count, total_s, buckets in json.loads(
                    path.read_text(encoding="utf-8")
                ):
                    rows.append(((route, method, int(status)), count, total_s, buckets))
        return rows


class _RequestCollector:
    """Yields the request counter and latency histogram families from the tallies."""

    def __init__(self, tallies: dict[_Key, _Tally], shared: _SharedFolder | None) -> None:
        self._tallies = tallies
        self._shared = shared

    def collect(self) -> Iterator[Metric]:
        """The two families, as prometheus_client's Counter and Histogram would give them."""
        rows = _rows(self._tallies)
        if self._shared is not None:
            rows += self._shared.others()
        tallies = sorted(_merged(rows).items())
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
    """The service's Prometheus metrics, in a registry of their own (one per app).

    Parameters
    ----------
    shared_dir
        A folder the server's worker processes share: this one publishes its request
        tallies there every ``publish_every_s`` and counts the others' in ``/metrics``.
        None (one process): nothing is written.
    worker_id
        This worker's file name in ``shared_dir`` (default: the process id).
    """

    def __init__(
        self,
        shared_dir: Path | None = None,
        *,
        worker_id: str | None = None,
        publish_every_s: float = 1.0,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._tallies: dict[_Key, _Tally] = {}
        self._shared = (
            _SharedFolder(Path(shared_dir), worker_id or str(os.getpid()))
            if shared_dir is not None
            else None
        )
        self._stop = threading.Event()
        self.registry.register(_RequestCollector(self._tallies, self._shared))
        if self._shared is not None:
            threading.Thread(
                target=self._publish_until_closed,
                args=(publish_every_s,),
                name="geo-router-metrics",
                daemon=True,
            ).start()
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

    def publish(self) -> None:
        """Write this worker's tallies to the shared folder now (no-op without one)."""
        if self._shared is not None:
            self._shared.publish(_rows(self._tallies))

    def close(self) -> None:
        """Stop publishing, after a last publication."""
        if not self._stop.is_set():
            self._stop.set()
            with contextlib.suppress(OSError):
                self.publish()

    def _publish_until_closed(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            try:
                self.publish()
            except OSError:  # a full or vanished folder: the next round tries again
                continue

    def set_versions(self, layers: dict[str, str], facilities: dict[str, str]) -> None:
        """Publish the loaded layer and facility versions."""
        self.layer_info.clear()
        for name, version in layers.items():
            self.layer_info.labels("layer", name, version).set(1)
        for name, version in facilities.items():
            self.layer_info.labels("facility", name, version).set(1)
        self.ready.set(1)
