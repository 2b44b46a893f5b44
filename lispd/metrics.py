"""Prometheus metrics: the counters and gauges of every part, under stable names.

The daemon keeps its counters as one flat dict (`Daemon.counters()`, what
`lispctl show stats` prints): the fast path's, `map_cache_<name>` and each
control machine's under its prefix. lispd.metrics_catalogue says which
family and labels each is exported under; every catalogued series is there
from the first scrape.

`MetricsServer` serves the text format over HTTP with prometheus_client's
own server, from its threads. The numbers live on the asyncio loop and are
read there only: a scrape asks the loop for a snapshot and waits at most
LOOP_TIMEOUT seconds; a loop that does not answer in time gets a scrape with
the info metrics and `lispd_event_loop_responsive 0` instead of hanging.

This is the only module that imports prometheus_client.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from threading import Thread
from typing import Literal
from wsgiref.simple_server import WSGIServer

import structlog
from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from lispd import __version__
from lispd.metrics_catalogue import CATALOGUE, UNCATALOGUED, series_of

__all__ = ["LOOP_TIMEOUT", "MetricsServer", "exposition"]

log = structlog.get_logger("lispd.metrics")

LOOP_TIMEOUT = 2.0
"""Seconds a scrape waits for the event loop to hand over the numbers."""


@dataclass(frozen=True)
class _Snapshot:
    counters: dict[str, int]
    gauges: dict[str, float]
    dataplane_path: str


def _families(snapshot: _Snapshot | None) -> Iterator[Metric]:
    """The metrics of a snapshot; None: the loop did not answer, only what we know without it."""
    yield InfoMetricFamily("lispd_build", "The lispd that runs.", value={"version": __version__})
    yield GaugeMetricFamily(
        "lispd_event_loop_responsive",
        "1 when the daemon's event loop handed over the numbers for this scrape in time;"
        " 0 when it did not, and the other metrics are left out.",
        value=0 if snapshot is None else 1,
    )
    if snapshot is None:
        return
    yield InfoMetricFamily("lispd_dataplane", "The data-plane path in use.",
                           value={"path": snapshot.dataplane_path})
    samples: dict[str, dict[tuple[str, ...], float]] = {
        family.name: dict.fromkeys(family.series.values(), 0.0) for family in CATALOGUE
    }
    for uncatalogued in UNCATALOGUED.values():
        samples[uncatalogued.name] = {}
    values: Iterable[tuple[Literal["counter", "gauge"], str, float]] = (
        *(("counter", k, float(v)) for k, v in snapshot.counters.items()),
        *(("gauge", k, float(v)) for k, v in snapshot.gauges.items()),
    )
    for kind, flat, value in values:
        family, labels = series_of(flat, kind)
        samples[family.name][labels] = value
    for family in (*CATALOGUE, *UNCATALOGUED.values()):
        series = samples[family.name]
        if not series and not family.series:
            continue  # a family of run-time names, none seen yet
        metric: CounterMetricFamily | GaugeMetricFamily
        if family.kind == "counter":
            metric = CounterMetricFamily(family.name, family.help, labels=family.labels)
        else:
            metric = GaugeMetricFamily(family.name, family.help, labels=family.labels)
        for labels, value in series.items():
            metric.add_metric(labels, value)
        yield metric


class _StaticCollector(Collector):
    def __init__(self, snapshot: _Snapshot | None) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        return _families(self._snapshot)


def exposition(counters: dict[str, int], gauges: dict[str, float], dataplane_path: str) -> bytes:
    """The Prometheus text format of these numbers, as the endpoint serves them."""
    registry = CollectorRegistry()
    registry.register(_StaticCollector(_Snapshot(counters, gauges, dataplane_path)))
    return generate_latest(registry)


class _LoopCollector(Collector):
    """Reads the numbers on the event loop, for a scrape served from another thread."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        read: Callable[[], _Snapshot],
        timeout: float,
    ) -> None:
        self._loop = loop
        self._read = read
        self._timeout = timeout

    def collect(self) -> Iterable[Metric]:
        return _families(self._snapshot())

    def _snapshot(self) -> _Snapshot | None:
        future: concurrent.futures.Future[_Snapshot] = concurrent.futures.Future()

        def fill() -> None:
            # False when the scrape gave up waiting: nobody wants the numbers now.
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(self._read())
            except Exception as error:  # a bug in a part: the scrape reports it (HTTP 500)
                future.set_exception(error)

        try:
            self._loop.call_soon_threadsafe(fill)
        except RuntimeError:  # the loop is closed
            return None
        try:
            return future.result(self._timeout)
        except TimeoutError:
            future.cancel()
            log.warning("metrics_loop_unresponsive", timeout=self._timeout)
            return None


def _where(address: IPv4Address | IPv6Address, port: int) -> str:
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"


class MetricsServer:
    """The Prometheus endpoint (`[daemon] metrics-listen`), served from its own thread."""

    def __init__(  # noqa: PLR0917 - the agreed API
        self,
        loop: asyncio.AbstractEventLoop,
        address: IPv4Address | IPv6Address,
        port: int,
        counters: Callable[[], dict[str, int]],
        gauges: Callable[[], dict[str, float]],
        dataplane_path: Callable[[], str],
        *,
        timeout: float = LOOP_TIMEOUT,
    ) -> None:
        self._address = address
        self._port = port
        self._registry = CollectorRegistry()
        self._registry.register(_LoopCollector(
            loop, lambda: _Snapshot(counters(), gauges(), dataplane_path()), timeout
        ))
        self._server: WSGIServer | None = None
        self._thread: Thread | None = None

    @property
    def port(self) -> int:
        """The bound port once started (the one the system chose for port 0)."""
        return self._port if self._server is None else self._server.server_port

    def start(self) -> None:
        """Listen and serve; OSError, naming the address, when it cannot listen."""
        if self._server is not None:
            raise RuntimeError("the metrics server is already started")
        try:
            self._server, self._thread = start_http_server(
                self._port, str(self._address), self._registry
            )
        except OSError as error:
            raise OSError(
                error.errno, f"metrics-listen {_where(self._address, self._port)}: {error.strerror}"
            ) from error
        log.info("metrics_listening", address=str(self._address), port=self.port)

    def close(self) -> None:
        """Stop serving and free the port (waits up to the server's 0.5 s poll)."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join()
