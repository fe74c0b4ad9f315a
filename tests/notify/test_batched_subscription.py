"""``@subscribe(..., batch_size=N)`` (the platform option notify uses) keeps every guarantee.

The talker and listener of ``tests/platform/test_subscriber.py``, with the
listener applying up to 50 waiting events per tracking transaction (each in a
worker of its own, or with ``many=True`` all in one call): events that
queued up while it was down, a replay, duplicates, a handler that refuses one
event and a connection lost mid-batch all end as with one event per transaction:
each applied once, in order, the refused one parked.
"""

import time

import eventlet.event
import psycopg
import pytest
from kombu import Queue
from nameko.testing.utils import get_extension

from shared import subscriber
from shared.repository import EventStoreProvider
from shared.subscriber import Subscription, subscribe
from tests.platform.test_subscriber import (
    QUEUE,
    THING,
    Node,
    listener_database_url,  # noqa: F401 - a fixture
    talker_service,
    wait_until,
)


def batched_listener(migrations, crashed):
    class Listener:
        name = "listener"
        repo = EventStoreProvider("listener", migrations, {})

        @subscribe("talker", event_types=(THING,), max_attempts=3, batch_size=50)
        def on_event(self, event, conn):
            if event.data.get("fail"):
                raise ValueError("this handler refuses the event")
            conn.execute(
                "INSERT INTO heard (sequence, n) VALUES (%s, %s)", [event.sequence, event.data["n"]]
            )
            if event.data.get("crash") and not crashed:
                crashed.append(event.sequence)
                conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    return Listener


def many_listener(migrations, crashed):
    class Listener:
        name = "listener"
        repo = EventStoreProvider("listener", migrations, {})

        @subscribe("talker", event_types=(THING,), max_attempts=3, batch_size=50, many=True)
        def on_event(self, events, conn):
            if any(event.data.get("fail") for event in events):
                raise ValueError("this handler refuses the event")
            for event in events:
                conn.execute(
                    "INSERT INTO heard (sequence, n) VALUES (%s, %s)",
                    [event.sequence, event.data["n"]],
                )
            conn.execute("INSERT INTO calls (size) VALUES (%s)", [len(events)])

    return Listener


@pytest.fixture
def listener_node(
    service_env,
    database_url,
    listener_database_url,  # noqa: F811
    rabbit_config,
    container_factory,
    tmp_path,
    monkeypatch,
):
    """Makes a :class:`Node` with the talker and ``listener(migrations)``, whose schema
    has the tables ``heard`` and ``calls``."""
    for key, value in service_env.items():
        monkeypatch.setenv(key, value)
    talker_migrations = tmp_path / "talker"
    talker_migrations.mkdir()
    listener_migrations = tmp_path / "listener"
    listener_migrations.mkdir()
    (listener_migrations / "001_heard.sql").write_text(
        "CREATE TABLE heard (id bigserial PRIMARY KEY, sequence bigint NOT NULL, n integer);"
        "CREATE TABLE calls (size integer NOT NULL);"
    )

    def make(listener):
        return Node(
            {"AMQP_URI": rabbit_config["AMQP_URI"]},
            container_factory,
            monkeypatch,
            database_url,
            listener_database_url,
            talker_service(talker_migrations),
            listener(listener_migrations),
        )

    return make


@pytest.fixture(params=["per_event", "many"])
def batched(request, listener_node):
    listener = batched_listener if request.param == "per_event" else many_listener
    node = listener_node(lambda migrations: listener(migrations, crashed=[]))
    node.mode = request.param
    return node


