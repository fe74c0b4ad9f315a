"""Replication between the kelurahan nodes and the city node, over the city's broker.

Every connection is opened from the kelurahan side. On the city broker's vhost
(``CITY_AMQP_URI``; definitions in ``deploy/rabbitmq/``):

- ``replication.up`` (topic): kelurahan -> city. Routing key
  ``<kelurahan code>.<service>.<event type>``; each message carries
  ``user_id`` = the kelurahan's broker user (``kelurahan-<code>``), which
  RabbitMQ validates against the connection, and topic permissions let that
  user write only under its own code.
- ``replication.down`` (topic): city -> kelurahan. Routing key
  ``<kelurahan code>.<service>.<kind>``; ``control.resend`` asks a kelurahan to
  publish a service's log again after a sequence, ``control.diverged`` tells
  it the city refuses its log (guarantee 6).
- ``city.ingest.<service>`` queues (bound ``*.*.*.*.<service>.#``: a code is
  four words) and one
  ``kelurahan.<code>.<service>`` queue per kelurahan and service (bound
  ``<code>.<service>.#``), all quorum queues.

Guarantees, each proven by a test against the real servers
(``tests/platform/test_replication.py``):

1. The uplink is the service's relay along another route
   (:func:`uplink_route`): a kelurahan's store is the buffer for any outage
   of its link, and the uplink resumes from its confirmed position.
2. The city stores each event once per ``(source, sequence)``, and for each
   source only the next sequence it lacks: nothing out of order, no gap, no
   duplicate. An event beyond a gap is dropped and the kelurahan asked to
   publish again from the city's position (at most once per
   ``RESEND_INTERVAL`` per source). On start the city asks every kelurahan of
   Kota Bekasi to resend what it lacks, so a city rebuilt from empty catches up.
   A message is acknowledged only once the transaction that stored its batch
   has committed; batches are stored one at a time, in the order received,
   while the next one is being received (:class:`Ingest`).
3. The city refuses an event whose ``source`` is not the kelurahan of the
   broker user that published it (``user_id``), logs the attempt and
   dead-letters it.
4. The service's city projection (``services.<service>.city.project``) runs in
   the transaction that stores the events: each takes effect exactly once.
5. Events leave a kelurahan in their CloudEvents form, which never carries an
   event's ``data["personal"]``.
6. The city never mixes two histories of one source. An event whose sequence
   the city has stored already is compared with the stored one by id: the
   same id is a duplicate, dropped; another id means the kelurahan's log is no
   longer the one the city holds (its server reinstalled with an empty store,
   or its store restored from an older backup). The city then marks the source
   diverged (``replication_positions.diverged_at`` and ``diverged_sequence``,
   the first sequence found different), stores none of its events from then
   on (they are acknowledged and dropped: the kelurahan's store keeps them),
   asks it for no resend, logs an error naming the source (at most once a
   minute per source; never an event's data), sends the kelurahan a
   ``control.diverged`` message that its downlink logs as an error, and
   reports ``rembug_replication_diverged{source}`` = 1 on every service's
   ``/metrics`` (shared.metrics). The mark
   survives restarts. What the city already holds of the source stays
   as it is (after a reinstall it may be the only copy of the old history):
   joining the histories is an operator's decision, not the city's.
7. The city's own events about a kelurahan's entities (a camat's or bappeda's
   decision on a proposal) go down by the city's relay to that kelurahan's
   queue; the kelurahan's downlink hands each to its service
   (``receive_from_city``), which folds it in once (the event id is its command
   id). An event the service refuses is logged and dropped; one it cannot take
   now (the service is down) stays queued.

Run ``python -m shared.replication <service>`` beside each service: on a
kelurahan node it runs the uplink and the downlink (``CITY_AMQP_URI``, with the
kelurahan's own credentials); on the city node (``NODE_ROLE=city``), the ingest
and the relay down.
"""

import argparse
import contextlib
import importlib
import logging
import math
import os
import re
import threading
import time
import uuid
from concurrent import futures
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import amqp
import orjson
import psycopg
from kombu import Connection, Exchange, Producer, Queue
from psycopg.types.json import Jsonb

