"""The dispatcher: sends due notifications through the providers, retries, purges.

A nameko dependency of the notify service that runs one managed thread per
process. Each round it claims due notifications (:func:`outbox.claim`: marked
``sending`` and committed first), sends them concurrently
(``NOTIFY_CONCURRENCY`` at once) through the :class:`~providers.Switchboard`
(priority, fallback, rate limits, cooldown) and records every outcome in one
transaction: ``sent``; ``temporary_failure`` with the next attempt after
:func:`~services.notify.domain.backoff`; ``permanent_failure`` when the
provider refuses the message or the attempts are used up. Every second it
also notices service requests past their target (on the city node: proposals
awaiting the kecamatan's or the city's decision, :mod:`services.notify.awaiting`)
and purges content and addresses older than the retention period.

The thread looks for work at once when a transaction that created
notifications commits: the outbox's trigger sends a PostgreSQL NOTIFY, which
a second managed thread listens for on a connection of its own. It reaches
every notify process on the database, and only after the commit, so the new
rows are there to claim. Without it (the listening connection lost, while it
reconnects) the thread still looks every ``NOTIFY_POLL_SECONDS``.

Workers (the service's event handlers) get a :class:`Dispatch` with the
settings and the clock.

Logs carry notification ids, channels, providers, states and counts, never an
address or a message.
"""

import contextlib
import hmac
import logging
import time
from datetime import timedelta

import eventlet
import eventlet.queue
import eventlet.semaphore
from nameko.extensions import DependencyProvider
from psycopg import sql

from services.notify import awaiting, notifier, outbox, providers
from services.notify import settings as settingsmod
from services.notify.domain import backoff, sms_allowed
from shared import config as configmod
from shared.db import connect
from shared.subscriber import TRANSIENT

log = logging.getLogger(__name__)

HOUSEKEEPING_SECONDS = 1.0
BATCHES_IN_FLIGHT = 4
ERROR_PAUSE = 1.0
STOP_GRACE = 10


class Dispatch:
    """What a worker sees of the dispatcher."""

    def __init__(self, provider):
        self.settings = provider.settings
        self.clock = provider.clock
        self.kelurahan = provider.kelurahan
        self.city = provider.city
        self.callback_allowed = provider.callback_allowed

    @property
    def channels(self):
        return self.settings.channels


