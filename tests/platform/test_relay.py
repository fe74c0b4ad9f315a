"""The relay's guarantees (shared/relay.py), against the real RabbitMQ and PostgreSQL.

Each test has its own vhost and schema. Published messages are collected from a
queue the test binds to ``testsvc.events`` with ``#`` before the relay runs.
"""

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from kombu import Connection, Queue
from nameko.events import event_handler

from shared.envelope import Event
from shared.relay import NotConfirmed, Relay, event_exchange
from shared.store import EventStore

SERVICE = "testsvc"
SOURCE = f"/kelurahan/32.75.05.1002/{SERVICE}"
QUEUE = "relay-test"
ROOT = Path(__file__).resolve().parents[2]


def make_event(n, type_="thing.happened", stream="thing-1"):
    return Event(type=type_, stream=stream, data={"n": n})


def append(store, count, stream="thing-1"):
    """Append ``count`` events to ``stream`` in one transaction."""
    return store.append(stream, None, [make_event(i, stream=stream) for i in range(count)]).events


@pytest.fixture
def store(db):
    return EventStore(db, SOURCE)


@pytest.fixture
def amqp_uri(rabbit_config):
    return rabbit_config["AMQP_URI"]


@pytest.fixture
def broker(amqp_uri):
    """A connection to the test's vhost."""
    with Connection(amqp_uri) as conn:
        yield conn


def bind_queue(broker, **arguments):
    """Declare the test queue, bound to ``testsvc.events`` with ``#``."""
    queue = Queue(
        QUEUE, exchange=event_exchange(SERVICE), routing_key="#", queue_arguments=arguments
    )
    queue(broker.default_channel).declare()
    return queue


@pytest.fixture
def queue(broker):
    return bind_queue(broker)


@pytest.fixture
def relay(database_url, amqp_uri, db):
    relay = Relay(database_url, amqp_uri, SERVICE, SOURCE, confirm_timeout=5)
    yield relay
    relay.close()


def depth(broker):
    return broker.default_channel.queue_declare(QUEUE, passive=True).message_count


def collect(broker, count, timeout=5):
    """Take ``count`` messages off the test queue, in arrival order (raw py-amqp messages)."""
    got = []
    channel = broker.channel()
    channel.basic_qos(0, 1000, False)
    channel.basic_consume(QUEUE, callback=got.append, no_ack=True)
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        with contextlib.suppress(TimeoutError):
            broker.drain_events(timeout=0.5)
    channel.close()
    assert len(got) == count, f"{len(got)} of {count} messages arrived"
    return got


def sequences(messages):
    return [json.loads(m.body)["sequence"] for m in messages]


def first_arrivals(seqs):
    """Each sequence once, in the order it first arrived."""
    seen = set()
    return [s for s in seqs if not (s in seen or seen.add(s))]


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


# -- publishing -----------------------------------------------------------------------------------


def test_publishes_committed_events_in_order_as_cloudevents(relay, store, queue, broker, caplog):
    """Every committed event, before and after a run, in log order; position = head."""
    caplog.set_level(logging.INFO, logger="shared.relay")
    stored = append(store, 3) + append(store, 1, stream="thing-2")
    assert relay.run_once() == 4
    stored += append(store, 2)
    assert relay.run_once() == 2
    assert relay.run_once() == 0

    messages = collect(broker, 6)
    assert sequences(messages) == [1, 2, 3, 4, 5, 6]
    for message, event in zip(messages, stored, strict=True):
        assert Event.from_cloudevent(json.loads(message.body)) == event
        assert message.delivery_info["routing_key"] == event.type
        assert message.properties["content_type"] == "application/json"
        assert message.properties["content_encoding"] == "utf-8"
        assert message.properties["delivery_mode"] == 2
        assert message.headers == {
            "ce-id": event.id,
            "ce-source": SOURCE,
            "ce-sequence": event.sequence,
        }
    assert relay.position() == store.head() == 6
    assert '"n"' not in caplog.text and "thing-1" not in caplog.text  # counts, not data


def test_nameko_event_handler_receives_relayed_event_unchanged(
    relay, store, amqp_uri, container_factory
):
    """The exchange, routing key and body are what nameko's ``@event_handler`` expects."""
    received = []

    class Listener:
        name = "listener"

        @event_handler(SERVICE, "thing.happened")
        def handle(self, payload):
            received.append(payload)

    container = container_factory(Listener, {"AMQP_URI": amqp_uri})
    container.start()
    [event] = append(store, 1)
    relay.run_once()
    wait_until(lambda: received, 5, "the nameko handler")
    assert received == [event.to_cloudevent()]


# -- confirms -------------------------------------------------------------------------------------


def test_position_never_passes_a_nacked_message(database_url, amqp_uri, store, broker):
    """A queue that rejects publishes beyond one message makes the broker nack the rest."""
    bind_queue(broker, **{"x-max-length": 1, "x-overflow": "reject-publish"})
    append(store, 3)

    whole_batch = Relay(database_url, amqp_uri, SERVICE, SOURCE, batch_size=2, confirm_timeout=5)
    with pytest.raises(NotConfirmed):
        whole_batch.run_once()  # 1 acked, 2 nacked
    assert whole_batch.position() == 0  # a half-confirmed batch advances nothing
    whole_batch.close()

    collect(broker, 1)  # make room for one message
    one_by_one = Relay(database_url, amqp_uri, SERVICE, SOURCE, batch_size=1, confirm_timeout=5)
    with pytest.raises(NotConfirmed):
        one_by_one.run_once()  # republishes from the stored position: 1 acked, 2 nacked
    assert one_by_one.position() == 1
    assert sequences(collect(broker, 1)) == [1]

    with pytest.raises(NotConfirmed):
        one_by_one.run_once()  # reconnected: 2 acked, 3 nacked
    assert one_by_one.position() == 2
    one_by_one.close()


