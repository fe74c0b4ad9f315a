"""Replication to the city: the city's ingest, the lag from a kelurahan's append to the
city's row, and the whole city's pseudonymous residents replicated.

Every benchmark runs a city broker in its own vhost (the topology of
``shared.replication.declare_topology``) with a real broker user per simulated
kelurahan (``kelurahan-<code>`` with the permissions of deploy/rabbitmq's
definitions: write only to ``replication.up`` under its own code), created for
the run and deleted after it, and the city's store in its own database. The
codes are shaped like Kota Bekasi's but in kecamatan 90 and up, which do not
exist: a benchmark never replaces or deletes the broker user of a real
kelurahan (a node started with ``make run``, the replication tests). Messages
reach the city as the uplink sends them: :func:`shared.relay.to_message` of the
stored event (its CloudEvents JSON, persistent, ``user_id`` = the kelurahan's
user, validated by RabbitMQ), routing key ``<code>.<service>.<type>``, on a
confirm-mode channel of a connection opened as that kelurahan's user. The ingest
runs with the service's city projection (``services/<service>/city.py``) when
there is one, as on the city node.

- ``city_ingest``: events/s stored by :class:`shared.replication.Ingest` from 10
  kelurahan (``proposal.submitted``, about 600 bytes), each round's 20,000
  messages published beforehand (not timed), against raw kombu consume-and-ack
  (``on_message``, one ack each, the ingest's prefetch) of the same messages
  from another quorum queue, taking turns (ABBA).
- ``replication_lag_p99``: 10 kelurahan, each a process with its own store
  (a schema) appending 50 events/s (one event per append) and its real uplink
  relay and downlink in threads; the city's ``Ingest.run_forever`` in a thread
  here. Each log starts with 2,000 events the city catches up with first (then
  ``ANALYZE``, as autovacuum would: a city that has run a while). The lag of an
  event is the time from its ``time`` (set just before its append) to the
  moment an observer, looking at ``replica_events`` every 10 ms, sees its row;
  p99 in ms over 40 s, the first 5 s not counted (with p50, p90, the maximum,
  and the machine's load average over the last minute: the lag depends on
  the CPU the kelurahan processes, the broker and PostgreSQL get).
- ``city_resident_events``: pseudonymous ``resident.registered`` events as they
  leave a kelurahan (no ``personal`` part; ``public`` = RW, sex, age band,
  categories; a random resident id) of 56 kelurahan, published by their 56
  users from two processes (messages built beforehand, as on the kelurahan's own
  machines) while the ingest (this process) stores them: events/s from the first
  publish to the last row stored, and the minutes 2.6 million would take at that
  rate. ``make bench`` replicates a sample of 300,000 and reports the projection
  (``"minutes_measured": false``); ``FULL=1`` in the environment replicates all
  2.6 million (about 10 minutes, beyond ``make bench``'s limit per benchmark).
"""

import contextlib
import json
import multiprocessing
import os
import random
import secrets
import threading
import time
import urllib.error
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, urlsplit

import amqp
import psycopg
from kombu import Connection, Queue
from psycopg.conninfo import make_conninfo

from bench import alternate, benchmark, compare, fresh_database, log, report
from bench.nameko_rpc import _rabbit_api, rabbit_vhost
from shared import replication
from shared.config import Config
from shared.db import MIGRATIONS, Database, migrate
from shared.envelope import Event
from shared.relay import to_message
from shared.store import EventStore

PROPOSALS, CITIZENS = "proposals", "citizens"
RAW = "benchraw"  # the baseline's messages: same bodies, routed to their own quorum queue
RAW_QUEUE = "bench.raw"
CONFIRM_BATCH = 500
CONFIRM_TIMEOUT = 60
CITY_RESIDENTS = 2_600_000
SAMPLE = 300_000
ROOT = Path(__file__).resolve().parents[1]


# -- the city broker and its kelurahan users ----------------------------------------------


def _codes(count):
    """Kelurahan codes for the benchmark's own broker users: shaped like Kota Bekasi's
    (four words, ``32.75.<kecamatan>.<kelurahan>``) in kecamatan 90 and up, which do not
    exist, so that no user of a real kelurahan (a node started with ``make run``, the
    replication tests) is ever replaced or deleted by a benchmark."""
    return [f"32.75.{90 + i // 10}.{1001 + i % 10}" for i in range(count)]