class Dispatcher(DependencyProvider):
    """Sends what the outbox holds; ``store`` names the service's EventStoreProvider."""

    def __init__(self, store="repo"):
        self.store_attr = store

    def setup(self):
        self.settings = settingsmod.load()
        self.clock = settingsmod.Clock(self.settings.clock)
        node = configmod.load(self.container.service_name)
        self.kelurahan = node.kelurahan_code  # the node's area: 32.75 on the city node
        self.city = node.node_role == "city"
        self.switchboard = providers.Switchboard(
            providers.Route(
                providers.build(p, pool_size=self.settings.concurrency),
                p.priority,
                p.rate,
                self.settings.cooldown_seconds,
            )
            for p in self.settings.providers
        )
        self.claim_limit = self.settings.concurrency * 8  # notifications claimed at once
        self._wakeups = eventlet.queue.LightQueue()
        self._stopping = False
        self._thread = self._listener = None
        self._housekept = 0.0

    def start(self):
        self._store = next(d for d in self.container.dependencies if d.attr_name == self.store_attr)
        self._pool = eventlet.GreenPool(self.settings.concurrency)
        self._in_flight = eventlet.semaphore.Semaphore(BATCHES_IN_FLIGHT)
        self._thread = self.container.spawn_managed_thread(self._run, identifier="dispatcher")
        self._listener = self.container.spawn_managed_thread(
            self._listen, identifier="dispatcher.listen"
        )

    def stop(self):
        self._stopping = True
        self.wake()
        if self._listener is not None:
            self._listener.kill()
        if self._thread is not None:
            try:
                with eventlet.Timeout(STOP_GRACE):
                    self._thread.wait()
            except eventlet.Timeout:
                self._thread.kill()
        self.switchboard.close()

    def kill(self):
        self._stopping = True
        for thread in (self._listener, self._thread):
            if thread is not None:
                thread.kill()

    def get_dependency(self, worker_ctx):
        return Dispatch(self)

    def callback_allowed(self, provider, authorization):
        """Whether an HTTP call names a configured provider and carries its ``callback_token``."""
        expected = next(
            (
                p.options.get("callback_token")
                for p in self.settings.providers
                if p.name == provider
            ),
            None,
        )
        if not expected or not isinstance(authorization, str):
            return False
        return hmac.compare_digest(authorization.encode(), f"Bearer {expected}".encode())

    def wake(self):
        """Look for due notifications now."""
        if self._wakeups.qsize() == 0:
            self._wakeups.put(None)

    # the threads

    def _listen(self):
        """Wake the sending thread whenever notifications were created (the outbox
        trigger's NOTIFY, heard once their transaction committed); after a lost
        connection, listen again on a new one."""
        failing = False
        while not self._stopping:
            try:
                with connect(self._store.db.url, autocommit=True) as conn:
                    schema = conn.execute("SELECT current_schema() AS s").fetchone()["s"]
                    channel = sql.Identifier(f"rembug_outbox:{schema}")
                    conn.execute(sql.SQL("LISTEN {}").format(channel))
                    if failing:
                        log.info("dispatcher: hearing of new notifications again")
                        failing = False
                    self.wake()  # what was created while no one listened
                    for _ in conn.notifies():
                        self.wake()
            except Exception as exc:
                if not failing:
                    log.warning(
                        "dispatcher: not hearing of new notifications (%s); polling until it does",
                        type(exc).__name__,
                    )
                    failing = True
                eventlet.sleep(ERROR_PAUSE)

    def _run(self):
        while not self._stopping:
            try:
                done = self.run_once()
            except TRANSIENT as exc:
                log.warning("dispatcher: %s; retrying", type(exc).__name__)
                eventlet.sleep(ERROR_PAUSE)
                continue
            except Exception as exc:
                log.error("dispatcher: unexpected %s; retrying", type(exc).__name__)
                eventlet.sleep(ERROR_PAUSE)
                continue
            if done < self.claim_limit:  # nothing more is due yet: wait to be woken
                with contextlib.suppress(eventlet.queue.Empty):
                    self._wakeups.get(timeout=self.settings.poll_seconds)

    def run_once(self):
        """One round: housekeeping when due, then claim one batch and hand it to a sender.

        Up to ``BATCHES_IN_FLIGHT`` batches are sent at once (sharing the pool of
        ``NOTIFY_CONCURRENCY`` sends), so the next batch is claimed while the
        last messages of the previous one are still on the wire. Returns how
        many were claimed: fewer than ``claim_limit`` means nothing more was due,
        and the thread waits for a wake-up or the poll interval before claiming
        again (an empty claim is a statement for nothing).
        """
        db = self._store.db
        now = self.clock.now()
        if time.monotonic() - self._housekept >= HOUSEKEEPING_SECONDS:
            self.housekeeping(now)
        self._in_flight.acquire()
        try:
            batch = outbox.claim(
                db,
                now,
                now + timedelta(seconds=self.settings.lease_seconds),
                sms_allowed(now),
                self.settings.channels - {"in_app"},
                self.claim_limit,
            )
        except BaseException:
            self._in_flight.release()
            raise
        if not batch:
            self._in_flight.release()
            return 0
        self.container.spawn_managed_thread(lambda: self._send_batch(batch, now))
        return len(batch)

    def _send_batch(self, batch, now):
        """Send a claimed batch and record every outcome in one transaction."""
        try:
            outcomes = self._send_all(batch, now)
            outbox.record(self._store.db, outcomes, self.clock.now())
        except Exception as exc:  # the lease brings them back
            log.error("dispatcher: recording a batch failed (%s)", type(exc).__name__)
            return
        finally:
            self._in_flight.release()
        counts = {}
        for outcome in outcomes:
            counts[outcome[1]] = counts.get(outcome[1], 0) + 1
        log.info("dispatcher: %d sent or tried: %s", len(batch), counts)

    def _send_all(self, batch, now):
        """Each claimed row's outcome, in order. Up to ``NOTIFY_CONCURRENCY`` senders from the
        pool the batches in flight share each take the next row not yet taken, until none
        is left: a green thread per sender, not one per message."""
        outcomes = [None] * len(batch)
        rows = iter(enumerate(batch))

        def sender():
            for index, row in rows:
                outcomes[index] = self._send(row, now)

        senders = [self._pool.spawn(sender) for _ in range(min(len(batch), self._pool.size))]
        for thread in senders:
            thread.wait()
        return outcomes

    def housekeeping(self, now):
        self._housekept = time.monotonic()
        db = self._store.db
        rerouted = outbox.reroute_opted_out(db, now)
        if rerouted:
            log.info("dispatcher: %d notifications moved to in-app after an opt-out", rerouted)
        breaches = notifier.notice_breaches(db, self.kelurahan, self.settings.channels, now)
        if breaches:
            log.info("dispatcher: %d notifications of requests past their target", breaches)
        if self.city:
            digests = awaiting.notice_awaiting(
                db, self.kelurahan, self.settings.channels, now, self.settings.digest_seconds
            )
            if digests:
                log.info("dispatcher: %d notifications of proposals awaiting a decision", digests)
        purged = outbox.purge(db, now - timedelta(days=self.settings.retention_days), now)
        if purged:
            log.info("dispatcher: purged content and address of %d notifications", purged)

    def _send(self, row, now):
        """``(id, state, provider, provider message id, error, retry at)`` for one claimed row."""
        id_ = row["id"]
        if row["address"] is None or row["message"] is None:
            return id_, "permanent_failure", None, None, "no address", None
        outgoing = providers.Outgoing(id_, row["channel"], row["address"], row["message"])
        try:
            name, message_id = self.switchboard.send(outgoing)
        except providers.PermanentFailure as exc:
            return id_, "permanent_failure", None, None, str(exc)[:300], None
        except providers.TemporaryFailure as exc:
            if row["attempts"] >= self.settings.max_attempts:
                return id_, "permanent_failure", None, None, str(exc)[:300], None
            first = timedelta(seconds=self.settings.backoff_seconds)
            retry_at = now + backoff(row["attempts"], first)
            return id_, "temporary_failure", None, None, str(exc)[:300], retry_at
        except Exception as exc:  # a bug in an adapter must not stop the others
            log.error("dispatcher: %s sending notification %s", type(exc).__name__, id_)
            retry_at = now + backoff(
                row["attempts"], timedelta(seconds=self.settings.backoff_seconds)
            )
            return id_, "temporary_failure", None, None, type(exc).__name__, retry_at
        return id_, "sent", name, message_id, None, None
