"""Health, readiness and metrics over HTTP, against the real servers, broken for real."""

import os
import time
import urllib.parse
import uuid

import psycopg
import pytest
import requests
from nameko.standalone.rpc import ServiceRpcProxy

from services.proposals.service import ProposalsService
from shared import metrics
from shared.auth import issue_token
from shared.health import http_address
from shared.relay import Relay
from tests import factories as f
from tests.conftest import AUTH_SECRET

SOURCE = "/kelurahan/32.75.05.1002/proposals"


@pytest.fixture
def database_url(server_database_url):
    """A database of its own (not a schema), so that its connections can be denied."""
    name = "rembug_t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(server_database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urllib.parse.urlsplit(server_database_url)
    yield urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))
    with psycopg.connect(server_database_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def service(start_service):
    container = start_service(ProposalsService)
    host, port = http_address(container)
    container.base = f"http://{host}:{port}"
    return container


def get(service, path):
    return requests.get(f"{service.base}{path}", timeout=20)


def parse(text):
    """``{(name, frozenset(labels)): value}`` from Prometheus text; checks HELP and TYPE come first."""
    samples, described = {}, set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            described.add(line.split()[2])
        elif line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            name, _, labels = series.partition("{")
            assert name in described, f"{name} has no TYPE line before its samples"
            pairs = [p.split("=", 1) for p in labels.rstrip("}").split(",") if p]
            samples[(name, frozenset((k, v.strip('"')) for k, v in pairs))] = float(value)
    return samples


def value(samples, name, **labels):
    wanted = {("service", "proposals"), ("kelurahan", "32.75.05.1002"), *labels.items()}
    return samples[(name, frozenset(wanted))]


def submit(rabbit_config, count):
    token = issue_token(AUTH_SECRET, f.rt_chair())
    with ServiceRpcProxy(
        "proposals", {"AMQP_URI": rabbit_config["AMQP_URI"]}, context_data={"authorization": token}
    ) as rpc:
        for _ in range(count):
            rpc.submit(**f.proposal())


def test_health_answers_with_the_version_and_needs_no_token(service):
    response = get(service, "/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["service"] == "proposals"
    assert body["node"] == "kelurahan/32.75.05.1002" and body["version"]
    assert get(service, "/nothing-here").status_code == 404


def test_ready_is_503_while_the_database_refuses_connections_and_200_after(
    service, database_url, server_database_url
):
    assert get(service, "/ready").json() == {
        "status": "ready",
        "service": "proposals",
        "checks": {"database": "ok", "broker": "ok"},
    }
    name = urllib.parse.urlsplit(database_url).path.lstrip("/")
    with psycopg.connect(server_database_url, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name]
        )
        try:
            response = get(service, "/ready")
            assert response.status_code == 503
            body = response.json()
            assert body["status"] == "not ready" and body["checks"]["broker"] == "ok"
            assert body["checks"]["database"].startswith("OperationalError")
            assert get(service, "/health").status_code == 200  # alive, only not ready
        finally:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    assert get(service, "/ready").status_code == 200


def test_ready_is_503_while_the_broker_refuses_the_vhost_and_200_after(service, rabbit_config):
    api = os.environ["RABBIT_API_URI"]
    vhost = urllib.parse.quote(rabbit_config["vhost"], safe="")
    user = rabbit_config["username"]
    permissions = f"{api}/api/permissions/{vhost}/{user}"
    assert requests.delete(permissions, timeout=10).status_code == 204
    try:
        response = get(service, "/ready")
        assert response.status_code == 503
        checks = response.json()["checks"]
        assert checks["database"] == "ok" and checks["broker"] != "ok"
    finally:
        everything = {"configure": ".*", "write": ".*", "read": ".*"}
        assert requests.put(permissions, json=everything, timeout=10).status_code in (201, 204)
    deadline = time.monotonic() + 20
    while get(service, "/ready").status_code != 200:
        assert time.monotonic() < deadline, "not ready again after the broker let it back in"
        time.sleep(0.5)


def test_metrics_match_the_store_the_relay_and_replication(service, rabbit_config, database_url):
    submit(rabbit_config, 3)
    with psycopg.connect(database_url) as conn:
        head = conn.execute("SELECT sequence FROM log_head").fetchone()[0]
    assert head == 3  # one event per submission

    response = get(service, "/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = parse(response.text)
    assert value(samples, "rembug_events_stored_total") == head
    target = {"target": "proposals.events"}
    assert value(samples, "rembug_events_relayed_total", **target) == 0  # no relay ran yet
    assert value(samples, "rembug_relay_lag_events", **target) == head
    assert not [key for key in samples if key[0].startswith("rembug_replication")]

    relay = Relay(database_url, rabbit_config["AMQP_URI"], "proposals", SOURCE)
    try:
        assert relay.run_once() == head
    finally:
        relay.close()
    submit(rabbit_config, 1)
    samples = parse(get(service, "/metrics").text)
    assert value(samples, "rembug_events_stored_total") == head + 1
    assert value(samples, "rembug_events_relayed_total", **target) == head
    assert value(samples, "rembug_relay_lag_events", **target) == 1

    with psycopg.connect(database_url, autocommit=True) as conn:  # as the city node keeps it
        conn.execute(  # the replication migration may have made it already
            "CREATE TABLE IF NOT EXISTS replication_positions (source text PRIMARY KEY, "
            "position bigint, source_head bigint, received_at timestamptz)"
        )
        conn.execute(
            "INSERT INTO replication_positions (source, position, source_head, received_at) VALUES "
            "('/kelurahan/32.75.05.1002/proposals', 90, 100, now() - interval '42 seconds'), "
            "('/kelurahan/32.75.08.1003/proposals', 7, 7, now())"
        )
    samples = parse(get(service, "/metrics").text)
    behind = {"source": "/kelurahan/32.75.05.1002/proposals"}
    level = {"source": "/kelurahan/32.75.08.1003/proposals"}
    assert value(samples, "rembug_replication_lag_events", **behind) == 10
    assert value(samples, "rembug_replication_lag_events", **level) == 0
    assert 42 <= value(samples, "rembug_replication_lag_seconds", **behind) < 60
    assert value(samples, "rembug_replication_lag_seconds", **level) < 10


def test_other_modules_add_their_gauges_and_a_broken_one_hides_nothing(service):
    def pending(repo):
        with repo.db.read() as conn:
            return [({"queue": 'a "quoted"\\name'}, conn.execute("SELECT 5 AS n").fetchone()["n"])]

    def broken(repo):
        raise RuntimeError("this collector always fails")

    metrics.register("rembug_test_pending", "Pending things\nof a test", pending)
    metrics.register("rembug_test_broken", "Always fails", broken)
    try:
        text = get(service, "/metrics").text
    finally:
        metrics.REGISTRY.unregister("rembug_test_pending")
        metrics.REGISTRY.unregister("rembug_test_broken")
    assert "# HELP rembug_test_pending Pending things\\nof a test" in text
    assert "# TYPE rembug_test_pending gauge" in text
    assert 'queue="a \\"quoted\\"\\\\name"' in text
    assert "rembug_test_broken" not in text
    assert "rembug_events_stored_total{" in text
