"""Prometheus metrics for one server: rotations, failures, watchers, request latency by route."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["KNOWN_METHODS", "Metrics", "method_label"]

#: Methods labelled as sent; any other (a client may send any token) is counted as ``other``,
#: so unauthenticated requests cannot add series, or megabytes of label text, to /metrics.
KNOWN_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


def method_label(method: str) -> str:
    """The ``method`` label for a request: the method when well known, else ``other``."""
    return method if method in KNOWN_METHODS else "other"


_Family = type[CounterMetricFamily] | type[GaugeMetricFamily]
#: What the process reports at each scrape, by its key in the read dict (``securekey_<key>``).
_LIVE: dict[str, tuple[_Family, str]] = {
    "scheduled_rotations": (
        CounterMetricFamily,
        "Rotations performed by this process's scheduler.",
    ),
    "rotation_failures": (
        CounterMetricFamily,
        "Scheduled rotations that failed and were rolled back.",
    ),
    "watchers": (GaugeMetricFamily, "Open config-var streams on this process."),
    "config_cache_hits": (CounterMetricFamily, "Config reads served from memory."),
}


class _Live(Collector):
    def __init__(self, read: Callable[[], dict[str, float]]) -> None:
        self.read = read

    def collect(self) -> Iterable[CounterMetricFamily | GaugeMetricFamily]:
        values = self.read()
        for key, (family, documentation) in _LIVE.items():
            yield family(f"securekey_{key}", documentation, value=values.get(key, 0.0))


class Metrics:
    """A registry of its own per server, so several servers can live in one process (tests)."""

    def __init__(self, read_live: Callable[[], dict[str, float]]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Histogram(
            "securekey_request_duration_seconds",
            "HTTP request latency by route template.",
            ["method", "route", "status"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.manual_rotations = Counter(
            "securekey_manual_rotations",
            "Rotations requested through the API.",
            ["emergency"],
            registry=self.registry,
        )
        self.registry.register(_Live(read_live))

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