from shared import config as configmod
from shared import wilayah
from shared.db import Database
from shared.envelope import Event
from shared.process import stop_on_signals
from shared.relay import BACKOFF_FIRST, BACKOFF_MAX, HEARTBEAT, PERSISTENT, Relay, Route

log = logging.getLogger(__name__)

UP_EXCHANGE = Exchange("replication.up", type="topic", durable=True, auto_delete=False)
DOWN_EXCHANGE = Exchange("replication.down", type="topic", durable=True, auto_delete=False)
QUORUM = {"x-queue-type": "quorum"}
UPLINK_TARGET = "city"
RESEND = "control.resend"
RESEND_INTERVAL = 5.0  # seconds between two resend requests to one source
DIVERGED = "control.diverged"
BATCH_SIZE = 500
WRITER_POLL = 0.005  # seconds between two looks at a busy writer while receiving
REFUSAL_LOG_INTERVAL = 60.0  # seconds between two errors logged about one diverged source
RECOVERABLE = (amqp.exceptions.AMQPError, OSError, psycopg.OperationalError, ConnectionError)


def kelurahan_user(code):
    """The broker user a kelurahan publishes to the city as."""
    return f"kelurahan-{code}"


def kelurahan_permissions(code):
    """``(permissions, topic permissions)`` of a kelurahan's broker user on the city's
    vhost, as the management API takes them (``PUT permissions/<vhost>/<user>``,
    ``PUT topic-permissions/<vhost>/<user>``; deploy/rabbitmq's definitions grant the
    same): it declares nothing, writes only to ``replication.up`` and there only under
    its own code, and reads only its own queues."""
    escaped = re.escape(code)
    return (
        {"configure": "^$", "write": r"^replication\.up$", "read": rf"^kelurahan\.{escaped}\."},
        {"exchange": UP_EXCHANGE.name, "write": rf"^{escaped}\.", "read": "^$"},
    )


def source_of(code, service):
    """The CloudEvents source of a kelurahan's service."""
    return f"/kelurahan/{code}/{service}"


def code_of(source):
    """The kelurahan code of a source ``/kelurahan/<code>/<service>`` (None otherwise)."""
    parts = source.split("/") if isinstance(source, str) else []
    return parts[2] if len(parts) == 4 and parts[1] == "kelurahan" else None


def ingest_queue(service, name=None):
    """The city's queue of ``service``'s events from every kelurahan (``name``: another
    consumer's own queue of them, e.g. notify's on the city node)."""
    return Queue(
        name or f"city.ingest.{service}",
        UP_EXCHANGE,
        routing_key=f"*.*.*.*.{service}.#",  # a kelurahan code is four words
        durable=True,
        queue_arguments=QUORUM,
    )


def down_queue(code, service):
    """A kelurahan service's queue of what the city sends it: its events (decisions) and
    the ingest's control messages."""
    return Queue(
        f"kelurahan.{code}.{service}",
        DOWN_EXCHANGE,
        routing_key=f"{code}.{service}.#",
        durable=True,
        queue_arguments=QUORUM,
    )


def declare_topology(amqp_uri, codes, services):
    """Declare the city broker's exchanges and queues for ``codes`` and ``services`` (a
    development broker: production loads them with the definitions in deploy/rabbitmq)."""
    with _connection(amqp_uri, "rembug-topology") as conn:
        channel = conn.channel()
        for exchange in (UP_EXCHANGE, DOWN_EXCHANGE):
            exchange(channel).declare()
        for service in services:
            ingest_queue(service)(channel).declare()
            for code in codes:
                down_queue(code, service)(channel).declare()


def uplink_route(code, service, user_id):
    """The relay route of a kelurahan's service to the city."""
    return Route(
        UP_EXCHANGE,
        UPLINK_TARGET,
        routing_key=lambda event: f"{code}.{service}.{event.type}",
        user_id=user_id,
        name=f"rembug-uplink {service}",
    )


def down_route(service):
    """The city's relay route down to the kelurahan an event concerns (its data's
    ``kelurahan``: a decision about a kelurahan's proposal)."""
    return Route(
        DOWN_EXCHANGE,
        "kelurahan",
        routing_key=lambda event: f"{event.data.get('kelurahan', 'city')}.{service}.{event.type}",
        name=f"rembug-down {service}",
    )


