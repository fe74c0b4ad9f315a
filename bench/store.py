"""The event store against plain psycopg and against the ``eventsourcing`` library.

All three run on one PostgreSQL connection at a time (sequential), on a fresh
database each, with the same ~200-byte JSON payload per event.
"""

import itertools
import threading
import time
import uuid
from functools import partial

import psycopg
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import Jsonb

from bench import alternate, benchmark, compare, fresh_database, log, report
from shared.db import Database, migrate
from shared.envelope import Event
from shared.store import EventStore

SOURCE = "/kelurahan/32.75.05.1002/bench"
PAGE = 1000
THREADS = 10


def payload(i):
    """About 200 bytes of JSON, like a proposal's creation."""
    return {
        "title": f"Perbaikan jalan lingkungan RT {i % 20:02d} RW {i % 9:02d}",
        "description": "Pengaspalan ulang jalan sepanjang 150 m yang rusak dan berlubang",
        "kelurahan": "32.75.05.1002",
        "category": "infrastruktur",
        "estimate": 125_000_000 + i,
    }


def timed(fn, *args):
    """Seconds ``fn(*args)`` took (perf_counter)."""
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


# -- the eventsourcing library, configured for the same server --------------------------------


class Proposal(Aggregate):
    """A trivial aggregate: one ``Created`` event carrying the payload."""

    def __init__(self, data):
        self.data = data


class EsBench(Application):
    """Tables ``esbench_events`` (and friends) next to rembug's in the same database."""


def eventsourcing_app(url):
    parts = conninfo_to_dict(url)
    return EsBench(
        env={
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": parts["dbname"],
            "POSTGRES_HOST": parts.get("host", "127.0.0.1"),
            "POSTGRES_PORT": str(parts.get("port", 5432)),
            "POSTGRES_USER": parts.get("user", "postgres"),
            "POSTGRES_PASSWORD": parts.get("password", ""),
        }
    )


def rembug_store(url):
    db = Database(url)
    migrate(db)
    return db, EventStore(db, SOURCE)


# -- 1. plain psycopg ---------------------------------------------------------------------------


@benchmark("raw_psycopg_insert")
def raw_psycopg_insert(quick):
    """Baseline figure: one INSERT + COMMIT per event into a plain table, one connection."""
    count = 500 if quick else 12_000
    with fresh_database("raw_psycopg_insert") as url, psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE events (id uuid PRIMARY KEY, stream text, data jsonb)")
        conn.commit()

        def insert(n):
            for i in range(n):
                conn.execute(
                    "INSERT INTO events (id, stream, data) VALUES (%s, %s, %s)",
                    [uuid.uuid4(), f"proposal-{i}", Jsonb(payload(i))],
                )
                conn.commit()

        insert(200)  # warm-up
        seconds = timed(insert, count)
    log(f"raw_psycopg_insert: {count} single-event transactions in {seconds:.2f} s")
    report("raw_psycopg_insert", count / seconds, "tx/s")


# -- 2. appends ---------------------------------------------------------------------------------


@benchmark("store_append")
def store_append(quick):
    """EventStore.append, one event per command on a new stream (expected version 0),
    sequentially; against eventsourcing creating and saving one aggregate per command,
    and against the floor of any store that commits each event: one plain row inserted
    per autocommit statement. The three take turns (ABCCBA), 5 rounds each."""
    chunk, es_chunk = (100, 40) if quick else (2_000, 800)
    with fresh_database("store_append") as url:
        db, store = rembug_store(url)
        app = eventsourcing_app(url)
        ids = itertools.count()
        conn = psycopg.connect(url, autocommit=True)
        conn.execute("CREATE TABLE one_row (id uuid PRIMARY KEY, stream text, data jsonb)")

        def append(n=chunk):
            for i in itertools.islice(ids, n):
                stream = f"proposal-{i}"
                store.append(stream, 0, [Event("proposal.submitted", stream, payload(i))])
            return n

        def save(n=es_chunk):
            for i in range(n):
                app.save(Proposal(payload(i)))
            return n

        def insert(n=chunk):
            for i in range(n):
                conn.execute(
                    "INSERT INTO one_row (id, stream, data) VALUES (%s, %s, %s)",
                    [uuid.uuid4(), f"proposal-{i}", Jsonb(payload(i))],
                    prepare=True,
                )
            return n

        for warm_up in (append, save, insert):
            warm_up(200)
        rembug, baseline, floor = alternate(5, append, save, insert)
        conn.close()
        app.close()
        db.close()
    log(f"store_append: 5 x {chunk} appends, 5 x {es_chunk} saves, 5 x {chunk} inserts")
    compare("store_append", rembug, "events/s", baseline, "eventsourcing_append", target=3.0)
    compare("store_append_vs_one_insert", rembug, "events/s", floor, "psycopg_one_row_insert")
    compare("one_insert_vs_eventsourcing", floor, "rows/s", baseline, "eventsourcing_append")


