"""The relay: publishes a service's committed events to its topic exchange, in log order.

Guarantees, each proven by a test against the real servers
(``tests/platform/test_relay.py``):

1. Events go to ``<service>.events``, declared exactly as nameko declares it
   (topic, durable, not auto-deleted), with routing key = event type and body
   = the CloudEvents JSON object, persistent; nameko's ``@event_handler``
   receives them unchanged.
2. Events are published in log order on one channel with publisher confirms.
   ``relay_positions`` advances to a batch's last sequence only after the broker
   has confirmed every message of the batch: the position never passes an
   event the broker has not taken responsibility for.
3. A nack, a confirm timeout, a lost broker or a lost database connection
   advances nothing; the relay reconnects (with backoff) and republishes from
   the stored position. Killed at any moment (``kill -9``), a new relay resumes
   without loss. Events published but not yet recorded are published again:
   consumers drop such duplicates (``source`` + ``id``, or ``sequence``).
4. ``run_forever`` wakes on the store's ``NOTIFY`` (every append) and polls
   every second as a fallback; one relay per store and target at a time runs
   it (a PostgreSQL advisory lock), so a stale process cannot interleave.

Logs carry counts and sequences only, never event data.

Run it with ``python -m shared.relay <service>`` (configuration from the
environment, see :mod:`shared.config`). SIGTERM stops it after the current
batch. It does not use eventlet.
"""

import argparse
import contextlib
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import amqp
import psycopg
from kombu import Connection, Exchange
from psycopg import sql

from shared import config as configmod
from shared.db import Database, connect
from shared.process import stop_on_signals
from shared.store import EventStore

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 500
POLL_INTERVAL = 1.0
CONFIRM_TIMEOUT = 30.0
HEARTBEAT = 30
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 30.0
PERSISTENT = 2
CONTENT_TYPE = "application/json"
CONTENT_ENCODING = "utf-8"

#: Failures after which the relay reconnects and republishes from its stored position.
RECOVERABLE = (amqp.exceptions.AMQPError, OSError, psycopg.Error)


class NotConfirmed(Exception):
    """The broker nacked a message of the batch, or did not confirm it in time."""


def event_exchange(service):
    """``<service>.events`` as nameko declares it (``nameko.standalone.events``)."""
    return Exchange(f"{service}.events", type="topic", durable=True, auto_delete=False)


def to_message(event, user_id=None):
    """The AMQP message of one stored event: its CloudEvent as JSON, persistent.

    ``user_id`` names the publishing broker user, which RabbitMQ checks against
    the connection's (replication: a kelurahan cannot publish as another)."""
    body = json.dumps(event.to_cloudevent(), separators=(",", ":")).encode()
    properties = {"user_id": user_id} if user_id else {}
    return amqp.Message(
        body,
        content_type=CONTENT_TYPE,
        content_encoding=CONTENT_ENCODING,
        delivery_mode=PERSISTENT,
        message_id=event.id,
        application_headers={
            "ce-id": event.id,
            "ce-source": event.source,
            "ce-sequence": event.sequence,
        },
        **properties,
    )


@dataclass(frozen=True)
class Route:
    """Where a relay publishes: ``exchange``, a routing key per event, and the
    ``target`` name its position is kept under. ``user_id`` (optional) is stamped
    on every message for the broker to validate; ``name`` names the connection."""

    exchange: Exchange
    target: str
    routing_key: Callable = lambda event: event.type
    user_id: str | None = None
    name: str = "rembug-relay"  # the broker connection's name, as the management API lists it


def local_route(service):
    """The node's own ``<service>.events`` exchange, routing key = event type."""
    return Route(event_exchange(service), f"{service}.events", name=f"rembug-relay {service}")


class _Confirms:
    """Tracks the delivery tags of one confirm-mode channel and the broker's acks and nacks."""

    def __init__(self, channel):
        self.last_tag = 0
        self.unconfirmed = set()
        self.nacked = False
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)

    def expect(self, count):
        """Record ``count`` messages about to be published; returns the last tag."""
        self.unconfirmed.update(range(self.last_tag + 1, self.last_tag + count + 1))
        self.last_tag += count
        return self.last_tag

    def _settle(self, tag, multiple):
        if multiple:
            self.unconfirmed = {t for t in self.unconfirmed if t > tag}
        else:
            self.unconfirmed.discard(tag)

    def _on_ack(self, tag, multiple):
        self._settle(tag, multiple)

    def _on_nack(self, tag, multiple):
        self.nacked = True
        self._settle(tag, multiple)