def broker_user(amqp_uri):
    """The user name in an AMQP URI."""
    return unquote(urlsplit(amqp_uri.replace("pyamqp://", "amqp://", 1)).username or "guest")


def _connection(amqp_uri, name):
    """A broker connection with heartbeats, named ``name`` in the management API."""
    return Connection(
        amqp_uri,
        heartbeat=HEARTBEAT,
        connect_timeout=10,
        transport_options={"client_properties": {"connection_name": name}},
    )


def _declared(channel, queue):
    """``queue`` bound to ``channel``, declared unless it exists already (on a city broker
    loaded with the definitions, a kelurahan user may not declare, only consume)."""
    try:
        queue(channel).queue_declare(passive=True)
        return queue(channel)
    except amqp.exceptions.NotFound:
        pass
    channel = channel.connection.channel()
    bound = queue(channel)
    bound.declare()
    return bound


# -- the kelurahan side ----------------------------------------------------------------------


class Downlink:
    """Consumes a kelurahan service's queue on the city broker: resend requests rewind
    the uplink relay; the city's events (decisions) go to ``deliver(cloudevent)``.

    ``deliver`` raises :class:`Undeliverable` for an event the service refuses
    (logged, then acknowledged); any other failure leaves the message for a later
    attempt. A message that cannot be decoded is logged (its routing key and content
    type, never its body) and acknowledged: no later attempt could read it. Whatever
    else goes wrong, the downlink logs it and reconnects; it never stops before
    ``stop_event``."""

    def __init__(self, amqp_uri, code, service, relay, deliver=None):
        self.amqp_uri = amqp_uri
        self.queue = down_queue(code, service)
        self.relay = relay
        self.service = service
        self.deliver = deliver
        self.prefix = f"{code}.{service}."

    def run_forever(self, stop_event):
        """Consume until ``stop_event`` is set, reconnecting with backoff after an outage."""
        backoff = BACKOFF_FIRST
        while not stop_event.is_set():
            try:
                with _connection(self.amqp_uri, f"rembug-downlink {self.service}") as conn:
                    queue = _declared(conn.channel(), self.queue)
                    consumer = conn.Consumer(
                        queue,
                        callbacks=[self._handle],
                        accept=["json"],
                        auto_declare=False,
                        on_decode_error=self._undecodable,
                    )
                    with consumer:
                        backoff = BACKOFF_FIRST
                        while not stop_event.is_set():
                            with contextlib.suppress(TimeoutError):
                                conn.drain_events(timeout=1)
                            conn.heartbeat_check()
            except RECOVERABLE as exc:
                log.warning(
                    "downlink interrupted (%s); retrying in %.1f s", type(exc).__name__, backoff
                )
            except Exception as exc:
                log.error("downlink failed (%s); retrying in %.1f s", type(exc).__name__, backoff)
            stop_event.wait(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    def _undecodable(self, message, exc):
        log.error(
            "dropped a message from the city that is not JSON (routing key %s, content type "
            "%s): %s",
            message.delivery_info["routing_key"],
            message.content_type,
            type(exc).__name__,
        )
        message.ack()

    def _handle(self, body, message):
        kind = message.delivery_info["routing_key"].removeprefix(self.prefix)
        if kind.startswith("control."):
            self._control(kind, body if isinstance(body, dict) else {})
            message.ack()
            return
        try:
            if self.deliver is None:
                raise Undeliverable(f"{self.service} takes no event from the city")
            self.deliver(body)
        except Undeliverable as refusal:
            log.warning("a %s event from the city was not applied: %s", kind, refusal)
        except Exception as exc:  # the service is away: try again later
            log.warning("could not deliver a %s event from the city (%s)", kind, type(exc).__name__)
            message.requeue()
            time.sleep(1)
            return
        message.ack()

    def _control(self, kind, body):
        """Act on a control message of the city's ingest (``control.<kind>``)."""
        after, sequence = body.get("after"), body.get("sequence")
        if kind == RESEND and isinstance(after, int) and after >= 0:
            self.relay.rewind(after)
            log.info("the city asked for %s events after sequence %d", self.service, after)
        elif kind == DIVERGED and isinstance(sequence, int):
            log.error(
                "the city refuses this kelurahan's %s events: the one stored here as sequence "
                "%d is not the one the city holds under it (was this store reset or restored "
                "from a backup?); they stay in this store until an operator decides",
                self.service,
                sequence,
            )
        else:
            log.warning("ignored a %s message from the city", kind)


class Undeliverable(Exception):
    """The kelurahan's service refused an event from the city (with its reason)."""


def rpc_delivery(cfg):
    """``deliver(cloudevent)``: the service's ``receive_from_city`` RPC on the node's own
    broker, as the system."""
    from nameko.exceptions import RemoteError
    from nameko.standalone.rpc import ClusterRpcProxy

    from shared.actor import SYSTEM
    from shared.auth import issue_token

    def deliver(cloudevent):
        context = {"authorization": issue_token(cfg.auth_secret, SYSTEM)}
        with ClusterRpcProxy({"AMQP_URI": cfg.amqp_uri}, context_data=context, timeout=30) as rpc:
            try:
                getattr(rpc, cfg.service).receive_from_city(event=cloudevent)
            except RemoteError as error:
                if error.exc_type in ("ValidationError", "Conflict", "NotFound", "Forbidden"):
                    raise Undeliverable(f"{error.exc_type}: {error.value}") from None
                raise

    return deliver


def run_kelurahan_link(cfg, city_amqp_uri, stop_event, deliver=None):
    """The uplink (in this thread) and the downlink (in another) of one service;
    ``deliver`` defaults to the service's ``receive_from_city`` RPC."""
    route = uplink_route(cfg.kelurahan_code, cfg.service, broker_user(city_amqp_uri))
    relay = Relay(cfg.database_url, city_amqp_uri, cfg.service, cfg.source, route=route)
    deliver = deliver or rpc_delivery(cfg)
    downlink = Downlink(city_amqp_uri, cfg.kelurahan_code, cfg.service, relay, deliver)
    thread = threading.Thread(target=downlink.run_forever, args=(stop_event,), daemon=True)
    thread.start()
    relay.run_forever(stop_event)
    thread.join(5)


# -- the city side ---------------------------------------------------------------------------


class Ingest:
    """The city's intake of one service's events from every kelurahan.

    Two threads share the work. This one (``run_once``, ``run_forever``) owns
    the broker connection: it receives messages, refuses the malformed and the
    forged ones, and acknowledges. A writer thread stores one batch at a time:
    a batch is handed to it as soon as it is free, with every message received
    meanwhile (up to ``batch_size``), so a quiet city stores an event the
    moment it arrives and a busy one in large batches, while the next batch is
    being received. Batches are stored in the order they were received, and a
    batch's messages are acknowledged only after its transaction committed.

    ``project(conn, events)`` (optional) updates the city's read models from
    newly stored events (:class:`~shared.envelope.Event`, with their source), in
    the storing transaction. ``queue`` names a queue of its own for another
    consumer of the same events in another database (notify on the city node).
    """

    def __init__(
        self, database_url, amqp_uri, service, project=None, batch_size=BATCH_SIZE, queue=None
    ):
        self.db = Database(database_url, size=2)
        self.amqp_uri = amqp_uri
        self.service = service
        self.project = project
        self.queue_name = queue  # None: the service's own city.ingest.<service>
        self.batch_size = batch_size
        self._conn = None
        self._consumer = None
        self._producer = None
        self._pending = []  # messages received, not yet handed to the writer
        self._writer = None  # the writer thread's executor
        self._writing = None  # (future, batch) of the batch the writer is storing
        self._refusals_logged = {}  # source -> when its refusal was last logged

    # -- running -------------------------------------------------------------------------------

    def run_forever(self, stop_event):
        """Ingest until ``stop_event`` is set, surviving broker and database outages. A
        batch the city's projection fails on is not acknowledged: it is logged (the
        error's type only) and tried again with backoff, and the ingest keeps running."""
        backoff = BACKOFF_FIRST
        while not stop_event.is_set():
            try:
                self._connect()
                self.request_missing()
                while not stop_event.is_set():
                    self.run_once(wait=1.0)
                    backoff = BACKOFF_FIRST
            except Exception as exc:  # noqa: BLE001 (a failing batch must not stop the city)
                level = logging.WARNING if isinstance(exc, RECOVERABLE) else logging.ERROR
                log.log(
                    level,
                    "ingest of %s interrupted (%s); retrying in %.1f s",
                    self.service,
                    type(exc).__name__,
                    backoff,
                )
                self._disconnect()
                stop_event.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
        self.close()

    def run_once(self, wait=0.2):
        """Receive for up to ``wait`` s, handing what arrived to the writer whenever it is
        free, and acknowledge the batch it committed; returns how many events that batch
        stored (0 if none committed in time). Returns as soon as a batch is committed;
        a batch still being stored is acknowledged by a later call. Raises the writer's
        error (its batch is not acknowledged: the broker delivers it again)."""
        self._connect()
        self._conn.heartbeat_check()
        deadline = time.monotonic() + wait
        while True:
            if self._writing is not None and self._writing[0].done():
                return self._settle()
            if self._writing is None and self._pending:
                self._receive(timeout=0)  # whatever is already on its way joins the batch
                self._hand_over()
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return 0
            if self._writing is None:
                self._receive(remaining)
            elif len(self._pending) < self.batch_size:
                self._receive(min(remaining, WRITER_POLL))  # and look at the writer again
            else:  # the next batch is full: nothing to do until the writer is free
                futures.wait([self._writing[0]], timeout=remaining)

    def request_missing(self):
        """Ask every kelurahan of Kota Bekasi to publish again what this city lacks (not
        those whose log diverged: see :meth:`diverged`)."""
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT source, position, diverged_at IS NOT NULL AS diverged"
                " FROM replication_positions"
            ).fetchall()
        known = {r["source"]: r for r in rows}
        for code in wilayah.kelurahan_codes():
            source = source_of(code, self.service)
            row = known.get(source)
            if row is None or not row["diverged"]:
                self._ask_resend(source, row["position"] if row else 0)
        log.info("asked every kelurahan for the %s events this city lacks", self.service)

    def positions(self):
        """``{source: position}`` of every source seen."""
        with self.db.read() as conn:
            rows = conn.execute("SELECT source, position FROM replication_positions").fetchall()
        return {r["source"]: r["position"] for r in rows}

    def diverged(self):
        """``{source: sequence}`` of every source refused since the event it sent under
        ``sequence`` differed from the one stored under it (see the module docstring)."""
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT source, diverged_sequence FROM replication_positions"
                " WHERE diverged_at IS NOT NULL"
            ).fetchall()
        return {r["source"]: r["diverged_sequence"] for r in rows}

    # -- receiving (the broker connection's thread) ----------------------------------------------

    def _receive(self, timeout):
        """Take the messages that arrive within ``timeout`` s (0: those already here), up to
        a batch."""
        with contextlib.suppress(TimeoutError):
            while len(self._pending) < self.batch_size:
                self._conn.drain_events(timeout=timeout)
                timeout = 0

    def _hand_over(self):
        """Give the writer the next batch of the pending messages, the refused ones
        rejected first."""
        messages = self._pending[: self.batch_size]
        del self._pending[: self.batch_size]
        batch = _Batch()
        for message in messages:
            cloudevent = self._accepted(message)
            if cloudevent is not None:
                batch.add(cloudevent, message)
        if batch.last is None:
            return
        if self._writer is None:
            self._writer = futures.ThreadPoolExecutor(
                1, thread_name_prefix=f"ingest-{self.service}"
            )
        self._writing = (self._writer.submit(self._store, batch), batch)

    def _settle(self):
        """Acknowledge the batch the writer committed, then ask for what it lacked and tell
        the kelurahan whose log diverged; returns how many events it stored."""
        future, batch = self._writing
        self._writing = None
        outcome = future.result()
        batch.last.ack(multiple=True)  # every message of the batch, the refused ones rejected
        for source, position in outcome.resend.items():
            self._ask_resend(source, position)
        for source, sequence in outcome.diverged.items():
            self._refuse(source, sequence, first=True)
        for source, sequence in outcome.refused.items():
            self._refuse(source, sequence)
        return outcome.stored

    def _accepted(self, message):
        """The message's CloudEvent (its id in canonical form) if it is well formed and its
        publisher owns its source; otherwise the message is dead-lettered and the attempt
        logged."""
        user = message.properties.get("user_id")
        try:
            cloudevent = orjson.loads(message.body)
            code = code_of(cloudevent["source"])
            sequence = cloudevent["sequence"]
            cloudevent["id"] = str(uuid.UUID(cloudevent["id"]))
            valid = isinstance(sequence, int) and sequence > 0
        except (ValueError, TypeError, KeyError, AttributeError):
            code, valid = None, False
        if not valid or code is None or user != kelurahan_user(code):
            log.warning(
                "refused a %s event published by %r with routing key %s: malformed, or its "
                "source is not the publisher's kelurahan",
                self.service,
                user,
                message.delivery_info["routing_key"],
            )
            message.reject(requeue=False)
            return None
        return cloudevent

    def _ask_resend(self, source, position):
        self._control(source, RESEND, {"source": source, "after": position})
        log.debug("asked %s to resend after sequence %d", source, position)

    def _refuse(self, source, sequence, first=False):
        """Log (at most every ``REFUSAL_LOG_INTERVAL`` s per source) that ``source``'s log
        diverged at ``sequence``, and tell its kelurahan."""
        now = time.monotonic()
        if not first and now - self._refusals_logged.get(source, -math.inf) < REFUSAL_LOG_INTERVAL:
            return
        self._refusals_logged[source] = now
        log.error(
            "%s: refusing its events: the event it sent as sequence %d is not the one this city "
            "stored under that sequence (was its store reset or restored from a backup?); the "
            "two histories are not mixed, its events stay in its own store until an operator "
            "decides",
            source,
            sequence,
        )
        self._control(source, DIVERGED, {"source": source, "sequence": sequence})

    def _control(self, source, kind, body):
        """Send ``source``'s kelurahan a control message (``kind``) down its queue."""
        self._producer.publish(
            body,
            routing_key=f"{code_of(source)}.{self.service}.{kind}",
            delivery_mode=PERSISTENT,
            serializer="json",
        )

    # -- storing (the writer thread) -------------------------------------------------------------

    def _store(self, batch):
        """Store each source's next sequences of ``batch`` in one transaction, with the
        city's projection; returns its :class:`_Outcome`.

        A source's events are checked against those already stored under the
        same sequences (duplicates, usually none): one that differs marks the
        source diverged, and a diverged source's events are not stored. Rows go
        to the server as the messages' own JSON bodies, one array for the
        batch, which it unpacks: nothing is encoded again."""
        outcome, rows, updates = _Outcome(), [], []
        with self.db.transaction() as conn:
            known = {
                r["source"]: r
                for r in conn.execute(
                    "SELECT source, position, source_head, diverged_at IS NOT NULL AS diverged,"
                    " diverged_sequence, resend_requested_at < now() - %s::interval AS may_ask"
                    " FROM replication_positions WHERE source = ANY(%s)"
                    " ORDER BY source FOR UPDATE",
                    [f"{RESEND_INTERVAL} seconds", sorted(batch.events)],
                )
            }
            differing = _first_differences(conn, batch, known)
            for source, by_sequence in sorted(batch.events.items()):
                row = known.get(source) or _NEW_SOURCE
                if row["diverged"]:
                    outcome.refused[source] = row["diverged_sequence"]
                    continue
                if source in differing:
                    outcome.diverged[source] = differing[source]
                    continue
                position = row["position"]
                while position + 1 in by_sequence:
                    position += 1
                    rows.append(by_sequence[position])
                head = max(row["source_head"], max(by_sequence))
                ask = head > position and row["may_ask"] is not False
                if ask:
                    outcome.resend[source] = position
                updates.append(
                    {"source": source, "position": position, "source_head": head, "ask": ask}
                )
            if rows:
                bodies = "[" + ",".join(body for _, body in rows) + "]"
                conn.execute(_INSERT_EVENTS, [Jsonb(bodies, dumps=_verbatim)])
            if updates:
                conn.execute(_UPSERT_POSITIONS, [Jsonb(updates)])
            if outcome.diverged:
                conn.execute(
                    _MARK_DIVERGED, [list(outcome.diverged), list(outcome.diverged.values())]
                )
            if self.project and rows:
                self.project(conn, [Event.from_cloudevent(ce) for ce, _ in rows])
        outcome.stored = len(rows)
        log.debug("stored %d %s events", len(rows), self.service)
        return outcome

    # -- connections -----------------------------------------------------------------------------

    def _connect(self):
        if self._conn is not None:
            return
        conn = _connection(self.amqp_uri, f"rembug-ingest {self.service}")
        conn.connect()
        channel = conn.channel()
        UP_EXCHANGE(channel).declare()
        DOWN_EXCHANGE(channel).declare()
        queue = ingest_queue(self.service, self.queue_name)(channel)
        queue.declare()
        # a batch being stored and the next one being received
        channel.basic_qos(0, self.batch_size * 2, False)
        # on_message: the body stays undecoded until _accepted parses it, once
        self._consumer = conn.Consumer(queue, on_message=self._pending.append, accept=["json"])
        self._consumer.consume()
        self._producer = Producer(conn.channel(), exchange=DOWN_EXCHANGE)
        self._conn = conn

    def _disconnect(self):
        """Drop the connection and every unacknowledged message (the broker delivers them
        again), after the writer finished the batch in hand."""
        if self._writing is not None:
            with contextlib.suppress(Exception):  # its error was reported, or will recur
                self._writing[0].result()
            self._writing = None
        self._pending.clear()
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.release()
            self._conn = None

    def close(self):
        """Finish the batch being stored (acknowledged if the broker is still there), then
        close every connection."""
        if self._writing is not None and self._conn is not None:
            with contextlib.suppress(Exception):
                self._writing[0].result()
                self._settle()
        self._disconnect()
        if self._writer is not None:
            self._writer.shutdown()
            self._writer = None
        self.db.close()


