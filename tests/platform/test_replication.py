"""Replication from kelurahan nodes to the city, with real brokers, users and databases.

Two kelurahan stores and a city store live in three schemas of the test
database; the city broker is this test's vhost, with a real broker user per
kelurahan whose permissions are those of deploy/rabbitmq's definitions. Each
kelurahan runs its uplink and downlink, the city its ingest, in threads.
"""

import json
import logging
import os
import re
import secrets
import threading
import time
import uuid
from types import SimpleNamespace
from urllib.parse import quote, urlsplit

import amqp
import psycopg
import pytest
import requests

from shared import metrics, replication
from shared.config import Config
from shared.db import Database, migrate
from shared.envelope import Event
from shared.store import EventStore
from tests.conftest import drop_schema

A, B = "32.75.05.1002", "32.75.08.1003"  # Pengasinan, Jatimakmur
SERVICE = "proposals"
NIK_SHAPED = re.compile(r"(?<!\d)\d{16}(?!\d)")


def api(method, path, body=None):
    base = os.environ["RABBIT_API_URI"].rstrip("/")
    response = requests.request(method, f"{base}/api/{path}", json=body, timeout=10)
    response.raise_for_status()
    return response.json() if method == "GET" else None


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def schema_url(server_database_url):
    """A factory of migrated databases, one fresh schema each, dropped afterwards."""
    made = []

    def make():
        schema = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(server_database_url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        made.append(schema)
        sep = "&" if "?" in server_database_url else "?"
        url = f"{server_database_url}{sep}options=-csearch_path%3D{schema}"
        db = Database(url)
        migrate(db)
        db.close()
        return url

    yield make
    for schema in made:
        drop_schema(server_database_url, schema)


class CityBroker:
    """This test's vhost as the city broker, with a broker user per kelurahan, and the
    queues of ``services`` for ``codes`` declared, as the definitions do in production
    (a kelurahan may not declare them)."""

    def __init__(self, rabbit_config, codes=(A, B), services=(SERVICE,)):
        self.vhost = rabbit_config["vhost"]
        self.city_uri = rabbit_config["AMQP_URI"]
        self.passwords = {}
        replication.declare_topology(self.city_uri, list(codes), list(services))

    def add_kelurahan(self, code):
        user, password = replication.kelurahan_user(code), secrets.token_urlsafe(16)
        wait_unused(user)
        api("PUT", f"users/{user}", {"password": password, "tags": ""})
        self.passwords[code] = password
        self.allow(code)
        return self.uri_of(code)

    def uri_of(self, code, password=None):
        parts = urlsplit(self.city_uri)
        user = replication.kelurahan_user(code)
        netloc = f"{user}:{password or self.passwords[code]}@{parts.hostname}:{parts.port}"
        return parts._replace(netloc=netloc).geturl()

    def allow(self, code):
        """The definitions' permissions: publish under its own code, read its own queues."""
        user, vhost = replication.kelurahan_user(code), quote(self.vhost, safe="")
        permissions, topic_permissions = replication.kelurahan_permissions(code)
        api("PUT", f"permissions/{vhost}/{user}", permissions)
        api("PUT", f"topic-permissions/{vhost}/{user}", topic_permissions)

    def cut(self, code):
        """The link goes down: the user may do nothing, its connections are closed.

        The management API lists a connection at its next statistics tick (up to
        5 s after it opened): wait for the link's connections to be listed."""
        user, vhost = replication.kelurahan_user(code), quote(self.vhost, safe="")
        api("PUT", f"permissions/{vhost}/{user}", {"configure": "^$", "write": "^$", "read": "^$"})

        def listed():
            connections = api("GET", f"vhosts/{vhost}/connections")
            return [c["name"] for c in connections if c.get("user") == user]

        wait_until(lambda: len(listed()) >= 2, 15, "the uplink and downlink connections")
        for name in listed():
            api("DELETE", f"connections/{quote(name, safe='')}")

    def remove_users(self):
        for code in self.passwords:
            requests.delete(
                f"{os.environ['RABBIT_API_URI'].rstrip('/')}/api/users/"
                f"{replication.kelurahan_user(code)}",
                timeout=10,
            )


def wait_unused(user, timeout=60):
    """Wait until no one else (a replication test of another run on this broker) has the
    broker user ``user``: broker users are not per vhost, and replacing its password
    would lock the other test's kelurahan out. A user still there after ``timeout`` s
    is taken as left over by a run that crashed."""
    url = f"{os.environ['RABBIT_API_URI'].rstrip('/')}/api/users/{quote(user, safe='')}"
    deadline = time.monotonic() + timeout
    while requests.get(url, timeout=10).status_code != 404 and time.monotonic() < deadline:
        time.sleep(1)


@pytest.fixture
def city_broker(rabbit_config):
    broker = CityBroker(rabbit_config)
    yield broker
    broker.remove_users()


class Node:
    """A kelurahan's store and its link to the city, run in threads."""

    def __init__(self, code, database_url, city_uri, deliver=None):
        self.url = database_url
        self.code = code
        self.source = replication.source_of(code, SERVICE)
        self.db = Database(database_url)
        self.store = EventStore(self.db, self.source)
        self.config = Config(SERVICE, "kelurahan", code, city_uri, database_url, "x" * 32)
        self.city_uri = city_uri
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=replication.run_kelurahan_link,
            args=(self.config, city_uri, self.stop, deliver),
        )
        self.thread.start()

    def submit(self, count, personal=None):
        """``count`` proposals submitted (one stream and event each)."""
        for _ in range(count):
            stream = f"proposal-{uuid.uuid4()}"
            data = {"title": "Perbaikan saluran", "rw": 7}
            if personal:
                data["personal"] = personal
            self.store.append(stream, 0, [Event("proposal.submitted", stream, data)])

    def close(self):
        self.stop.set()
        self.thread.join(15)
        self.db.close()