@contextmanager
def city_broker(name, codes, services):
    """``(amqp_uri of the city vhost as guest, {code: amqp_uri as kelurahan-<code>})``."""
    with rabbit_vhost(name) as city_uri:
        replication.declare_topology(city_uri, codes, services)
        vhost = quote(urlsplit(city_uri).path[1:], safe="")
        made = []
        try:
            uris = {}
            for code in codes:
                user, password = replication.kelurahan_user(code), secrets.token_urlsafe(16)
                _wait_unused(user)
                _api("PUT", f"users/{user}", {"password": password, "tags": ""})
                made.append(user)
                permissions, topic_permissions = replication.kelurahan_permissions(code)
                _api("PUT", f"permissions/{vhost}/{user}", permissions)
                _api("PUT", f"topic-permissions/{vhost}/{user}", topic_permissions)
                parts = urlsplit(city_uri)
                netloc = f"{quote(user, safe='')}:{password}@{parts.hostname}:{parts.port or 5672}"
                uris[code] = parts._replace(netloc=netloc).geturl()
            yield city_uri, uris
        finally:
            for user in made:
                _api("DELETE", f"users/{user}")


def _api(method, path, body=None):
    _rabbit_api(method, path, None if body is None else json.dumps(body).encode())


def _wait_unused(user, timeout=120):
    """Wait until no one else (a replication test running now) has the broker user
    ``user``: its owner would delete it, and its connections, under this benchmark."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            _rabbit_api("GET", f"users/{quote(user, safe='')}")
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return
            raise
        if time.monotonic() > deadline:
            raise RuntimeError(f"the broker user {user} belongs to someone else; try later")
        log(f"waiting for the broker user {user} (in use) to be deleted")
        time.sleep(2)


class Uplink:
    """Publishes stored events as a kelurahan's uplink does, on a confirm-mode channel
    of a connection opened as the kelurahan's broker user."""

    def __init__(self, uri, code):
        self.code, self.user = code, replication.kelurahan_user(code)
        self.conn = Connection(uri)
        self.conn.connect()
        self.channel = self.conn.channel()
        self.channel.confirm_select()
        self.acked, self.sent = 0, 0
        self.channel.events["basic_ack"].add(self._on_ack)
        self.channel.events["basic_nack"].add(self._on_nack)

    def _on_ack(self, tag, multiple):
        self.acked = max(self.acked, tag)

    def _on_nack(self, tag, multiple):
        raise RuntimeError(f"the city broker nacked a message of {self.code}")

    def publish(self, events, service, wait=True):
        publish = self.channel.basic_publish
        for event in events:
            publish(
                to_message(event, self.user),
                exchange=replication.UP_EXCHANGE.name,
                routing_key=f"{self.code}.{service}.{event.type}",
            )
        self.sent += len(events)
        if wait:
            self.await_confirms()

    def publish_built(self, messages):
        """Publish ``(routing key, body, properties)`` of :func:`to_message` built beforehand."""
        publish, exchange = self.channel.basic_publish, replication.UP_EXCHANGE.name
        for routing_key, body, properties in messages:
            publish(amqp.Message(body, **properties), exchange=exchange, routing_key=routing_key)
        self.sent += len(messages)

    def await_confirms(self):
        deadline = time.monotonic() + CONFIRM_TIMEOUT
        while self.acked < self.sent:
            assert time.monotonic() < deadline, (
                f"{self.code}: unconfirmed after {CONFIRM_TIMEOUT} s"
            )
            self.conn.drain_events(timeout=CONFIRM_TIMEOUT)

    def close(self):
        self.conn.release()


def _migrated(url, service):
    """The city's database: the platform's tables, and the service's read models when it
    has a city projection (which writes them)."""
    db = Database(url)
    folders = [MIGRATIONS]
    if replication.city_projection(service) is not None:
        folders.append(ROOT / "services" / service / "migrations")
    migrate(db, *folders)
    return db


