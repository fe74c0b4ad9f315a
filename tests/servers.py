"""Find RabbitMQ and PostgreSQL for the tests, or start them with testcontainers.

The local servers (or those named by ``AMQP_URI``, ``RABBIT_API_URI`` and
``DATABASE_URL``) are used when they answer. When they do not and a Docker
engine does, a PostgreSQL and a RabbitMQ-with-management container are started
for the session and the variables point at them.
"""

import os
import socket
from urllib.parse import urlparse

import psycopg

DEFAULTS = {
    "AMQP_URI": "pyamqp://guest:guest@127.0.0.1:5672/",
    "RABBIT_API_URI": "http://guest:guest@127.0.0.1:15672",
    "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/postgres",
}
TEST_DATABASE = "rembug_test"
_containers = []


def _answers(url, default_port):
    parts = urlparse(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or default_port), timeout=2):
            return True
    except OSError:
        return False


def _docker_answers():
    try:
        import docker

        docker.from_env().ping()
        return True
    except Exception:
        return False


def ensure():
    """Set the three variables to servers that answer, starting containers if need be."""
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
    pg_up = _answers(os.environ["DATABASE_URL"], 5432)
    rabbit_up = _answers(os.environ["AMQP_URI"], 5672)
    if pg_up and rabbit_up:
        return
    if not _docker_answers():
        missing = [n for n, up in (("PostgreSQL", pg_up), ("RabbitMQ", rabbit_up)) if not up]
        raise RuntimeError(
            f"{' and '.join(missing)} not reachable (AMQP_URI={os.environ['AMQP_URI']}, "
            f"DATABASE_URL={os.environ['DATABASE_URL']}) and no Docker engine for "
            "testcontainers: start the servers, or run `make services`"
        )
    if not pg_up:
        _start_postgres()
    if not rabbit_up:
        _start_rabbitmq()


def _start_postgres():
    from testcontainers.postgres import PostgresContainer

    pg = PostgresContainer("postgres:15", driver=None).start()
    _containers.append(pg)
    os.environ["DATABASE_URL"] = pg.get_connection_url()


def _start_rabbitmq():
    from testcontainers.rabbitmq import RabbitMqContainer

    rabbit = RabbitMqContainer("rabbitmq:3.13-management").with_exposed_ports(5672, 15672)
    rabbit.start()
    _containers.append(rabbit)
    host = rabbit.get_container_host_ip()
    amqp_port = rabbit.get_exposed_port(5672)
    api_port = rabbit.get_exposed_port(15672)
    os.environ["AMQP_URI"] = f"pyamqp://guest:guest@{host}:{amqp_port}/"
    os.environ["RABBIT_API_URI"] = f"http://guest:guest@{host}:{api_port}"


def stop():
    """Stop any container :func:`ensure` started."""
    while _containers:
        _containers.pop().stop()


def test_database_url():
    """The URL of the test database on the server, created if it does not exist."""
    url = urlparse(os.environ["DATABASE_URL"])
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [TEST_DATABASE]
        ).fetchone()
        if not exists:
            conn.execute(f"CREATE DATABASE {TEST_DATABASE}")
    return url._replace(path="/" + TEST_DATABASE, query="").geturl()
