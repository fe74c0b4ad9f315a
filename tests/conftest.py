"""Fixtures for tests against the real RabbitMQ and PostgreSQL.

The servers are found through ``AMQP_URI``, ``RABBIT_API_URI`` and
``DATABASE_URL`` (defaults: the local servers). When they do not answer and a
Docker engine does, :mod:`tests.servers` starts them with testcontainers.
Each test gets its own RabbitMQ vhost (nameko's ``rabbit_config``) and its own
PostgreSQL schema (``database_url``).
"""

import eventlet

eventlet.monkey_patch()  # before anything opens a socket

import os  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

import psycopg  # noqa: E402
import pytest  # noqa: E402

from shared import db as dbmod  # noqa: E402
from tests import leakwatch, servers  # noqa: E402

AUTH_SECRET = "test-secret-" + "x" * 32
PII_MASTER_KEY = "cmVtYnVnLXRlc3RzLW9ubHktbWFzdGVyLWtleS0zMmI="  # 32 bytes, for tests only


def pytest_configure(config):
    servers.ensure()
    config.option.RABBIT_AMQP_URI = os.environ["AMQP_URI"]
    config.option.RABBIT_API_URI = os.environ["RABBIT_API_URI"]
    config.option.suppress_eventlet_notification = True
    leakwatch.install()


def pytest_sessionfinish(session, exitstatus):
    """Fail the run if personal data was seen in a log, an error reply or an event."""
    found = leakwatch.findings()
    texts, names = leakwatch.watched()
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            f"leak watch: {texts} log lines, error replies and events examined "
            f"for NIK-shaped numbers and {names} generated names: {len(found)} found"
        )
        for where, kind in sorted(set(found)):
            reporter.write_line(f"  personal data ({kind}) in {where}", red=True)
    if found:
        session.exitstatus = 1


def pytest_unconfigure(config):
    servers.stop()


@pytest.fixture(scope="session")
def server_database_url():
    """The test database (created if missing); tests use a schema of it each."""
    return servers.test_database_url()


@pytest.fixture
def database_url(server_database_url):
    """A URL whose connections work in a fresh schema of their own, dropped afterwards."""
    schema = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(server_database_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in server_database_url else "?"
    yield f"{server_database_url}{sep}options=-csearch_path%3D{schema}"
    drop_schema(server_database_url, schema)


def drop_schema(server_database_url, schema, attempts=5):
    """Drop a test's schema and all in it. The test's services may still be at work in it
    (pytest drops it before nameko's ``container_factory`` kills them), and PostgreSQL
    may end the drop as the loser of a deadlock with one of them: it is tried again."""
    for attempt in range(1, attempts + 1):
        try:
            with psycopg.connect(server_database_url, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            return
        except psycopg.errors.DeadlockDetected:
            if attempt == attempts:
                raise
            time.sleep(0.5)


@pytest.fixture
def db(database_url):
    """A migrated platform database in its own schema."""
    database = dbmod.Database(database_url)
    dbmod.migrate(database)
    yield database
    database.close()


@pytest.fixture
def service_env(rabbit_config, database_url):
    """The environment of a kelurahan node (Pengasinan) on this test's vhost and schema."""
    return {
        "KELURAHAN_CODE": "32.75.05.1002",
        "NODE_ROLE": "kelurahan",
        "AMQP_URI": rabbit_config["AMQP_URI"],
        "DATABASE_URL": database_url,
        "AUTH_SECRET": AUTH_SECRET,
        "PII_MASTER_KEY": PII_MASTER_KEY,
    }


@pytest.fixture
def start_service(container_factory, rabbit_config, service_env, monkeypatch):
    """Start a service class as a node's service on this test's vhost and schema."""
    for key, value in service_env.items():
        monkeypatch.setenv(key, value)

    def start(service_cls):
        container = container_factory(service_cls, {"AMQP_URI": rabbit_config["AMQP_URI"]})
        container.start()
        return container

    return start
