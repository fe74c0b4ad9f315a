"""``@subscribe(..., batch_size=N)`` (the platform option notify uses) keeps every guarantee.

The talker and listener of ``tests/platform/test_subscriber.py``, with the
listener applying up to 50 waiting events per tracking transaction: events that
queued up while it was down, a replay, duplicates, a handler that refuses one
event and a connection lost mid-batch all end as with one event per transaction:
each applied once, in order, the refused one parked.
"""

import pytest
from nameko.testing.utils import get_extension

from shared import subscriber
from shared.repository import EventStoreProvider
from shared.subscriber import Subscription, subscribe
from tests.platform.test_subscriber import (
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


@pytest.fixture
def batched(
    service_env,
    database_url,
    listener_database_url,  # noqa: F811
    rabbit_config,
    container_factory,
    tmp_path,
    monkeypatch,
):
    for key, value in service_env.items():
        monkeypatch.setenv(key, value)
    talker_migrations = tmp_path / "talker"
    talker_migrations.mkdir()
    listener_migrations = tmp_path / "listener"
    listener_migrations.mkdir()
    (listener_migrations / "001_heard.sql").write_text(
        "CREATE TABLE heard (id bigserial PRIMARY KEY, sequence bigint NOT NULL, n integer);"
    )
    return Node(
        {"AMQP_URI": rabbit_config["AMQP_URI"]},
        container_factory,
        monkeypatch,
        database_url,
        listener_database_url,
        talker_service(talker_migrations),
        batched_listener(listener_migrations, crashed=[]),
    )


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
    assert wait_until(lambda: node.queued() == 0, timeout=20)  # the queued copies: duplicates
    node.listener.stop()
    assert node.queued() == 0  # every one acked
    assert node.heard() == [n for n in range(1, 121) if n != 60]


def test_a_replay_is_applied_in_batches(batched, monkeypatch):
    monkeypatch.setattr(subscriber, "REPLAY_PAGE", 70)
    node = batched
    node.append(*({"n": n} for n in range(1, 151)))  # published before any queue existed
    node.start_listener(wait=False)
    assert wait_until(lambda: node.position() == 150, timeout=20)
    assert node.heard() == list(range(1, 151))
    assert get_extension(node.listener, Subscription).batch_size == 50


def test_a_connection_lost_mid_batch_leaves_nothing_half_done(batched):
    node = batched
    node.start_listener()
    node.listener.stop()
    datas = [{"n": n} for n in range(1, 41)]
    datas[19] = {"n": 20, "crash": True}
    node.publish(*node.append(*datas))
    node.start_listener(wait=False)
    assert wait_until(lambda: node.position() == 40, timeout=20)
    assert node.heard() == list(range(1, 41))  # the lost batch's effects were rolled back
    assert node.parked() == []
