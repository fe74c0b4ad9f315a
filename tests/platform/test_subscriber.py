"""``@subscribe`` against the real RabbitMQ and PostgreSQL.

A "talker" service owns a log and answers ``replay``; a "listener" subscribes
to it and records what it heard in its own table (its own schema, as on a
node where each service has its own database). There is no relay here: the
tests publish the talker's events to ``talker.events`` themselves.
"""

import time
import uuid

import psycopg
import pytest
from kombu import Connection, Queue
from marshmallow import Schema, fields
from nameko.standalone.events import get_event_exchange
from nameko.testing.utils import get_extension

from shared import subscriber
from shared.auth import Auth
from shared.envelope import Event
from shared.repository import EventStoreProvider
from shared.service import EventSourcedService
from shared.subscriber import REASON_HEADER, Subscription, subscribe, topic_matches
from tests.conftest import drop_schema

QUEUE = "listener.on_event.from.talker"
THING = "thing.happened"
OTHER = "other.happened"  # in the talker's log, not followed by the listener


class ThingHappened(Schema):
    version = 1
    n = fields.Integer(required=True)
    fail = fields.Boolean()
    crash = fields.Boolean()


def talker_service(migrations):
    class Talker(EventSourcedService):
        name = "talker"
        repo = EventStoreProvider("talker", migrations, {THING: ThingHappened})
        auth = Auth("talker")

    return Talker


def listener_service(migrations, crashed):
    class Listener:
        name = "listener"
        repo = EventStoreProvider("listener", migrations, {})

        @subscribe("talker", event_types=(THING,), max_attempts=3)
        def on_event(self, event, conn):
            if event.data.get("fail"):
                raise ValueError("this handler refuses the event")
            conn.execute(
                "INSERT INTO heard (sequence, n) VALUES (%s, %s)",
                [event.sequence, event.data["n"]],
            )
            if event.data.get("crash") and not crashed:
                crashed.append(event.sequence)  # the server drops us before the commit
                conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    return Listener


@pytest.fixture
def listener_database_url(server_database_url):
    """The listener's own schema (the talker uses ``database_url``)."""
    schema = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(server_database_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield f"{server_database_url}?options=-csearch_path%3D{schema}"
    drop_schema(server_database_url, schema)


@pytest.fixture
def node(
    service_env,
    database_url,
    listener_database_url,
    rabbit_config,
    container_factory,
    tmp_path,
    monkeypatch,
):
    """Starts the talker and, when asked, the listener; publishes like the relay would."""
    for key, value in service_env.items():
        monkeypatch.setenv(key, value)
    config = {"AMQP_URI": rabbit_config["AMQP_URI"]}
    talker_migrations = tmp_path / "talker"
    talker_migrations.mkdir()
    listener_migrations = tmp_path / "listener"
    listener_migrations.mkdir()
    (listener_migrations / "001_heard.sql").write_text(
        "CREATE TABLE heard (id bigserial PRIMARY KEY, sequence bigint NOT NULL, n integer);"
    )
    return Node(
        config,
        container_factory,
        monkeypatch,
        database_url,
        listener_database_url,
        talker_service(talker_migrations),
        listener_service(listener_migrations, crashed=[]),
    )


class Node:
    def __init__(
        self,
        config,
        container_factory,
        monkeypatch,
        talker_url,
        listener_url,
        talker_cls,
        listener_cls,
    ):
        self.config = config
        self.container_factory = container_factory
        self.monkeypatch = monkeypatch
        self.listener_url = listener_url
        self.talker_url, self.talker_cls = talker_url, talker_cls
        self.start_talker()
        self.store = get_extension(self.talker, EventStoreProvider).store
        self.listener_cls = listener_cls
        self.exchange = get_event_exchange("talker", config)
        self.amqp = Connection(config["AMQP_URI"])
        self.exchange(self.amqp.default_channel).declare()

    def start_talker(self):
        self.monkeypatch.setenv("DATABASE_URL", self.talker_url)
        self.talker = self.container_factory(self.talker_cls, self.config)
        self.talker.start()

    def start_listener(self, wait=True):
        """Start the listener; with ``wait``, return once its first catch-up is done."""
        self.monkeypatch.setenv("DATABASE_URL", self.listener_url)
        self.listener = self.container_factory(self.listener_cls, self.config)
        self.listener.start()
        subscription = get_extension(self.listener, Subscription)
        assert not wait or wait_until(lambda: not subscription.behind)
        return self.listener

    def queued(self):
        """Messages waiting in the listener's queue (unacked ones count once it stopped)."""
        queue = Queue(QUEUE, durable=True)(self.amqp.default_channel)
        return queue.queue_declare(passive=True).message_count

    def append(self, *datas, type_=THING):
        """Append one event per data dict to the talker's log; returns the stored events."""
        events = [Event(type=type_, stream="thing-1", data=d) for d in datas]
        return self.store.append("thing-1", None, events).events

    def publish(self, *events, routing_key=None):
        producer = self.amqp.Producer()
        for event in events:
            producer.publish(
                event if isinstance(event, dict) else event.to_cloudevent(),
                exchange=self.exchange,
                routing_key=routing_key or event.type,
                serializer="json",  # content type application/json
                delivery_mode=2,
            )

    def heard(self):
        with psycopg.connect(self.listener_url) as conn:
            return [r[0] for r in conn.execute("SELECT sequence FROM heard ORDER BY id")]

    def position(self):
        with psycopg.connect(self.listener_url) as conn:
            row = conn.execute(
                "SELECT position FROM consumer_positions WHERE consumer = %s", [QUEUE]
            ).fetchone()
        return row[0] if row else 0

    def parked(self):
        with psycopg.connect(self.listener_url) as conn:
            return conn.execute(
                "SELECT sequence, reason, attempts FROM parked_events WHERE consumer = %s",
                [QUEUE],
            ).fetchall()

    def dead_letters(self, keep=False):
        """The messages in the dead-letter queue, taken off it unless ``keep``."""
        with Connection(self.config["AMQP_URI"]) as conn:
            queue = Queue(f"{QUEUE}.dlq", durable=True)(conn.default_channel)
            messages = []
            while (message := queue.get(no_ack=not keep)) is not None:
                messages.append(message)
        return messages


def wait_until(check, timeout=6.0):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.05)