class City:
    def __init__(self, database_url, amqp_uri):
        self.url = database_url
        self.db = Database(database_url)
        self.ingest = replication.Ingest(database_url, amqp_uri, SERVICE)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.ingest.run_forever, args=(self.stop,))
        self.thread.start()

    def position(self, node):
        return self.ingest.positions().get(node.source, 0)

    def replicated(self, node):
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT sequence, id::text, stream, version FROM replica_events"
                " WHERE source = %s ORDER BY sequence",
                [node.source],
            ).fetchall()
        return [tuple(r.values()) for r in rows]

    def close(self):
        self.stop.set()
        self.thread.join(15)
        self.db.close()


def logged(node):
    return [(e.sequence, e.id, e.stream, e.version) for e in node.store.read(0, 100_000)]


@pytest.fixture
def nodes(schema_url, city_broker, rabbit_config):
    """``start(kind, code=None, url=None, deliver=None)``: a city or a kelurahan node on a
    fresh schema (``url``: on that database instead, e.g. a node started again;
    ``deliver``: what the kelurahan's downlink hands the city's events to)."""
    started = []

    def start(kind, code=None, url=None, deliver=None):
        if kind == "city":
            made = City(url or schema_url(), rabbit_config["AMQP_URI"])
        elif code in city_broker.passwords:
            made = Node(code, url or schema_url(), city_broker.uri_of(code), deliver)
        else:
            made = Node(code, url or schema_url(), city_broker.add_kelurahan(code), deliver)
        started.append(made)
        return made

    yield start
    for made in reversed(started):
        made.close()


def test_the_city_converges_exactly_after_a_kelurahans_link_was_cut(nodes, city_broker):
    city, a, b = nodes("city"), nodes("kelurahan", A), nodes("kelurahan", B)
    a.submit(120)
    b.submit(80)
    wait_until(lambda: city.position(a) == 120 and city.position(b) == 80, 30, "replication")

    city_broker.cut(A)
    a.submit(90)  # the kelurahan keeps working while its link is down
    b.submit(40)
    wait_until(lambda: city.position(b) == 120, 30, "the other kelurahan")
    time.sleep(2)
    assert city.position(a) == 120

    city_broker.allow(A)  # the link is back
    wait_until(lambda: city.position(a) == 210, 60, "the kelurahan to catch up")
    assert city.replicated(a) == logged(a)  # same events per sequence: no gap, no duplicate
    assert city.replicated(b) == logged(b)


LONG_OUTAGE = 125  # seconds: minutes, past the relay's heartbeat (30 s) and longest backoff


def test_a_kelurahan_keeps_working_through_minutes_without_its_link(nodes, city_broker):
    """The link stays down for over two minutes while the kelurahan keeps appending;
    its link keeps trying (capped backoff, never giving up) and the city converges
    exactly once the link is back."""
    city, a = nodes("city"), nodes("kelurahan", A)
    a.submit(20)
    wait_until(lambda: city.position(a) == 20, 30, "replication")

    city_broker.cut(A)
    down_until = time.monotonic() + LONG_OUTAGE
    while time.monotonic() < down_until:
        a.submit(5)  # the kelurahan's work goes on, stored in its own log
        time.sleep(10)
    assert city.position(a) == 20
    assert a.thread.is_alive()
    submitted = len(logged(a))

    city_broker.allow(A)
    wait_until(lambda: city.position(a) == submitted, 90, "the kelurahan to catch up")
    assert city.replicated(a) == logged(a)