class _Broker:
    """One AMQP connection with one confirm-mode channel, publishing to one exchange."""

    def __init__(self, amqp_uri, route, name):
        self.route = route
        self.exchange = route.exchange
        self.conn = Connection(
            amqp_uri,
            heartbeat=HEARTBEAT,
            connect_timeout=10,
            transport_options={"client_properties": {"connection_name": name}},
        )
        self.conn.connect()
        self.channel = self._declared_channel()
        self.channel.confirm_select()
        self.confirms = _Confirms(self.channel)

    def _declared_channel(self):
        """A channel on which the exchange exists: checked passively first, which needs
        no permission (a kelurahan may publish to the city's exchange, not declare it);
        declared only where it is missing (a development broker)."""
        channel = self.conn.channel()
        try:
            self.exchange.bind(channel).declare(passive=True)
            return channel
        except amqp.exceptions.NotFound:
            channel = self.conn.channel()  # the broker closed the first one
            self.exchange.bind(channel).declare()
            return channel

    def publish(self, events):
        """Publish ``events`` in order; returns the delivery tag of the last one."""
        # expect the tags first: py-amqp reads acks while it publishes
        last_tag = self.confirms.expect(len(events))
        publish, name = self.channel.basic_publish, self.exchange.name
        routing_key, user_id = self.route.routing_key, self.route.user_id
        for event in events:
            publish(to_message(event, user_id), exchange=name, routing_key=routing_key(event))
        return last_tag

    def await_confirms(self, timeout):
        """Wait until every published message is acked; raise :class:`NotConfirmed` otherwise."""
        deadline = time.monotonic() + timeout
        confirms = self.confirms
        while confirms.unconfirmed and not confirms.nacked:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise NotConfirmed(
                    f"{len(confirms.unconfirmed)} messages unconfirmed after {timeout} s"
                )
            with contextlib.suppress(TimeoutError):
                self.conn.drain_events(timeout=remaining)
        if confirms.nacked:
            raise NotConfirmed("the broker nacked a message of the batch")

    def keepalive(self):
        """Read what the broker sent while idle and send heartbeats; raises if it is gone."""
        with contextlib.suppress(TimeoutError):
            self.conn.drain_events(timeout=0)
        self.conn.heartbeat_check()

    def close(self):
        with contextlib.suppress(Exception):  # closing a broken connection may fail any way
            self.conn.release()