def test_a_late_listener_gets_every_earlier_event_once_in_order(node, monkeypatch):
    monkeypatch.setattr(subscriber, "REPLAY_PAGE", 3)  # several pages
    events = node.append(*({"n": n} for n in range(1, 6)))
    events += node.append({"n": 6}, type_=OTHER)
    events += node.append({"n": 7}, {"n": 8})
    node.publish(*events)  # nobody's queue exists yet: these go nowhere

    node.start_listener(wait=False)

    assert wait_until(lambda: node.position() == 8)
    assert node.heard() == [1, 2, 3, 4, 5, 7, 8]


def test_live_events_apply_once_in_order_and_a_jump_triggers_catch_up(node):
    node.start_listener()
    first = node.append({"n": 1}, {"n": 2})
    node.publish(*first)
    assert wait_until(lambda: node.heard() == [1, 2])

    node.publish(first[0], first[1], first[1])  # duplicates, e.g. a relay re-publishing
    later = node.append({"n": 3}, {"n": 4}, {"n": 5})
    node.publish(later[2])  # 3 and 4 were missed: 5 jumps the sequence
    assert wait_until(lambda: node.position() == 5)
    node.publish(later[0], later[1])  # arriving late: already applied by the catch-up
    time.sleep(0.3)
    assert node.heard() == [1, 2, 3, 4, 5]

    node.append({"n": 6}, type_=OTHER)  # not followed: never reaches the queue
    node.publish(*node.append({"n": 7}))  # so 7 looks like a gap too
    assert wait_until(lambda: node.position() == 7)
    time.sleep(0.3)

    assert node.heard() == [1, 2, 3, 4, 5, 7]
    assert node.position() == 7
    node.listener.stop()
    assert node.queued() == 0  # every message, duplicates included, was acked