def _projection(service):
    project = replication.city_projection(service)
    log(f"{service}: {'with' if project else 'no'} city projection")
    return project


# -- events ---------------------------------------------------------------------------------


def proposal_submitted(code, i):
    """A ``proposal.submitted`` as a kelurahan records it (about 600 bytes published)."""
    rw, rt = i % 18 + 1, i % 10 + 1
    return Event(
        "proposal.submitted",
        f"proposal-{uuid.uuid4()}",
        {
            "kelurahan": code,
            "year": 2027,
            "title": f"Perbaikan saluran air RT {rt:02d} RW {rw:02d}",
            "problem": "Saluran tersumbat, banjir saat hujan",
            "idea": "Normalisasi saluran 150 m",
            "sector": "pekerjaan_umum",
            "target_agency": "Dinas Bina Marga dan Sumber Daya Air",
            "proposer": {"level": "rt", "rw": rw, "rt": rt},
            "location": {"rw": rw, "rt": rt},
            "volume": 150,
            "unit": "m",
            "estimated_cost": 120_000_000 + i,
        },
        actor={"id": f"u-rt-{rw}-{rt}", "role": "ketua_rt"},
    )


def stored(event, code, service, sequence):
    return event.stored(replication.source_of(code, service), 1, sequence)


AGE_BANDS = [f"{lo}-{lo + 4}" for lo in range(0, 75, 5)] + ["75+"]
CATEGORIES = ("child", "elderly", "welfare.decile_1_4", "disability.physical", "chronic_illness")


def resident_registered(code, rng):
    """The CloudEvents form of a ``resident.registered``: no personal part, only the
    public one (RW, sex, age band, categories) under a random resident id."""
    categories = sorted({c for c in CATEGORIES if rng.random() < 0.12})
    return Event(
        "resident.registered",
        f"resident-{uuid.uuid4()}",
        {
            "kelurahan": code,
            "entry": "existing",
            "public": {
                "rw": rng.randrange(1, 19),
                "sex": rng.choice("LP"),
                "age_band": rng.choice(AGE_BANDS),
                "categories": categories,
            },
        },
        actor={"id": "u-op-1", "role": "operator"},
    )


# -- city_ingest ----------------------------------------------------------------------------


@benchmark("city_ingest")
def city_ingest(quick):
    """Ingest from 10 kelurahan vs raw kombu consume-and-ack of the same messages."""
    kelurahan, per_round, rounds = 10, (500 if quick else 2_000), (2 if quick else 6)
    codes = _codes(kelurahan)
    with (
        fresh_database("city_ingest") as url,
        city_broker("city_ingest", codes, [PROPOSALS]) as (city_uri, uris),
    ):
        db = _migrated(url, PROPOSALS)
        ingest = replication.Ingest(url, city_uri, PROPOSALS, _projection(PROPOSALS))
        ingest.run_once(wait=0)  # connected and consuming
        uplinks = {code: Uplink(uris[code], code) for code in codes}
        raw = Connection(city_uri)
        raw.connect()
        raw_channel = raw.channel()
        raw_queue = Queue(
            RAW_QUEUE,
            replication.UP_EXCHANGE,
            routing_key=f"*.*.*.*.{RAW}.#",
            durable=True,
            queue_arguments=replication.QUORUM,
        )(raw_channel)
        raw_queue.declare()
        raw_channel.basic_qos(0, ingest.batch_size * 2, False)  # the ingest's prefetch
        received = [0]

        def on_message(message):
            message.ack()
            received[0] += 1

        raw_consumer = raw.Consumer(raw_queue, on_message=on_message, auto_declare=False)
        raw_consumer.consume()
        next_sequence = dict.fromkeys(codes, 1)

        def publish(service):
            """One round's messages, 500 per kelurahan at a time, kelurahan interleaved."""
            for first in range(0, per_round, CONFIRM_BATCH):
                for code in codes:
                    size = min(CONFIRM_BATCH, per_round - first)
                    base = next_sequence[code] if service == PROPOSALS else first + 1
                    events = [
                        stored(proposal_submitted(code, base + i), code, PROPOSALS, base + i)
                        for i in range(size)
                    ]
                    uplinks[code].publish(events, service, wait=False)
                    if service == PROPOSALS:
                        next_sequence[code] += size
                for uplink in uplinks.values():
                    uplink.await_confirms()

        count = kelurahan * per_round
        timed = {}

        def run_ingest():
            publish(PROPOSALS)
            start, done = time.perf_counter(), 0
            deadline = time.monotonic() + 120
            while done < count:
                assert time.monotonic() < deadline, f"ingest: {done} of {count} stored"
                done += ingest.run_once(wait=1.0)
            timed["ingest"] = timed.get("ingest", 0.0) + time.perf_counter() - start
            return count

        def run_raw():
            publish(RAW)
            start, received[0] = time.perf_counter(), 0
            deadline = time.monotonic() + 120
            while received[0] < count:
                assert time.monotonic() < deadline, f"raw: {received[0]} of {count} received"
                with contextlib.suppress(TimeoutError):
                    raw.drain_events(timeout=1.0)
            timed["raw"] = timed.get("raw", 0.0) + time.perf_counter() - start
            return count

        alternate(rounds, run_ingest, run_raw)
        positions = ingest.positions()
        assert all(
            positions[replication.source_of(c, PROPOSALS)] == next_sequence[c] - 1 for c in codes
        )
        with db.read() as conn:
            stored_rows = conn.execute("SELECT count(*) AS n FROM replica_events").fetchone()["n"]
        assert stored_rows == count * rounds, stored_rows
        raw_consumer.cancel()
        raw_queue.delete()
        raw.release()
        for uplink in uplinks.values():
            uplink.close()
        ingest.close()
        db.close()
    ingest_rate = count * rounds / timed["ingest"]
    raw_rate = count * rounds / timed["raw"]
    log(f"city_ingest: {rounds} x {count} events from {kelurahan} kelurahan, publishing not timed")
    compare("city_ingest", ingest_rate, "events/s", raw_rate, "raw_kombu_consume_ack", target=0.4)