class Relay:
    """Publishes the committed events of ``service``'s store to ``<service>.events``,
    or along another :class:`Route` (replication to the city)."""

    def __init__(
        self,
        database_url,
        amqp_uri,
        service,
        source,
        batch_size=DEFAULT_BATCH_SIZE,
        *,
        poll_interval=POLL_INTERVAL,
        confirm_timeout=CONFIRM_TIMEOUT,
        route=None,
    ):
        self.database_url = database_url
        self.amqp_uri = amqp_uri
        self.service = service
        self.route = route or local_route(service)
        self.target = self.route.target
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.confirm_timeout = confirm_timeout
        self.db = Database(database_url, size=2)
        self.store = EventStore(self.db, source)
        self._broker = None
        self._listener = None
        self._relayed = 0
        self._rewind_lock = threading.Lock()
        self._rewind_to = None

    # -- the position ---------------------------------------------------------------------------

    def position(self):
        """The last sequence the broker has confirmed for this target (0: none yet)."""
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT position FROM relay_positions WHERE target = %s", [self.target]
            ).fetchone()
            conn.rollback()
        return row["position"] if row else 0

    def rewind(self, position):
        """Publish again every event after ``position`` (a consumer lost them; thread
        safe). The stored position goes back before the next batch, and a batch in
        flight meanwhile does not advance it."""
        with self._rewind_lock:
            if self._rewind_to is None or position < self._rewind_to:
                self._rewind_to = position

    def _apply_rewind(self):
        """Lower the stored position to a requested rewind; True if there was one."""
        with self._rewind_lock:
            position, self._rewind_to = self._rewind_to, None
        if position is None:
            return False
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE relay_positions SET position = LEAST(position, %s) WHERE target = %s",
                [position, self.target],
            )
        log.info("relay to %s rewound to sequence %d on request", self.target, position)
        return True

    def _advance(self, sequence):
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO relay_positions AS r (target, position) VALUES (%s, %s) "
                "ON CONFLICT (target) DO UPDATE SET position = GREATEST(r.position, excluded.position)",
                [self.target, sequence],
            )

    # -- publishing -----------------------------------------------------------------------------

    def run_once(self, stop_event=None):
        """Publish every event committed after the stored position; return how many.

        Batches go out one after another: the next batch is read from the store
        while the broker confirms the current one, and the position advances
        only once a batch is confirmed. Raises :class:`NotConfirmed` or a
        connection error after dropping the broker connection; the next call
        starts again from the stored position. ``stop_event`` ends the run
        after the current batch.
        """
        try:
            return self._relay_pending(stop_event)
        except (NotConfirmed, *RECOVERABLE):
            self._drop_broker()
            raise

    def _relay_pending(self, stop_event):
        broker = self._connected_broker()
        total = 0
        self._apply_rewind()
        batch = self.store.read(self.position(), self.batch_size)
        while batch and not (stop_event and stop_event.is_set()):
            broker.publish(batch)
            upcoming = self.store.read(batch[-1].sequence, self.batch_size)
            broker.await_confirms(self.confirm_timeout)
            if self._apply_rewind():
                batch = self.store.read(self.position(), self.batch_size)
                continue
            self._advance(batch[-1].sequence)
            total += len(batch)
            self._relayed += len(batch)
            log.info(
                "relayed %d events to %s (sequences %d-%d)",
                len(batch),
                self.target,
                batch[0].sequence,
                batch[-1].sequence,
            )
            batch = upcoming
        return total

    def _connected_broker(self):
        if self._broker is None:
            self._broker = _Broker(self.amqp_uri, self.route, self.route.name)
            log.info("connected to the broker, publishing to %s", self.target)
        return self._broker

    def _drop_broker(self):
        if self._broker is not None:
            self._broker.close()
            self._broker = None

    # -- running --------------------------------------------------------------------------------

    def run_forever(self, stop_event=None):
        """Relay until ``stop_event`` is set, surviving broker and database outages."""
        stop_event = stop_event or threading.Event()
        backoff = BACKOFF_FIRST
        while not stop_event.is_set():
            try:
                self._listen(stop_event)
                if stop_event.is_set():
                    break
                self.run_once(stop_event)
                backoff = BACKOFF_FIRST
                self._wait_for_appends(stop_event)
            except (NotConfirmed, *RECOVERABLE) as exc:
                log.warning(
                    "relay to %s interrupted (%s: %s); retrying in %.1f s",
                    self.target,
                    type(exc).__name__,
                    exc,
                    backoff,
                )
                self._drop_broker()
                self._drop_listener()
                stop_event.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
        self.close()
        log.info("relay to %s stopped after relaying %d events", self.target, self._relayed)

    def _listen(self, stop_event):
        """Open the LISTEN connection and take the one-relay-per-target lock, waiting for it."""
        if self._listener is not None:
            return
        conn = connect(self.database_url, autocommit=True)
        try:
            schema = conn.execute("SELECT current_schema() AS s").fetchone()["s"]
            key = _lock_key(f"rembug.relay:{schema}:{self.target}")
            while not conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", [key]).fetchone()["ok"]:
                log.info("another relay to %s is running; waiting", self.target)
                if stop_event.wait(self.poll_interval):
                    conn.close()
                    return
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(f"rembug_events:{schema}")))
        except BaseException:
            conn.close()
            raise
        self._listener = conn

    def _wait_for_appends(self, stop_event):
        """Return on the first NOTIFY of an append, or after the poll interval."""
        if self._broker is not None:
            self._broker.keepalive()
        if stop_event.is_set():
            return
        for _ in self._listener.notifies(timeout=self.poll_interval, stop_after=1):
            pass
        for _ in self._listener.notifies(timeout=0):
            pass  # several appends, one run

    def _drop_listener(self):
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def close(self):
        """Close every connection (the relay reconnects if used again)."""
        self._drop_broker()
        self._drop_listener()
        self.db.close()


def _lock_key(name):
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def main(argv=None):
    """``python -m shared.relay <service>``: relay until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m shared.relay", description=main.__doc__)
    parser.add_argument("service")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    cfg = configmod.load(args.service)
    stop = stop_on_signals()
    relay = Relay(cfg.database_url, cfg.amqp_uri, cfg.service, cfg.source, args.batch_size)
    relay.run_forever(stop)


if __name__ == "__main__":
    main()
