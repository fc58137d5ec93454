"""The HTTP endpoint of ``twin ingest`` and ``twin sim``: ``/metrics`` for Prometheus, ``/health`` for a
monitor.

``/health`` answers 200 ``ok`` while the service's check finds nothing wrong, else 503 ``degraded`` with
the reasons (a source or the broker down, points waiting in the spool), as the twin's does.
prometheus-client's WSGI app serves the metrics; stdlib wsgiref, threaded as prometheus-client's own
server is, serves both paths on the one port (``ingest.metrics_port``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from core.errors import LinetwinError

#: (status "ok" or "degraded", details) of the service now
HealthCheck = Callable[[], tuple[str, dict[str, Any]]]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # one line per scrape would drown the log
        del format, args


def serve(port: int, registry: CollectorRegistry, health: HealthCheck, host: str = "127.0.0.1") -> WSGIServer:
    """Serve ``/metrics`` and ``/health`` on ``host:port`` from a daemon thread."""
    what = "ingest.metrics_port or plant.health_port"
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/health":
            status, details = health()
            body = json.dumps({"status": status, **details}).encode()
            code = "200 OK" if status == "ok" else "503 Service Unavailable"
            start_response(code, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        return metrics(environ, start_response)

    try:
        server = make_server(host, port, app, server_class=_ThreadingServer, handler_class=_Quiet)
    except OSError as exc:
        raise LinetwinError(
            f"cannot serve metrics and health on {host}:{port} ({exc.strerror}); set {what}"
        ) from None
    threading.Thread(target=server.serve_forever, name="ingest-http", daemon=True).start()
    return server