# -- replication_lag_p99 --------------------------------------------------------------------

LAG_KELURAHAN = 10
LAG_RATE = 50  # events/s appended per kelurahan
LAG_POLL = 0.01  # s between two looks of the observer at replica_events
LAG_HISTORY = 2_000  # events in each kelurahan's log before the measurement


def _schema_url(url, schema):
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return make_conninfo(url, options=f"-csearch_path={schema}")


def _no_delivery(cloudevent):
    raise replication.Undeliverable("the benchmark's kelurahan take no event from the city")


def kelurahan_node(code, url, city_uri, rate, seconds, ready, start_at, results):
    """A kelurahan (its own process): the real uplink relay and downlink in threads, and,
    once every process is ready (``start_at``, wall clock, is set), ``rate`` appends/s
    of one ``proposal.submitted`` each for ``seconds``; puts ``(code, events appended)``
    on ``results`` and keeps the link up until the parent ends the process."""
    db = Database(url, size=1)
    store = EventStore(db, replication.source_of(code, PROPOSALS))
    config = Config(PROPOSALS, "kelurahan", code, city_uri, url, "x" * 32)
    stop = threading.Event()
    link = threading.Thread(
        target=replication.run_kelurahan_link,
        args=(config, city_uri, stop, _no_delivery),
        daemon=True,
    )
    link.start()
    ready.put(code)
    while not start_at.value:
        time.sleep(0.05)
    start_at = start_at.value
    time.sleep(max(0.0, start_at - time.time()))
    appended = 0
    while (due := start_at + appended / rate) < start_at + seconds:
        time.sleep(max(0.0, due - time.time()))
        event = proposal_submitted(code, appended)  # its time: now, just before the append
        store.append(event.stream, 0, [event])
        appended += 1
    results.put((code, appended))
    link.join()