@benchmark("store_append_concurrent")
def store_append_concurrent(quick):
    """EventStore.append, one event per command on a new stream, from 10 threads at once
    (a service's ten workers), each with its own connection from one pool; against
    eventsourcing saving one aggregate per command from 10 threads. The two take turns
    (ABBA), 4 rounds each. Appends commit one at a time in either (rembug: the log's advisory
    lock; eventsourcing: its table lock), so this shows what waiting costs each."""
    per_thread, rounds = (20, 2) if quick else (300, 4)
    with fresh_database("store_append_concurrent") as url:
        db, store = rembug_store(url)
        app = eventsourcing_app(url)
        ids = itertools.count()

        def append_one():
            stream = f"proposal-{next(ids)}"
            store.append(stream, 0, [Event("proposal.submitted", stream, payload(0))])

        def save_one():
            app.save(Proposal(payload(0)))

        def in_threads(command):
            """``command`` ``per_thread`` times in each of ``THREADS`` threads at once."""

            def worker():
                for _ in range(per_thread):
                    command()

            threads = [threading.Thread(target=worker) for _ in range(THREADS)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            return THREADS * per_thread

        appends, saves = partial(in_threads, append_one), partial(in_threads, save_one)
        appends()  # warm-up: every connection of both pools open
        saves()
        rembug, baseline = alternate(rounds, appends, saves)
        app.close()
        db.close()
    log(f"store_append_concurrent: {THREADS} threads, {rounds} x {THREADS * per_thread} each")
    compare("store_append_concurrent", rembug, "events/s", baseline, "eventsourcing_append_10")


# -- 3. catch-up reads --------------------------------------------------------------------------


@benchmark("catchup_read")
def catchup_read(quick):
    """Read the whole log in pages of 1000, decoded (rembug: Event objects from EventStore.read);
    against eventsourcing's notification log: recorder.select_notifications pages, each
    notification decoded into a domain event by application.mapper.to_domain_event.
    The two take turns reading the whole log, 4 times each."""
    count, passes = (5_000, 2) if quick else (50_000, 4)
    with fresh_database("catchup_read") as url:
        db, store = rembug_store(url)
        app = eventsourcing_app(url)
        log(f"catchup_read: writing {count} events to each log")
        for first in range(0, count, PAGE):
            batch = range(first, min(first + PAGE, count))
            stream = f"batch-{first}"
            store.append(
                stream, 0, [Event("proposal.submitted", stream, payload(i)) for i in batch]
            )
            app.save(*(Proposal(payload(i)) for i in batch))

        def read_rembug():
            after, seen = 0, 0
            while page := store.read(after, PAGE):
                after = page[-1].sequence
                seen += len(page)
            assert seen == count, seen
            return seen

        def read_eventsourcing():
            start, seen = 1, 0
            while page := app.recorder.select_notifications(start, PAGE):
                events = [app.mapper.to_domain_event(n) for n in page]
                start = page[-1].id + 1
                seen += len(events)
            assert seen == count, seen
            return seen

        read_rembug()  # warm-up: both logs in shared buffers, statements prepared
        read_eventsourcing()
        rembug, baseline = alternate(passes, read_rembug, read_eventsourcing)
        app.close()
        db.close()
    log(f"catchup_read: {passes} full reads of {count} events each")
    compare("catchup_read", rembug, "events/s", baseline, "eventsourcing_read", target=1.0)
