"""Prometheus exposition shared by the API (``/metrics``) and the workers.

Besides the process's own counters, ``/metrics`` carries the gauges operators alert on (sync
backlog and lag, failures by reason, circuit state per upstream, stale data...). They come from
the capabilities' console panels, computed at scrape time from the database, so every API
process reports the same numbers however many workers there are. ``_created`` series are off:
they doubled every counter's series and no alert uses them.

The worker processes' own counters (syncs by outcome, their durations, upstream calls...) are
not in the API's registry. ``tether worker --metrics-port`` serves them: the parent points its
spawned children at a private directory (prometheus_client's multiprocess mode) and exposes the
sum over its children on that port, so one scrape target per worker machine, whatever
``--processes`` is, and workers on other machines than the API are covered too.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import ThreadingWSGIServer, make_wsgi_app
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from tether.core.console import Gauge, Panel

logger = logging.getLogger(__name__)
disable_created_metrics()  # type: ignore[no-untyped-call]


class GaugeCollector(Collector):
    """Exposes gauges computed for one scrape, one family per name."""

    def __init__(self, gauges: Sequence[Gauge]) -> None:
        self.gauges = gauges

    def collect(self) -> Iterable[Metric]:
        families: dict[str, GaugeMetricFamily] = {}
        for gauge in self.gauges:
            family = families.get(gauge.name)
            if family is None:
                family = GaugeMetricFamily(gauge.name, gauge.help, labels=sorted(gauge.labels))
                families[gauge.name] = family
            family.add_metric([gauge.labels[k] for k in sorted(gauge.labels)], gauge.value)
        return list(families.values())


def gauges_of(panels: Sequence[Panel]) -> list[Gauge]:
    """The gauges of every capability's panel."""
    return [g for panel in panels for g in panel.gauges]


def exposition(gauges: Sequence[Gauge], *, process: bool = True) -> bytes:
    """The default registry (unless not ``process``) plus the scrape's gauges, in Prometheus
    text format."""
    scraped = CollectorRegistry(auto_describe=False)
    scraped.register(GaugeCollector(gauges))
    return (generate_latest(REGISTRY) if process else b"") + generate_latest(scraped)


async def metrics_response(panels: Sequence[Panel] = ()) -> Response:
    """``/metrics``: process counters, and the gauges of the given panels."""
    body = await run_in_threadpool(exposition, gauges_of(panels))
    return Response(body, media_type=CONTENT_TYPE_LATEST)


MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@contextmanager
def children_metrics(
    host: str, port: int, authorized: Callable[[str], bool]
) -> Iterator[dict[str, str]]:
    """Serve on ``host:port`` the summed counters of the processes started inside the block, to
    callers whose ``Authorization`` header ``authorized`` accepts (others get 401).

    Yields the environment to spawn them with: children read ``PROMETHEUS_MULTIPROC_DIR`` when
    they import prometheus_client, so they must be spawned, not forked, with it set. The port is
    bound first: a taken one raises ``OSError`` before any child starts. The directory is
    removed at the end.
    """
    directory = tempfile.mkdtemp(prefix="tether-worker-metrics-")
    try:
        registry = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        exposition_app = make_wsgi_app(registry)

        def guarded(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
            try:
                allowed = authorized(environ.get("HTTP_AUTHORIZATION", ""))
            except Exception as exc:  # the database down: a short 503, not wsgiref's 500 page
                logger.warning(
                    "worker metrics: cannot check the credential: %s",
                    str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__,
                    extra={"action": "worker_metrics_unavailable"},
                )
                start_response("503 Service Unavailable", [*_TEXT, ("Retry-After", "5")])
                return [b"the credential cannot be checked: the database is unavailable\n"]
            if not allowed:
                start_response("401 Unauthorized", [*_TEXT, ("WWW-Authenticate", "Bearer")])
                return [b"a bearer credential with the read scope is required\n"]
            return exposition_app(environ, start_response)  # type: ignore[no-any-return]

        server = make_server(host, port, guarded, ThreadingWSGIServer, handler_class=_Quiet)
        thread = threading.Thread(target=server.serve_forever, name="worker-metrics", daemon=True)
        thread.start()
        try:
            yield {MULTIPROC_ENV: directory}
        finally:
            server.shutdown()
            server.server_close()
            thread.join()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


_TEXT = [("Content-Type", "text/plain; charset=utf-8")]


class _Quiet(WSGIRequestHandler):
    """No line on stderr per scrape (wsgiref's default)."""

    def log_message(self, format: str, *args: Any) -> None:
        pass