# -- crashes and outages ----------------------------------------------------------------------------


def start_relay(service_env, log_path, batch_size=100, **env_overrides):
    """``python -m shared.relay testsvc`` in a process of its own, logging to ``log_path``."""
    env = {**os.environ, **service_env, **env_overrides}
    with open(log_path, "a") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "shared.relay", SERVICE, "--batch-size", str(batch_size)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop_relay(proc):
    """SIGTERM: the relay finishes its batch and exits cleanly."""
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=5) == 0


def relay_position(db):
    with db.connection() as conn:
        row = conn.execute("SELECT position FROM relay_positions").fetchone()
        conn.rollback()
    return row["position"] if row else 0


def assert_all_arrived_in_order(broker, head):
    """Every sequence 1..head arrived at least once, first arrivals in log order."""
    seqs = sequences(collect(broker, depth(broker)))
    assert first_arrivals(seqs) == list(range(1, head + 1))
    return len(seqs) - head  # duplicates


def test_killed_relay_resumes_without_loss(db, store, queue, broker, service_env, tmp_path):
    """``kill -9`` mid-stream, a new relay: nothing lost, duplicates allowed, position = head."""
    log_path = tmp_path / "relay.log"
    first = start_relay(service_env, log_path)
    append(store, 100)
    wait_until(lambda: depth(broker) >= 100, 5, "the first relay to publish")
    for i in range(49):  # 4,900 more events while it runs, killed a quarter of the way
        append(store, 100)
        time.sleep(0.01)
        if i == 12:
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=5)
            killed_at, published = relay_position(db), depth(broker)
    assert 100 <= killed_at <= published < 5000, log_path.read_text()

    second = start_relay(service_env, log_path)
    wait_until(lambda: relay_position(db) == 5000, 10, "the second relay to catch up")
    stop_relay(second)
    assert store.head() == relay_position(db) == 5000
    duplicates = assert_all_arrived_in_order(broker, 5000)
    print(f"killed at position {killed_at} with {published} published; {duplicates} duplicates")


def management(path, method="GET"):
    api = os.environ["RABBIT_API_URI"].rstrip("/")
    response = requests.request(method, f"{api}/api/{path}", timeout=5)
    response.raise_for_status()
    return response.json() if method == "GET" else None


def relay_connections(vhost):
    return [
        c["name"]
        for c in management(f"vhosts/{quote(vhost, safe='')}/connections")
        if c.get("client_properties", {}).get("connection_name") == f"rembug-relay {SERVICE}"
    ]


def test_relay_reconnects_after_broker_closes_its_connection(
    db, store, queue, broker, service_env, rabbit_config, tmp_path
):
    """The broker drops the relay's connection mid-stream; it reconnects and finishes."""
    log_path = tmp_path / "relay.log"
    proc = start_relay(service_env, log_path)
    try:
        append(store, 500)
        # the management API lists a connection at its next statistics tick (up to 5 s)
        wait_until(lambda: relay_connections(rabbit_config["vhost"]), 8, "the relay's connection")
        [name] = relay_connections(rabbit_config["vhost"])
        append(store, 500)
        management(f"connections/{quote(name, safe='')}", method="DELETE")
        for _ in range(10):
            append(store, 100)
        wait_until(lambda: relay_position(db) == 2000, 10, "the relay to finish")
    finally:
        stop_relay(proc)
    assert "interrupted" in log_path.read_text()
    assert assert_all_arrived_in_order(broker, 2000) >= 0


def test_relay_reconnects_after_its_database_connections_are_terminated(
    db, store, queue, broker, service_env, database_url, tmp_path
):
    """PostgreSQL drops the relay's connections mid-stream; it reconnects and finishes."""
    log_path = tmp_path / "relay.log"
    app = f"relay-{uuid.uuid4().hex[:8]}"
    proc = start_relay(service_env, log_path, DATABASE_URL=f"{database_url}&application_name={app}")
    try:
        append(store, 500)
        wait_until(lambda: relay_position(db) > 0, 5, "the relay to start publishing")
        append(store, 500)
        with db.connection() as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                [app],
            )
            conn.commit()
        for _ in range(10):
            append(store, 100)
        wait_until(lambda: relay_position(db) == 2000, 8, "the relay to finish")
    finally:
        stop_relay(proc)
    assert "interrupted" in log_path.read_text()
    assert assert_all_arrived_in_order(broker, 2000) >= 0


def test_a_second_relay_waits_until_the_first_is_gone(
    db, store, queue, broker, service_env, tmp_path
):
    """Two relays for one store: only one publishes; the other takes over when it stops."""
    first = start_relay(service_env, tmp_path / "first.log")
    append(store, 500)
    wait_until(lambda: relay_position(db) == 500, 5, "the first relay")
    second = start_relay(service_env, tmp_path / "second.log")
    wait_until(
        lambda: "another relay" in (tmp_path / "second.log").read_text(), 5, "the second to wait"
    )
    stop_relay(first)
    append(store, 500)
    wait_until(lambda: relay_position(db) == 1000, 5, "the second relay to take over")
    stop_relay(second)
    assert "sequences 1-100" not in (tmp_path / "second.log").read_text()
    assert "sequences 501-600" in (tmp_path / "second.log").read_text()
    assert sequences(collect(broker, depth(broker))) == list(range(1, 1001))