class Observer:
    """Looks at the city's ``replica_events`` every ``LAG_POLL`` s and records, for each
    new row, the time from its event's ``time`` to the look that found it."""

    def __init__(self, url, sources):
        self.conn = psycopg.connect(url, autocommit=True)
        self.after = dict.fromkeys(sources, 0)
        self.lags = []  # (event time, lag in s)

    def look(self):
        rows = self.conn.execute(
            "SELECT e.source, e.sequence, e.time FROM replica_events e"
            " JOIN unnest(%s::text[], %s::bigint[]) AS p (source, after)"
            " ON e.source = p.source AND e.sequence > p.after",
            [list(self.after), list(self.after.values())],
        ).fetchall()
        now = datetime.now(UTC)
        for source, sequence, time_ in rows:
            self.lags.append((time_, (now - time_).total_seconds()))
            self.after[source] = max(self.after[source], sequence)
        return len(rows)


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@benchmark("replication_lag_p99")
def replication_lag_p99(quick):
    """From a kelurahan's append to the city's row, 10 kelurahan at 50 events/s each."""
    seconds, warm_up = (6, 2) if quick else (40, 5)
    history = 200 if quick else LAG_HISTORY
    codes = _codes(LAG_KELURAHAN)
    context = multiprocessing.get_context("spawn")
    with (
        fresh_database("replication_lag") as url,
        city_broker("replication_lag", codes, [PROPOSALS]) as (city_uri, uris),
    ):
        db = _migrated(url, PROPOSALS)
        urls = {}
        for code in codes:
            urls[code] = _schema_url(url, "k_" + code.replace(".", "_"))
            kelurahan_db = Database(urls[code], size=1)
            migrate(kelurahan_db)
            store = EventStore(kelurahan_db, replication.source_of(code, PROPOSALS))
            for first in range(0, history, 100):
                events = [proposal_submitted(code, i) for i in range(first, first + 100)]
                store.append_many([(e.stream, 0, [e]) for e in events])
            kelurahan_db.close()
        project = _projection(PROPOSALS)
        ingest = replication.Ingest(url, city_uri, PROPOSALS, project)
        stop = threading.Event()
        city = threading.Thread(target=ingest.run_forever, args=(stop,))
        city.start()
        ready, results, start_at = context.Queue(), context.Queue(), context.Value("d", 0.0)
        nodes = [
            context.Process(
                target=kelurahan_node,
                args=(code, urls[code], uris[code], LAG_RATE, seconds, ready, start_at, results),
                daemon=True,
            )
            for code in codes
        ]
        for node in nodes:
            node.start()
        observer = Observer(url, [replication.source_of(c, PROPOSALS) for c in codes])
        for _ in nodes:
            ready.get(timeout=120)
        while any(position < history for position in observer.after.values()):
            observer.look()  # the city catches up with the history
            time.sleep(0.1)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ANALYZE")  # what autovacuum does within a minute
        start_at.value = time.time() + 1
        start_at = start_at.value
        appended, deadline = {}, start_at + seconds + 60
        try:
            while time.time() < deadline:
                observer.look()
                while not results.empty():
                    code, count = results.get()
                    appended[code] = count
                if len(appended) == len(codes) and all(
                    observer.after[replication.source_of(c, PROPOSALS)] == history + n
                    for c, n in appended.items()
                ):
                    break
                time.sleep(LAG_POLL)
            else:
                raise AssertionError(f"the city did not catch up: {observer.after}")
        finally:
            for node in nodes:
                node.terminate()
                node.join(10)
            stop.set()
            city.join(30)
            observer.conn.close()
            db.close()
    measured = [lag for time_, lag in observer.lags if time_.timestamp() >= start_at + warm_up]
    total = sum(appended.values())
    p50, p90, p99 = (percentile(measured, f) * 1000 for f in (0.5, 0.9, 0.99))
    load = os.getloadavg()[0]
    log(
        f"replication_lag_p99: {len(codes)} kelurahan x {LAG_RATE} events/s for {seconds} s"
        f" ({total} events, the first {warm_up} s not counted: {len(measured)} measured);"
        f" p50 {p50:.0f} ms, p90 {p90:.0f} ms, max {max(measured) * 1000:.0f} ms;"
        f" load average (1 min) {load:.1f} on {os.cpu_count()} CPUs"
    )
    report(
        "replication_lag_p99",
        p99,
        "ms",
        p50=round(p50, 1),
        p90=round(p90, 1),
        max=round(max(measured) * 1000, 1),
        events=len(measured),
        load_1min=round(load, 1),
        target=1000,
    )


# -- city_resident_events -------------------------------------------------------------------