class _Batch:
    """The accepted messages of one batch: ``events`` = ``{source: {sequence: (cloudevent,
    JSON body)}}``, ``last`` = its last message (acknowledging it acknowledges the batch),
    and ``conflicts`` = ``{source: sequence}`` sent twice in the batch as different
    events."""

    def __init__(self):
        self.events = {}
        self.last = None
        self.conflicts = {}

    def add(self, cloudevent, message):
        by_sequence = self.events.setdefault(cloudevent["source"], {})
        sequence = cloudevent["sequence"]
        if sequence in by_sequence and by_sequence[sequence][0]["id"] != cloudevent["id"]:
            source = cloudevent["source"]
            self.conflicts[source] = min(sequence, self.conflicts.get(source, sequence))
        body = message.body  # py-amqp decodes a body with a content encoding
        by_sequence[sequence] = (cloudevent, body if isinstance(body, str) else body.decode())
        self.last = message


@dataclass
class _Outcome:
    """What storing a batch did: ``stored`` events; ``resend`` = ``{source: position}``
    to ask again after; ``diverged`` = ``{source: sequence}`` found diverged now;
    ``refused`` = ``{source: sequence}`` of sources found diverged before."""

    stored: int = 0
    resend: dict = field(default_factory=dict)
    diverged: dict = field(default_factory=dict)
    refused: dict = field(default_factory=dict)