def test_an_event_that_keeps_failing_is_parked_and_the_rest_go_on(node):
    node.start_listener()
    events = node.append({"n": 1}, {"n": 2, "fail": True}, {"n": 3})
    node.publish(events[0], events[1])
    node.publish({"not": "a cloudevent"}, routing_key=THING)
    node.publish(events[2])

    assert wait_until(lambda: node.position() == 3)
    assert node.heard() == [1, 3]
    assert node.parked() == [(2, "ValueError: this handler refuses the event", 3)]
    dead = wait_until(lambda: len(node.dead_letters(keep=True)) == 2 and node.dead_letters())
    assert [m.headers[REASON_HEADER] for m in dead] == [
        "ValueError: this handler refuses the event",
        "not a CloudEvent",
    ]
    assert Event.from_cloudevent(dead[0].payload) == events[1]
    assert dead[1].payload == {"not": "a cloudevent"}


def test_a_body_that_is_not_json_is_dead_lettered_and_never_logged(node, caplog):
    node.start_listener()
    events = node.append({"n": 1}, {"n": 2})
    node.publish(events[0])
    broken = '{"nik": "3275054101900001", "type": '  # cut short: not JSON
    node.amqp.Producer().publish(
        broken.encode(),
        exchange=node.exchange,
        routing_key=THING,
        content_type="application/json",
        content_encoding="utf-8",
    )
    node.publish(events[1])

    assert wait_until(lambda: node.position() == 2)
    assert node.heard() == [1, 2]
    dead = wait_until(lambda: node.dead_letters(keep=True) and node.dead_letters())
    assert [(m.headers[REASON_HEADER], m.payload) for m in dead] == [("not a CloudEvent", broken)]
    assert "3275054101900001" not in caplog.text
    node.listener.stop()
    assert node.queued() == 0


def test_a_lost_database_connection_is_retried_not_parked(node):
    node.start_listener()
    node.publish(*node.append({"n": 1}, {"n": 2, "crash": True}, {"n": 3}))

    assert wait_until(lambda: node.position() == 3)
    assert node.heard() == [1, 2, 3]  # the first attempt at 2 left nothing behind
    assert node.parked() == []


def test_a_listener_that_was_down_resumes_from_its_position(node):
    """Its durable queue kept what was published meanwhile; replay brings the same: once each."""
    node.start_listener()
    node.publish(*node.append({"n": 1}))
    assert wait_until(lambda: node.heard() == [1])
    node.listener.stop()

    node.publish(*node.append({"n": 2}, {"n": 3}))
    node.start_listener()

    assert wait_until(lambda: node.position() == 3)
    time.sleep(0.3)
    assert node.heard() == [1, 2, 3]
    node.listener.stop()
    assert node.queued() == 0  # the queued copies were acked as duplicates


def test_catch_up_backs_off_while_the_source_does_not_answer(node, monkeypatch, caplog):
    """Tried again after 2 s, then 4, 8 and so on up to 30 (here a fortieth of that),
    instead of every 2 s for as long as the source is down; and once it answers, the
    next attempt catches up without waiting for a live event."""
    monkeypatch.setattr(subscriber, "CATCH_UP_RETRY", 0.05)
    monkeypatch.setattr(subscriber, "CATCH_UP_RETRY_MAX", 0.75)
    monkeypatch.setattr(subscriber, "RPC_TIMEOUT", 0.05)
    node.append({"n": 1}, {"n": 2})  # not published: only replay brings them
    node.talker.stop()

    node.start_listener(wait=False)
    time.sleep(3)
    failed = [r for r in caplog.records if "catch-up from talker failed" in r.getMessage()]
    # waits of 0.05, 0.1, 0.2, 0.4, then 0.75 s: about 7 attempts in 3 s, where a fixed
    # wait of 0.05 s would make about 30
    assert 4 <= len(failed) <= 10

    node.start_talker()
    assert wait_until(lambda: node.position() == 2, timeout=3)
    assert node.heard() == [1, 2]


@pytest.mark.parametrize(
    ("pattern", "key", "matches"),
    [
        ("#", "proposal.submitted", True),
        ("proposal.*", "proposal.submitted", True),
        ("proposal.*", "proposal.submitted.late", False),
        ("proposal.#", "proposal", True),
        ("*.submitted", "proposal.submitted", True),
        ("proposal.submitted", "proposal.accepted", False),
    ],
)
def test_event_types_match_like_amqp_topics(pattern, key, matches):
    assert topic_matches(pattern, key) is matches