PUBLISHERS = 2  # processes, each publishing as half of the kelurahan


def resident_publisher(uris, per_kelurahan, seed, ready, go, results):
    """Publishes ``per_kelurahan`` resident events as each kelurahan of ``uris`` (its own
    process): 500 per kelurahan at a time, kelurahan interleaved, every connection's
    batch confirmed before the next; puts the time it finished on ``results``.

    The messages are built (:func:`to_message`) before ``go``: on the kelurahan's own
    machines, not the city's, in production."""
    rng = random.Random(seed)
    uplinks = {code: Uplink(uri, code) for code, uri in uris.items()}
    built = {}
    for code, uplink in uplinks.items():
        events = (resident_registered(code, rng) for _ in range(per_kelurahan))
        built[code] = [
            (f"{code}.{CITIZENS}.{e.type}", m.body, m.properties)
            for e in (stored(e, code, CITIZENS, n) for n, e in enumerate(events, 1))
            for m in [to_message(e, uplink.user)]
        ]
    ready.put(len(uplinks))
    go.wait()
    for first in range(0, per_kelurahan, CONFIRM_BATCH):
        for code, uplink in uplinks.items():
            uplink.publish_built(built[code][first : first + CONFIRM_BATCH])
        for uplink in uplinks.values():
            uplink.await_confirms()
    results.put(time.perf_counter())
    for uplink in uplinks.values():
        uplink.close()


@benchmark("city_resident_events")
def city_resident_events(quick):
    """The whole city's pseudonymous residents replicated: a sample, projected to 2.6 M."""
    full = os.environ.get("FULL") == "1"
    total = 20_000 if quick else CITY_RESIDENTS if full else SAMPLE
    codes = _codes(56)
    per_kelurahan = -(-total // len(codes))
    total = per_kelurahan * len(codes)
    context = multiprocessing.get_context("spawn")
    with (
        fresh_database("city_residents") as url,
        city_broker("city_residents", codes, [CITIZENS]) as (city_uri, uris),
    ):
        db = _migrated(url, CITIZENS)
        ingest = replication.Ingest(url, city_uri, CITIZENS, _projection(CITIZENS))
        ingest.run_once(wait=0)  # connected and consuming
        ready, results, go = context.Queue(), context.Queue(), context.Event()
        shares = [codes[i::PUBLISHERS] for i in range(PUBLISHERS)]
        publishers = [
            context.Process(
                target=resident_publisher,
                args=({c: uris[c] for c in share}, per_kelurahan, i, ready, go, results),
                daemon=True,
            )
            for i, share in enumerate(shares)
        ]
        for publisher in publishers:
            publisher.start()
        for _ in publishers:
            ready.get(timeout=600)  # building 1.3 M messages takes a minute
        log(f"city_resident_events: replicating {total} events from {len(codes)} kelurahan")
        start = time.perf_counter()
        go.set()
        done, reported = 0, start
        while done < total:
            done += ingest.run_once(wait=5.0)
            if time.perf_counter() - reported > 30:
                reported = time.perf_counter()
                log(f"city_resident_events: {done} stored, {done / (reported - start):.0f}/s")
        elapsed = time.perf_counter() - start
        published = max(results.get(timeout=60) for _ in publishers) - start
        for publisher in publishers:
            publisher.join(30)
        positions = ingest.positions()
        assert all(positions[replication.source_of(c, CITIZENS)] == per_kelurahan for c in codes)
        with db.read() as conn:
            rows = conn.execute("SELECT count(*) AS n FROM replica_events").fetchone()["n"]
        assert rows == total, rows
        ingest.close()
        db.close()
    rate = total / elapsed
    minutes = CITY_RESIDENTS / rate / 60
    log(
        f"city_resident_events: {total} events in {elapsed:.1f} s (published in {published:.1f} s,"
        f" {PUBLISHERS} publisher processes), {rate:.0f} events/s:"
        f" 2.6 M {'took' if full else 'would take'} {minutes:.1f} min"
    )
    report(
        "city_resident_events",
        rate,
        "events/s",
        events=total,
        minutes_for_2_6m=round(minutes, 1),
        minutes_measured=full,
        target_minutes=10,
    )