def test_a_city_rebuilt_from_empty_catches_up_from_the_kelurahan_logs(nodes, schema_url):
    city, a = nodes("city"), nodes("kelurahan", A)
    a.submit(60)
    wait_until(lambda: city.position(a) == 60, 30, "replication")
    city.close()

    rebuilt = nodes("city")  # an empty database: it asks every kelurahan for everything
    wait_until(lambda: rebuilt.position(a) == 60, 60, "the rebuilt city to catch up")
    a.submit(15)
    wait_until(lambda: rebuilt.position(a) == 75, 30, "new events")
    assert rebuilt.replicated(a) == logged(a)


def publish_as(uri, routing_key, body, user_id=None, exchange="replication.up"):
    """Publish ``body`` (JSON of it, unless it is a string already) as the URI's user and
    wait for the broker's confirm (or its refusal)."""
    parts = urlsplit(uri)
    with amqp.Connection(
        f"{parts.hostname}:{parts.port}",
        userid=parts.username,
        password=parts.password,
        virtual_host=parts.path[1:] or "/",
        confirm_publish=True,
    ) as conn:
        conn.connect()
        channel = conn.channel()
        channel.basic_publish(
            amqp.Message(
                body if isinstance(body, str) else json.dumps(body),
                content_type="application/json",
                **({"user_id": user_id} if user_id else {}),
            ),
            exchange=exchange,
            routing_key=routing_key,
        )
        channel.basic_qos(0, 1, False)  # a round trip: an asynchronous refusal arrives first


def test_a_kelurahan_cannot_publish_as_another(nodes, city_broker, caplog):
    city, b = nodes("city"), nodes("kelurahan", B)
    b.submit(1)
    wait_until(lambda: city.position(b) == 1, 30, "replication")
    uri = city_broker.add_kelurahan(A)
    forged = dict(
        specversion="1.0",
        id=str(uuid.uuid4()),
        source=b.source,
        type="proposal.submitted",
        subject=f"proposal-{uuid.uuid4()}",
        time="2027-01-10T01:00:00+00:00",
        sequence=2,
        streamversion=1,
        data={"title": "Palsu"},
    )
    user_a, user_b = replication.kelurahan_user(A), replication.kelurahan_user(B)
    with pytest.raises(amqp.exceptions.AccessRefused):  # topic permission: not B's routing key
        publish_as(uri, f"{B}.proposals.proposal.submitted", forged, user_a)
    with pytest.raises(amqp.exceptions.PreconditionFailed):  # validated user_id
        publish_as(uri, f"{A}.proposals.proposal.submitted", forged, user_b)
    with caplog.at_level(logging.WARNING, logger="shared.replication"):
        publish_as(uri, f"{A}.proposals.proposal.submitted", forged, user_a)
        wait_until(
            lambda: any("refused" in r.getMessage() for r in caplog.records), 15, "the refusal"
        )
    b.submit(1)
    wait_until(lambda: city.position(b) == 2, 30, "the real second event")
    assert city.replicated(b) == logged(b)  # the forged sequence 2 never took its place
    refusal = next(r.getMessage() for r in caplog.records if "refused" in r.getMessage())
    assert user_a in refusal


def test_a_message_from_the_city_that_is_not_json_neither_stops_the_downlink_nor_is_logged(
    nodes, rabbit_config, caplog
):
    """Before, kombu's decoder raised out of the downlink's thread, which ended: the
    kelurahan never again took a decision or a resend request from the city."""
    delivered = []
    nodes("kelurahan", A, deliver=delivered.append)
    queue = f"queues/{quote(urlsplit(rabbit_config['AMQP_URI']).path[1:], safe='')}/"
    queue += replication.down_queue(A, SERVICE).name
    wait_until(lambda: api("GET", queue).get("consumers") == 1, 15, "the downlink")
    decision = {"type": "proposal.decided", "id": str(uuid.uuid4())}
    with caplog.at_level(logging.INFO, logger="shared.replication"):
        for body in ('{"nik": "3275014107900001", "decided', decision):
            key = f"{A}.{SERVICE}.proposal.decided"
            publish_as(rabbit_config["AMQP_URI"], key, body, exchange="replication.down")
        wait_until(lambda: delivered, 15, "the decision after the broken message")
        time.sleep(1)  # a broken message put back would come round again meanwhile

    assert delivered == [decision]
    lines = [r.getMessage() for r in caplog.records]
    assert len([line for line in lines if "not JSON" in line]) == 1
    assert not any(NIK_SHAPED.search(line) for line in lines)