def test_queued_events_apply_in_batches_once_in_order_with_the_refused_one_parked(batched):
    node = batched
    node.start_listener()
    node.listener.stop()  # its queue stays: what is published now waits there
    datas = [{"n": n} for n in range(1, 121)]
    datas[59] = {"n": 60, "fail": True}
    events = node.append(*datas)
    node.publish(*events)
    node.publish(*events[:30])  # duplicates among them

    node.start_listener(wait=False)

    assert wait_until(lambda: node.position() == 120, timeout=20)
    assert node.heard() == [n for n in range(1, 121) if n != 60]
    assert [(s, a) for s, _, a in node.parked()] == [(60, 3)]
    # The broker sends three batches ahead, so a stop can leave copies delivered but not
    # yet acked: they go back to the queue, and the listener takes them when it starts.
    for _ in range(5):
        node.listener.stop()
        if node.queued() == 0:
            break
        node.start_listener()
        time.sleep(1)
    assert node.queued() == 0  # every one acked
    assert node.heard() == [n for n in range(1, 121) if n != 60]  # none applied twice
    assert [(s, a) for s, _, a in node.parked()] == [(60, 3)]


def test_the_broker_sends_three_batches_ahead(batched, rabbit_manager, rabbit_config):
    """The queue's window is three batches, so the next one waits in the inbox while one
    commits; a window of one batch had the broker wait for each batch's acks."""
    batched.start_listener()

    def windows():
        queue = rabbit_manager.get_queue(rabbit_config["vhost"], QUEUE)
        return [consumer["prefetch_count"] for consumer in queue.get("consumer_details", [])]

    assert wait_until(windows) == [150]


def test_a_replay_is_applied_in_batches(batched, monkeypatch):
    monkeypatch.setattr(subscriber, "REPLAY_PAGE", 70)
    node = batched
    node.append(*({"n": n} for n in range(1, 151)))  # published before any queue existed
    node.start_listener(wait=False)
    assert wait_until(lambda: node.position() == 150, timeout=20)
    assert node.heard() == list(range(1, 151))
    assert get_extension(node.listener, Subscription).batch_size == 50
    if node.mode == "many":  # one worker per batch: fewer calls than events
        with psycopg.connect(node.listener_url) as conn:
            sizes = [r[0] for r in conn.execute("SELECT size FROM calls")]
        assert sum(sizes) == 150 and max(sizes) > 1


def test_a_connection_lost_mid_batch_leaves_nothing_half_done(batched):
    node = batched
    if node.mode == "many":
        pytest.skip("the crash is in the per-event listener")
    node.start_listener()
    node.listener.stop()
    datas = [{"n": n} for n in range(1, 41)]
    datas[19] = {"n": 20, "crash": True}
    node.publish(*node.append(*datas))
    node.start_listener(wait=False)
    assert wait_until(lambda: node.position() == 40, timeout=20)
    assert node.heard() == list(range(1, 41))  # the lost batch's effects were rolled back
    assert node.parked() == []


def test_a_batch_acknowledged_at_once_acknowledges_no_other_subscriptions_messages(
    listener_node,
):
    """A batch is acknowledged with one frame for all its messages, which on a shared
    channel would also acknowledge the messages other subscriptions still hold: each
    subscription has a channel of its own, so a held event stays unacknowledged and
    comes back when the process dies."""
    release = eventlet.event.Event()

    def held_listener(migrations):
        class Listener:
            name = "listener"
            repo = EventStoreProvider("listener", migrations, {})

            @subscribe("talker", event_types=(THING,), batch_size=50, many=True)
            def on_event(self, events, conn):
                for event in events:
                    conn.execute(
                        "INSERT INTO heard (sequence, n) VALUES (%s, %s)",
                        [event.sequence, event.data["n"]],
                    )

            @subscribe("talker", event_types=(THING,))
            def on_held(self, event, conn):
                release.wait()  # never sent: this subscription holds its first event

        return Listener

    node = listener_node(held_listener)
    node.start_listener()
    for first in (1, 21):  # the second batch's messages come after those on_held holds
        node.publish(*node.append(*({"n": n} for n in range(first, first + 20))))
        assert wait_until(lambda last=first + 19: node.position() == last, timeout=20)
    assert node.heard() == list(range(1, 41))  # on_event applied them all

    node.listener.kill()  # what the broker had not been told is done comes back
    held = Queue("listener.on_held.from.talker", durable=True)(node.amqp.default_channel)
    assert wait_until(lambda: held.queue_declare(passive=True).message_count == 40)
