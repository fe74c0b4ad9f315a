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
import uuid  # noqa: E402

import psycopg  # noqa: E402
import pytest  # noqa: E402

from shared import db as dbmod  # noqa: E402
from tests import servers  # noqa: E402

AUTH_SECRET = "test-secret-" + "x" * 32


def pytest_configure(config):
    servers.ensure()
    config.option.RABBIT_AMQP_URI = os.environ["AMQP_URI"]
    config.option.RABBIT_API_URI = os.environ["RABBIT_API_URI"]
    config.option.suppress_eventlet_notification = True


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
    with psycopg.connect(server_database_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


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