_NEW_SOURCE = {"position": 0, "source_head": 0, "diverged": False, "may_ask": None}


def _first_differences(conn, batch, known):
    """``{source: lowest sequence}`` where the batch's event differs (by id) from the one
    stored under the same sequence, or the batch itself sent two events as one sequence."""
    differing = dict(batch.conflicts)
    sent = [
        (source, sequence, cloudevent["id"])
        for source, by_sequence in batch.events.items()
        for sequence, (cloudevent, _) in by_sequence.items()
        if source in known and sequence <= known[source]["position"]
    ]
    if not sent:
        return differing
    stored = {
        (r["source"], r["sequence"]): r["id"]
        for r in conn.execute(
            "SELECT source, sequence, id::text AS id FROM replica_events"
            " WHERE (source, sequence) IN (SELECT * FROM unnest(%s::text[], %s::bigint[]))",
            [[s for s, _, _ in sent], [n for _, n, _ in sent]],
        )
    }
    for source, sequence, id_ in sent:
        if stored.get((source, sequence), id_) != id_:
            differing[source] = min(sequence, differing.get(source, sequence))
    return differing


_INSERT_EVENTS = (  # from the CloudEvents as published (shared.envelope.Event.to_cloudevent)
    "INSERT INTO replica_events (source, sequence, id, stream, version, type, time, data,"
    " data_version, correlation_id, causation_id, actor_id, actor_role)"
    " SELECT source, sequence, id, subject, streamversion, type, time, data,"
    " coalesce(dataversion, 1), correlationid, causationid, actorid, actorrole"
    " FROM jsonb_to_recordset(%s) AS e (source text, sequence bigint, id uuid,"
    " subject text, streamversion integer, type text, time timestamptz, data jsonb,"
    " dataversion integer, correlationid text, causationid text, actorid text,"
    " actorrole text)"
    " ON CONFLICT (source, sequence) DO NOTHING"
)
_MARK_DIVERGED = (
    "INSERT INTO replication_positions AS p (source, position, source_head, diverged_at,"
    " diverged_sequence)"
    " SELECT d.source, 0, 0, now(), d.sequence FROM unnest(%s::text[], %s::bigint[])"
    " AS d (source, sequence)"
    " ON CONFLICT (source) DO UPDATE SET diverged_at = excluded.diverged_at,"
    " diverged_sequence = excluded.diverged_sequence"
)
_UPSERT_POSITIONS = (
    "INSERT INTO replication_positions AS p (source, position, source_head, received_at,"
    " resend_requested_at)"
    " SELECT u.source, u.position, u.source_head, now(), CASE WHEN u.ask THEN now() END"
    " FROM jsonb_to_recordset(%s) AS u (source text, position bigint, source_head bigint,"
    " ask boolean)"
    " ON CONFLICT (source) DO UPDATE SET position = excluded.position,"
    " source_head = excluded.source_head, received_at = excluded.received_at,"
    " resend_requested_at = coalesce(excluded.resend_requested_at, p.resend_requested_at)"
)


