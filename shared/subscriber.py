"""``@subscribe``: follow another service's events, each applied exactly once, in order.

Usage, in a service with an :class:`~shared.repository.EventStoreProvider`
dependency (attribute ``repo`` unless told otherwise)::

    @subscribe("proposals", event_types=("proposal.submitted",))
    def on_proposal(self, event, conn):
        conn.execute("INSERT INTO ...", [...])  # commits with the position

Guarantees (``tests/platform/test_subscriber.py``):

1. Nothing falls between catch-up and live: the subscription's durable queue
   ``<service>.<method>.from.<source>``, bound to the topic exchange
   ``<source>.events`` for every type, is declared at container setup,
   before the catch-up starts. Events published later wait in the queue.
2. A subscriber that starts late, was down or is new catches up from its
   position by paging the source's ``replay(after, limit)`` RPC (as the
   ``system`` actor) until a page comes back empty, then follows the queue.
   A live event beyond ``position + 1`` (missed ones) triggers a catch-up first.
   Positions are per source log and gap-free, so events of types the
   subscription does not follow only move the position (the queue, like
   replay, brings every type: otherwise each followed event after unfollowed
   ones would look like a gap and cost a replay call).
   Catch-up reads the source service of this node (``/<node>/<source>``); an
   event of another source on the same exchange (replicated from another node)
   is tracked under its own source, and a gap in it, which no replay here can
   fill, is requeued.
3. Exactly once and in order: each event goes through
   :class:`~shared.tracking.Tracker`, so the handler's writes on ``conn`` and
   the new position commit together; duplicates (a relay re-publishing after a
   crash, an event seen by both replay and queue) are acked and dropped. One
   event at a time per subscription, in source-sequence order.
4. A handler that raises is retried ``max_attempts`` times with a short
   backoff, each attempt in a fresh transaction; then the event is parked: a
   ``parked_events`` row and a message on the durable queue ``<queue>.dlq``
   (the CloudEvent, the reason in header ``x-rembug-reason``), published with
   a confirm inside the parking transaction. The subscription goes on with the
   next events. Database and broker failures (connection lost, deadlock) are not
   the handler's fault: they are retried without counting and never park.
5. A message is acked only after its effect (or its parking) committed; a
   crash before leaves it unacked, and its redelivery is a duplicate or applies.
   A body that is not a CloudEvent cannot be tracked: it is dead-lettered with
   reason ``not a CloudEvent`` and acked (one that is not even JSON, as text);
   no log line carries it.

6. ``batch_size`` (default 1: one event per transaction) lets a busy
   subscription apply up to that many events already waiting, live or from a
   replay page, in one tracking transaction
   (:meth:`~shared.tracking.Tracker.handle_batch`): each event still runs in a
   worker of its own, in order, but their effects and the position commit
   together. Anything unusual in a batch (a handler failure, a lost
   connection, a gap, events of several sources) sends its events down the
   one-at-a-time path above, with its retries, parking and catch-up; so every
   guarantee holds as without batches. With ``many=True`` the handler is
   called as ``handler(events, conn)`` with the list of followed events of
   the batch, in order (one worker per batch; a list of one on the
   one-at-a-time path), so it can do set-based work.

Design: the transaction wraps the worker. Each subscription runs one managed
thread, the *pump*. Live messages reach it through :class:`InboxQueueConsumer`,
nameko's QueueConsumer (reconnection, prefetch) shared by the service's
subscriptions, which only puts them in the pump's inbox, with a window of three
batches, each subscription on a channel of its own (a batch is acked in one
frame, which on a shared channel would ack other subscriptions' messages too).
For each event the pump opens the tracking transaction and, inside
it, calls ``container.spawn_worker`` with ``(event, conn)`` as arguments; it
waits for the worker's result (delivered by ``handle_result``) before
committing or rolling back. The worker therefore
runs through nameko's full worker lifecycle (dependencies injected, worker
setup/result/teardown, logging) while the only thread touching ``conn`` during
the handler is the worker, because the pump is blocked waiting for it. Two
rules follow: the handler must neither commit nor roll back ``conn`` (that
would split its effects from the position), and dependency hooks that run
after the result (``worker_result``, ``worker_teardown``) may run after the
commit, so they must not use ``conn``. The worker's ``call_id_stack`` starts at
the event's correlation id, so events the handler appends keep the correlation
of the conversation.

Logs carry the subscription, source, sequences, types and counts, never event data.
"""

