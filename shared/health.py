"""Health, readiness and metrics over HTTP, for every service.

:class:`~shared.service.EventSourcedService` serves, on the address of
nameko's ``WEB_SERVER_ADDRESS`` (``deploy/nameko.yaml`` takes it from the
environment variable of that name):

- ``GET /health``: liveness. 200 with the service, version and node while the
  process serves requests; it touches neither the database nor the broker.
- ``GET /ready``: readiness. 200 when PostgreSQL answers a query on the
  service's database and a connection to the service's RabbitMQ vhost opens;
  503 otherwise, naming the check that failed and why (the error's type and
  first line, never data).
- ``GET /metrics``: Prometheus text format, from :mod:`shared.metrics`.

A container started without ``WEB_SERVER_ADDRESS`` in its config (the test
fixtures, a bare ``nameko run``) listens on 127.0.0.1 on a port the kernel
picks, so services started side by side never fight over a port; the address
is logged at start and :func:`http_address` finds it.
"""

import json
import logging

import kombu
import psycopg
from nameko.constants import WEB_SERVER_CONFIG_KEY
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import WebServer, parse_address

from shared import metrics
from shared.logs import redact

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = "127.0.0.1:0"
CHECK_TIMEOUT = 3  # seconds, per check
JSON = {"Content-Type": "application/json"}


class HealthWebServer(WebServer):
    """nameko's web server, on an ephemeral local port unless ``WEB_SERVER_ADDRESS`` is set."""

    @property
    def bind_addr(self):
        address = self.container.config.get(WEB_SERVER_CONFIG_KEY) or DEFAULT_ADDRESS
        return parse_address(str(address))

    @property
    def address(self):
        """``(host, port)`` the server listens on, once started."""
        return self._sock.getsockname()[:2] if self._sock is not None else None

    def start(self):
        super().start()
        host, port = self.address
        log.info("health, readiness and metrics on http://%s:%d/", host, port)

    def stop(self):
        if self._gt is not None:
            super().stop()

    def kill(self):
        """Stop listening at once, without waiting for the entrypoints to unregister."""
        self._is_accepting = False
        if self._gt is not None:
            self._gt.kill()
        if self._sock is not None:
            self._sock.close()


class HealthEndpoint(HttpRequestHandler):
    server = HealthWebServer()


http = HealthEndpoint.decorator


def http_address(container):
    """``(host, port)`` of a running container's health server, or None."""
    for extension in container.extensions:
        if isinstance(extension, HealthWebServer):
            return extension.address
    return None


# -- checks ---------------------------------------------------------------------------------------


def _failure(exc):
    first_line = (str(exc).strip().splitlines() or [""])[0][:200]
    return redact(f"{type(exc).__name__}: {first_line}" if first_line else type(exc).__name__)


def check_database(database_url, timeout=CHECK_TIMEOUT):
    """None when PostgreSQL answers a query on the database; the failure otherwise."""
    try:
        with psycopg.connect(database_url, autocommit=True, connect_timeout=timeout) as conn:
            conn.execute("SELECT 1 FROM log_head")
    except Exception as exc:
        return _failure(exc)
    return None


def check_broker(amqp_uri, timeout=CHECK_TIMEOUT):
    """None when a connection to the service's vhost opens; the failure otherwise."""
    conn = kombu.Connection(amqp_uri, connect_timeout=timeout)
    try:
        conn.connect()
    except Exception as exc:
        return _failure(exc)
    finally:
        conn.release()
    return None


def readiness(config):
    """``(ready, checks)``: each check's ``"ok"`` or its failure."""
    failures = {
        "database": check_database(config.database_url),
        "broker": check_broker(config.amqp_uri),
    }
    checks = {name: failure or "ok" for name, failure in failures.items()}
    return not any(failures.values()), checks


# -- responses (what the entrypoints return) -----------------------------------------------------


def liveness_response(config, version):
    body = {"status": "ok", "service": config.service, "version": version, "node": config.node}
    return 200, JSON, json.dumps(body)


def readiness_response(config):
    ready, checks = readiness(config)
    if not ready:
        log.warning("not ready: %s", ", ".join(f"{k} {v}" for k, v in checks.items() if v != "ok"))
    body = {
        "status": "ready" if ready else "not ready",
        "service": config.service,
        "checks": checks,
    }
    return (200 if ready else 503), JSON, json.dumps(body)


def metrics_response(repo):
    return 200, {"Content-Type": metrics.CONTENT_TYPE}, metrics.render(repo)
