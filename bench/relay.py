"""The relay against raw confirmed publishing of the same messages with py-amqp (kombu).

Subject: ``Relay.run_once`` publishing the whole log (from position 0) to
``<service>.events`` in batches of 500, each confirmed before its position is stored.
Baseline: the same message bodies and properties (built beforehand with ``to_message``)
published on one confirm-mode channel in batches of 500, waiting for the last delivery
tag of each batch to be acked. Both keep one connection across runs; a durable queue
bound with ``#`` takes every message and is purged before each run.
"""

import amqp
from kombu import Connection, Queue

from bench import alternate, benchmark, compare, fresh_database, log
from bench.nameko_rpc import rabbit_vhost
from shared.db import Database, migrate
from shared.envelope import Event
from shared.relay import Relay, event_exchange, to_message
from shared.store import EventStore

SERVICE = "benchrelay"
SOURCE = f"/kelurahan/32.75.05.1002/{SERVICE}"
QUEUE = "bench-relay"
BATCH = 500
CONFIRM_TIMEOUT = 30


def payload(i):
    """About 300 bytes of JSON."""
    return {
        "title": f"Perbaikan saluran air RT {i % 20:03d}",
        "rw": "005",
        "budget": 12_500_000 + i,
        "kelurahan": "32.75.05.1002",
        "description": "Saluran drainase tersumbat sepanjang 120 meter " * 4,
    }


@benchmark("relay")
def relay(quick):
    """The relay publishing N stored events vs raw kombu confirmed batches of the same bodies."""
    count, rounds = (2_000, 2) if quick else (20_000, 5)
    with fresh_database("relay") as url, rabbit_vhost("relay") as amqp_uri:
        db = Database(url)
        migrate(db)
        store = EventStore(db, SOURCE)
        log(f"relay: storing {count} events")
        for first in range(0, count, BATCH):
            stream = f"proposal-{first}"
            events = [
                Event("proposal.submitted", stream, payload(i)) for i in range(first, first + BATCH)
            ]
            store.append(stream, 0, events)
        messages = [(e.type, to_message(e)) for e in store.read(0, count)]
        assert len(messages) == count

        conn = Connection(amqp_uri)
        conn.connect()
        channel = conn.channel()
        queue = Queue(QUEUE, exchange=event_exchange(SERVICE), routing_key="#", durable=True)
        queue(channel).declare()

        subject = Relay(url, amqp_uri, SERVICE, SOURCE, batch_size=BATCH)

        def run_relay():
            channel.queue_purge(QUEUE)
            with db.transaction() as c:
                c.execute("DELETE FROM relay_positions")
            published = subject.run_once()
            assert published == count, published
            return published

        raw = Connection(amqp_uri)
        raw.connect()
        raw_channel = raw.channel()
        raw_channel.confirm_select()
        acked, sent = [0], [0]  # delivery tags: highest acked, last published

        def on_ack(tag, multiple):
            acked[0] = max(acked[0], tag)

        raw_channel.events["basic_ack"].add(on_ack)

        def run_raw():
            channel.queue_purge(QUEUE)
            for first in range(0, count, BATCH):
                for routing_key, m in messages[first : first + BATCH]:
                    message = amqp.Message(m.body, **m.properties)
                    raw_channel.basic_publish(
                        message, exchange=f"{SERVICE}.events", routing_key=routing_key
                    )
                sent[0] += len(messages[first : first + BATCH])
                while acked[0] < sent[0]:
                    raw.drain_events(timeout=CONFIRM_TIMEOUT)
            return count

        relay_rate, raw_rate = alternate(rounds, run_relay, run_raw)

        subject.close()
        raw.release()
        channel.queue_delete(QUEUE)
        channel.exchange_delete(f"{SERVICE}.events")
        conn.release()
        db.close()
    log(f"relay: {rounds} x {count} events each, relay and raw publishing taking turns")
    compare("relay", relay_rate, "events/s", raw_rate, "raw_kombu_confirmed_batches", target=0.5)