import contextlib
import logging
from functools import partial

import amqp.exceptions
import eventlet
import eventlet.event
import eventlet.queue
import kombu
import kombu.exceptions
import orjson
import psycopg
from kombu import Queue, binding
from nameko.amqp.publish import Publisher, get_connection
from nameko.exceptions import ContainerBeingKilled
from nameko.extensions import Entrypoint
from nameko.messaging import QueueConsumer
from nameko.standalone.events import get_event_exchange
from nameko.standalone.rpc import ClusterRpcProxy

from shared import config as configmod
from shared.actor import SYSTEM
from shared.auth import CONTEXT_KEY, issue_token
from shared.envelope import Event
from shared.tracking import APPLIED, DUPLICATE, GAP, PARKED, Tracker

log = logging.getLogger(__name__)

REASON_HEADER = "x-rembug-reason"
REPLAY_PAGE = 500
RPC_TIMEOUT = 10  # seconds to wait for one replay page
RETRY_DELAY = 0.05  # first backoff after a handler failure, doubled each time
TRANSIENT_DELAY_MAX = 5.0
CATCH_UP_RETRY = 2.0  # seconds before catch-up is tried again while the source does not answer
CATCH_UP_RETRY_MAX = 30.0  # the wait doubles after each failed attempt, up to this
GAP_PAUSE = 1.0  # before requeueing a live event whose gap could not be filled
STOP_GRACE = 10  # seconds stop() waits for the event in hand
MAX_REASON = 1000

TRANSIENT = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    amqp.exceptions.ConnectionError,
    kombu.exceptions.OperationalError,
    OSError,
)

_STOP = object()


class InboxQueueConsumer(QueueConsumer):
    """nameko's QueueConsumer for subscriptions: hands each message straight to its
    subscription, whose ``handle_message`` only puts it in the pump's inbox, instead of
    spawning a thread per message to do so. Being its own shared extension, it also
    gives the subscriptions of a service their own connection and prefetch window,
    apart from the service's RPC consumer."""

    @property
    def prefetch_count(self):
        """Three batches of the largest subscription: the next batch is already here while
        one commits. (A window of one batch had the broker wait for each batch's acks
        before sending more.)"""
        return max([self.container.max_workers, *(3 * p.batch_size for p in self._providers)])

    def handle_message(self, provider, message):
        """Decode a delivery and hand it over: a JSON body by orjson (kombu's decoder, the
        standard library's with an object hook, cost several times as much); any other
        content type as kombu decodes it."""
        try:
            if message.content_type == "application/json" and not message.headers.get(
                "compression"
            ):
                body = orjson.loads(message.body)
            else:
                body = message.decode()
        except Exception as exc:  # whatever the decoder raised
            self.handle_undecodable(provider, message, exc)
            return
        provider.handle_message(body, message)

    def get_consumers(self, consumer_cls, channel):
        """As nameko's, except that each subscription consumes on a channel of its own (on
        the same connection), so that :meth:`ack_through` may settle a batch in one frame."""
        for provider in self._providers:
            consumer = kombu.Consumer(
                channel.connection.channel(),
                queues=[provider.queue],
                on_message=partial(self.handle_message, provider),
                accept=self.accept,
                on_decode_error=partial(self.handle_undecodable, provider),
            )
            consumer.qos(prefetch_count=self.prefetch_count)
            self._consumers[provider] = consumer
        return self._consumers.values()

    def handle_undecodable(self, provider, message, exc):
        """A body that does not decode (not JSON, or a content type not accepted) goes to
        the pump as text, to be dead-lettered as not a CloudEvent (kombu's own handler
        would log the body and drop it)."""
        body = message.body
        provider.handle_message(
            body.decode("utf-8", "replace") if isinstance(body, bytes) else body, message
        )

    def ack_through(self, message):
        """Acknowledge ``message`` and every delivery before it on its channel, in one frame.

        The channel is the subscription's own and its pump settles messages in the order
        they were delivered, so the deliveries before are the batch's own, or were
        settled already.
        """
        if message.channel.connection:  # else the broker has taken them back already
            with contextlib.suppress(amqp.exceptions.ConnectionError):
                message.channel.basic_ack(message.delivery_tag, multiple=True)


class Stopping(Exception):
    """The subscription is stopping; the event in hand is left for redelivery."""