def _verbatim(body):
    """A JSON text that is already encoded, as it is."""
    return body


def run_city_link(cfg, stop_event):
    """The city's ingest of one service (in this thread) and its relay down to the
    kelurahan (in another)."""
    down = Relay(
        cfg.database_url, cfg.amqp_uri, cfg.service, cfg.source, route=down_route(cfg.service)
    )
    thread = threading.Thread(target=down.run_forever, args=(stop_event,), daemon=True)
    thread.start()
    ingest = Ingest(cfg.database_url, cfg.amqp_uri, cfg.service, city_projection(cfg.service))
    ingest.run_forever(stop_event)
    thread.join(5)


def city_projection(service):
    """``services.<service>.city.project`` if the service has a city view, else None."""
    try:
        module = importlib.import_module(f"services.{service}.city")
    except ModuleNotFoundError:
        return None
    return module.project


def main(argv=None):
    """``python -m shared.replication <service>``: the service's link to the city (on a
    kelurahan node) or its ingest (on the city node), until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m shared.replication", description=main.__doc__)
    parser.add_argument("service")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    cfg = configmod.load(args.service)
    stop = stop_on_signals()
    if cfg.node_role == "city":
        run_city_link(cfg, stop)
    else:
        city = os.environ.get("CITY_AMQP_URI")
        if not city:
            raise SystemExit(
                "CITY_AMQP_URI must name the city broker's vhost with this kelurahan's "
                "credentials, e.g. amqps://kelurahan-32.75.05.1002:secret@city.example/rembug-city"
            )
        run_kelurahan_link(cfg, city, stop)


if __name__ == "__main__":
    main()