def test_nothing_personal_reaches_the_city(nodes):
    from tests.citizens import people

    resident = people.person(rw=7)
    city, a = nodes("city"), nodes("kelurahan", A)
    a.submit(5, personal={"nik": resident["nik"], "name": resident["name"]})
    wait_until(lambda: city.position(a) == 5, 30, "replication")
    with city.db.read() as conn:
        texts = [r["t"] for r in conn.execute("SELECT data::text AS t FROM replica_events")]
    assert len(texts) == 5
    for text in texts:
        assert "personal" not in text and resident["name"] not in text
        assert not NIK_SHAPED.search(text)


def reinstalled(url):
    """The kelurahan's store dropped and created again, empty (a server reinstalled from
    scratch): its schema dropped, created and migrated."""
    schema = url.rsplit("csearch_path%3D", 1)[1]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")
        conn.execute(f"CREATE SCHEMA {schema}")
    db = Database(url)
    migrate(db)
    db.close()
    return url


def test_a_kelurahan_log_reset_to_empty_is_refused_and_reported_not_mixed(
    nodes, city_broker, caplog
):
    city, a = nodes("city"), nodes("kelurahan", A)
    a.submit(30)
    wait_until(lambda: city.position(a) == 30, 30, "replication")
    duplicate = a.store.read(0, 1)[0].to_cloudevent()  # the same event again: no alarm
    publish_as(
        city_broker.uri_of(A),
        f"{A}.proposals.proposal.submitted",
        duplicate,
        replication.kelurahan_user(A),
    )
    a.submit(1)
    wait_until(lambda: city.position(a) == 31, 30, "the next event after a duplicate")
    assert city.ingest.diverged() == {}
    history = logged(a)
    a.close()

    with caplog.at_level(logging.INFO, logger="shared.replication"):
        reset = nodes("kelurahan", A, url=reinstalled(a.url))
        reset.submit(45)  # a new log, longer than the history the city holds
        wait_until(lambda: city.ingest.diverged() == {a.source: 1}, 30, "the city to notice")
        wait_until(
            lambda: any(
                "the city refuses this kelurahan" in r.getMessage() for r in caplog.records
            ),
            30,
            "the kelurahan to be told",
        )
        time.sleep(2)  # anything the new log would wrongly add
    assert city.position(a) == 31
    assert city.replicated(a) == history  # the old history only: nothing of the new one
    assert len(logged(reset)) == 45  # the new log stays whole in its own store
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert any(a.source in r.getMessage() and "refusing" in r.getMessage() for r in errors)
    collected = metrics.replication_diverged(SimpleNamespace(db=city.db))
    assert collected == [({"source": a.source}, 1)]

    caplog.clear()
    city.close()
    with caplog.at_level(logging.INFO, logger="shared.replication"):
        again = nodes("city", url=city.url)  # the mark survives a restart of the city
        reset.submit(5)
        wait_until(
            lambda: any(a.source in r.getMessage() for r in caplog.records if r.levelno >= 40),
            30,
            "the restarted city's refusal",
        )
    assert again.position(a) == 31
    assert again.replicated(a) == history


def test_the_city_loses_and_doubles_nothing_when_its_database_connections_are_terminated(
    nodes, schema_url, server_database_url, caplog
):
    """PostgreSQL drops the city ingest's connections again and again while two
    kelurahan publish: a batch is acknowledged only once committed, so the city ends
    with each log exactly, every event once and in order."""
    app = f"rembug-city-{uuid.uuid4().hex[:8]}"
    city = nodes("city", url=f"{schema_url()}&application_name={app}")
    a, b = nodes("kelurahan", A), nodes("kelurahan", B)
    writers = [threading.Thread(target=node.submit, args=(300,)) for node in (a, b)]
    for writer in writers:
        writer.start()
    killed, until = 0, time.monotonic() + 3
    caplog.set_level(logging.WARNING, logger="shared.replication")
    with psycopg.connect(server_database_url, autocommit=True) as admin:
        while time.monotonic() < until or any(w.is_alive() for w in writers):
            killed += admin.execute(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = %s",
                [app],
            ).fetchone()[0]
            time.sleep(0.2)
    for writer in writers:
        writer.join()

    def caught_up():
        try:
            return city.position(a) == 300 and city.position(b) == 300
        except psycopg.OperationalError:  # a connection killed while it was idle in the pool
            return False

    wait_until(caught_up, 90, "the city to catch up")
    interruptions = [r for r in caplog.records if "ingest of proposals interrupted" in r.message]
    assert killed > 0 and interruptions
    assert city.replicated(a) == logged(a)
    assert city.replicated(b) == logged(b)