class Subscription(Entrypoint):
    """The entrypoint behind :func:`subscribe` (see the module docstring)."""

    queue_consumer = InboxQueueConsumer()
    _pump = None
    _behind = True

    def __init__(
        self,
        source_service,
        event_types=("#",),
        store="repo",
        max_attempts=3,
        batch_size=1,
        many=False,
        **kwargs,
    ):
        if isinstance(event_types, str):
            event_types = (event_types,)
        self.source_service = source_service
        self.event_types = tuple(event_types)
        self.store_attr = store
        self.max_attempts = max(1, int(max_attempts))
        self.batch_size = max(1, int(batch_size))
        self.many = bool(many)
        if self.many:
            kwargs.setdefault("sensitive_arguments", ("events",))
        kwargs.setdefault("sensitive_arguments", ("event",))
        super().__init__(**kwargs)

    # nameko lifecycle

    def setup(self):
        service = self.container.service_name
        self._store = self._store_provider()
        self.name = f"{service}.{self.method_name}.from.{self.source_service}"
        self.config = configmod.load(service)
        self.source = f"/{self.config.node}/{self.source_service}"
        self.exchange = get_event_exchange(self.source_service, self.container.config)
        self.queue = Queue(
            self.name,
            # every type: the log is gap-free, so an unfollowed event only moves the
            # position here instead of looking like a gap that costs a replay call
            bindings=[binding(self.exchange, routing_key="#")],
            durable=True,
        )
        self.dlq = Queue(f"{self.name}.dlq", durable=True)
        self._declare()
        self.dead_letters = Publisher(
            self.container.config["AMQP_URI"],
            serializer="json",
            use_confirms=True,
            mandatory=True,
            declare=[self.dlq],
        )
        self._inbox = eventlet.queue.LightQueue()
        self._stopping = False
        self.queue_consumer.register_provider(self)

    def start(self):
        self.tracker = Tracker(self._store.db, self.name)
        self._pump = self.container.spawn_managed_thread(self._run, identifier=self.name)

    def stop(self):
        self._stopping = True
        self._inbox.put(_STOP)
        if self._pump is not None:
            try:
                with eventlet.Timeout(STOP_GRACE):
                    self._pump.wait()
            except eventlet.Timeout:
                log.warning(
                    "%s: the event in hand did not finish in time; left for redelivery", self.name
                )
                self._pump.kill()
        self.queue_consumer.unregister_provider(self)

    def kill(self):
        self._stopping = True
        if self._pump is not None:
            self._pump.kill()

    @property
    def behind(self):
        """True until the first catch-up succeeded, and again while a known gap is not filled."""
        return self._behind

    def handle_message(self, body, message):
        """Called by the QueueConsumer for each live message: hand it to the pump."""
        self._inbox.put((body, message))

    # the pump: one event at a time

    def _run(self):
        """Catch up, then follow the inbox. While the source does not answer, catch-up is
        tried again after ``CATCH_UP_RETRY``, doubling up to ``CATCH_UP_RETRY_MAX``; a live
        event after a gap tries at once (:meth:`_consume`)."""
        failures = 0  # catch-up attempts failed in a row
        try:
            while not self._stopping:
                if self._behind:
                    self._behind = not self._catch_up()
                    failures = failures + 1 if self._behind else 0
                try:
                    item = self._inbox.get(timeout=_retry_after(failures) if self._behind else None)
                except eventlet.queue.Empty:
                    continue
                if item is _STOP:
                    return
                items = self._more_waiting(item)
                if items[-1] is _STOP:
                    self._consume_all(items[:-1])
                    return
                self._consume_all(items)
        except (Stopping, ContainerBeingKilled):
            return

    def _more_waiting(self, item):
        """``item`` and up to ``batch_size - 1`` more already in the inbox (stopping at _STOP)."""
        items = [item]
        while len(items) < self.batch_size and items[-1] is not _STOP:
            try:
                items.append(self._inbox.get_nowait())
            except eventlet.queue.Empty:
                break
        return items

    def _consume_all(self, items):
        """Consume live messages: as one batch when they allow it, else one by one."""
        if len(items) == 1:
            self._consume(*items[0])
            return
        parsed = []
        for body, message in items:
            try:
                parsed.append((Event.from_cloudevent(body), body, message))
            except (KeyError, TypeError, ValueError, AttributeError):
                self._reject(body, message)
        outcomes = self._apply_batch([event for event, _, _ in parsed])
        done = None  # the last message applied or dropped in the batch, acked with those before
        for (_, body, message), outcome in zip(parsed, outcomes, strict=True):
            if outcome in (APPLIED, DUPLICATE):
                done = message
            else:
                self._consume(body, message)
        if done is not None:
            self.queue_consumer.ack_through(done)

    def _apply_batch(self, events):
        """Outcomes of applying ``events`` in one transaction; None for each event left to
        the one-at-a-time path (a failure, a gap, events of several sources)."""
        if (
            len(events) < 2
            or len({e.source for e in events}) > 1
            or None in {e.sequence for e in events}
        ):
            return [None] * len(events)
        self._check_stopping()
        try:
            outcomes = self.tracker.handle_batch(events, self._effect, together=self.many)
        except ContainerBeingKilled:
            raise
        except Exception as exc:
            log.info(
                "%s: a batch of %d failed (%s); applying them one at a time",
                self.name,
                len(events),
                type(exc).__name__,
            )
            return [None] * len(events)
        return [None if outcome == GAP else outcome for outcome in outcomes]

    def _effect(self, conn, event):
        """The effect of one event (a list of them with ``many``): the service method, or
        none for a type not followed."""
        if self.many:
            followed = [e for e in event if self._follows(e.type)]
            return self._run_worker(conn, followed) if followed else None
        return (self._run_worker if self._follows(event.type) else _skip)(conn, event)

    def _consume(self, body, message):
        try:
            event = Event.from_cloudevent(body)
        except (KeyError, TypeError, ValueError, AttributeError):
            self._reject(body, message)
            return
        outcome = self._apply(event)
        if outcome == GAP:
            log.info(
                "%s: %s#%s comes after a gap; catching up", self.name, event.type, event.sequence
            )
            self._behind = not self._catch_up()
            outcome = self._apply(event)
        if outcome == GAP:
            log.warning(
                "%s: gap before %s#%s not filled; requeued", self.name, event.type, event.sequence
            )
            eventlet.sleep(GAP_PAUSE)
            self.queue_consumer.requeue_message(message)
            return
        self.queue_consumer.ack_message(message)

    def _catch_up(self):
        """Page the source's replay RPC until it is empty; False if the source did not answer."""
        token = issue_token(self.config.auth_secret, SYSTEM)
        applied = 0
        try:
            with ClusterRpcProxy(
                self.container.config, context_data={CONTEXT_KEY: token}, timeout=RPC_TIMEOUT
            ) as proxy:
                source = proxy[self.source_service]
                after = self.tracker.position(self.source)
                while page := source.replay(after=after, limit=REPLAY_PAGE):
                    events = [Event.from_cloudevent(cloudevent) for cloudevent in page]
                    for first in range(0, len(events), self.batch_size):
                        chunk = events[first : first + self.batch_size]
                        outcomes = self._apply_batch(chunk)
                        for event, outcome in zip(chunk, outcomes, strict=True):
                            if outcome is None:
                                outcome = self._apply(event)
                            if outcome == GAP:
                                raise RuntimeError("replay returned events out of order")
                            applied += outcome in (APPLIED, PARKED)
                    after = page[-1]["sequence"]
        except (Stopping, ContainerBeingKilled):
            raise
        except Exception as exc:
            log.warning(
                "%s: catch-up from %s failed (%s); %d applied, will retry",
                self.name,
                self.source_service,
                type(exc).__name__,
                applied,
            )
            return False
        log.info(
            "%s: caught up with %s at %d (%d events through the tracker)",
            self.name,
            self.source,
            self.tracker.position(self.source),
            applied,
        )
        return True

    # one event: retries, then parking

    def _apply(self, event):
        """Apply ``event`` through the tracker; returns the tracker's outcome.

        An event of a type this subscription does not follow (replay brings
        them all) only moves the position.
        """
        effect = _skip
        if self._follows(event.type):
            effect = self._run_many if self.many else self._run_worker
        failures = 0
        transient = 0
        while True:
            self._check_stopping()
            try:
                return self.tracker.handle(event, effect)
            except ContainerBeingKilled:
                raise
            except TRANSIENT as exc:
                transient += 1
                self._pause_transient(event, exc, transient)
            except Exception as exc:
                failures += 1
                log.warning(
                    "%s: handler failed on %s#%s (%s), attempt %d of %d",
                    self.name,
                    event.type,
                    event.sequence,
                    type(exc).__name__,
                    failures,
                    self.max_attempts,
                )
                if failures >= self.max_attempts:
                    return self._park(event, exc, failures)
                eventlet.sleep(RETRY_DELAY * 2 ** (failures - 1))

    def _park(self, event, failure, attempts):
        reason = f"{type(failure).__name__}: {failure}"[:MAX_REASON]

        def dead_letter(conn):
            self._dead_letter(event.to_cloudevent(), reason)

        transient = 0
        while True:
            self._check_stopping()
            try:
                outcome = self.tracker.park(event, reason, attempts, before_commit=dead_letter)
            except TRANSIENT as exc:
                transient += 1
                self._pause_transient(event, exc, transient)
                continue
            if outcome == PARKED:
                log.error(
                    "%s: parked %s#%s after %d attempts (%s)",
                    self.name,
                    event.type,
                    event.sequence,
                    attempts,
                    type(failure).__name__,
                )
            return outcome

    def _run_many(self, conn, event):
        """The one-at-a-time path of a ``many`` handler: a list of one event."""
        self._run_worker(conn, [event])

    def _run_worker(self, conn, event):
        """Run the service method in a nameko worker, inside the tracking transaction."""
        done = eventlet.event.Event()
        first = event[0] if isinstance(event, list) else event

        def handle_result(worker_ctx, result, exc_info):
            done.send(exc_info)
            return result, exc_info

        self.container.spawn_worker(
            self,
            (event, conn),
            {},
            context_data={"call_id_stack": [first.correlation_id or first.id]},
            handle_result=handle_result,
        )
        exc_info = done.wait()
        if exc_info is not None:
            raise exc_info[1]

    def _dead_letter(self, body, reason):
        self.dead_letters.publish(body, routing_key=self.dlq.name, headers={REASON_HEADER: reason})

    def _reject(self, body, message):
        """A message that is no CloudEvent cannot be tracked: dead-letter it and ack."""
        try:
            self._dead_letter(body, "not a CloudEvent")
        except TRANSIENT as exc:
            log.warning(
                "%s: could not dead-letter a message (%s); requeued", self.name, type(exc).__name__
            )
            eventlet.sleep(GAP_PAUSE)
            self.queue_consumer.requeue_message(message)
            return
        log.error("%s: a message that is not a CloudEvent went to %s", self.name, self.dlq.name)
        self.queue_consumer.ack_message(message)

    def _follows(self, event_type):
        return any(topic_matches(pattern, event_type) for pattern in self.event_types)

    def _pause_transient(self, event, exc, count):
        log.warning(
            "%s: %s on %s#%s, retrying (%d)",
            self.name,
            type(exc).__name__,
            event.type,
            event.sequence,
            count,
        )
        eventlet.sleep(min(TRANSIENT_DELAY_MAX, RETRY_DELAY * 2**count))

    def _check_stopping(self):
        if self._stopping:
            raise Stopping()

    # helpers

    def _declare(self):
        with get_connection(self.container.config["AMQP_URI"]) as conn:
            channel = conn.channel()
            self.queue.declare(channel=channel)
            self.dlq.declare(channel=channel)

    def _store_provider(self):
        for provider in self.container.dependencies:
            if provider.attr_name == self.store_attr:
                return provider
        raise TypeError(
            f"@subscribe on {self.container.service_name}.{self.method_name} needs an "
            f"EventStoreProvider dependency named {self.store_attr!r}"
        )


subscribe = Subscription.decorator


def topic_matches(pattern, routing_key):
    """AMQP topic matching: ``*`` is exactly one word, ``#`` zero or more."""
    return _words_match(pattern.split("."), routing_key.split("."))


def _words_match(pattern, words):
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_words_match(rest, words[i:]) for i in range(len(words) + 1))
    return bool(words) and head in ("*", words[0]) and _words_match(rest, words[1:])


def _retry_after(failures):
    """Seconds before the next catch-up attempt after ``failures`` failed ones in a row."""
    return min(CATCH_UP_RETRY * 2 ** max(failures - 1, 0), CATCH_UP_RETRY_MAX)


def _skip(conn, event):
    """The effect of an event this subscription does not follow: none."""
