"""PostgreSQL connections that cooperate with eventlet, and migrations under a lock.

psycopg's C wait function blocks eventlet's hub, so ten concurrent queries in
one service would run one after another. :func:`connect` gives psycopg a wait
function that parks the green thread on eventlet's hub whenever eventlet has
patched ``select``: queries then yield to other green threads while they wait
on the server. (psycopg's own ``wait_selector`` cooperates too, but builds a
selector for every wait.)
"""

import hashlib
import logging
import queue
import sys
from contextlib import contextmanager
from pathlib import Path

import orjson
import psycopg
import psycopg.waiting
from psycopg.rows import dict_row
from psycopg.types.json import set_json_dumps, set_json_loads
from psycopg.waiting import Ready, Wait

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")


def _eventlet_patched():
    patcher = sys.modules.get("eventlet.patcher")  # not imported: not patched
    return patcher is not None and patcher.is_monkey_patched("select")


def cooperate_with_eventlet():
    """Make psycopg yield to eventlet's hub if, and only if, eventlet is monkey patched."""
    if _eventlet_patched():
        psycopg.waiting.wait = wait_on_hub


def wait_on_hub(gen, fileno, interval=None, timeout=None):
    """A psycopg wait function: run ``gen``, parking on eventlet's hub whenever it would block.

    ``timeout`` (seconds, None for none) raises psycopg's ``_WaitTimeout`` when
    it expires first, as psycopg's own wait functions do (``notifies(timeout=)``
    relies on it). ``interval`` (psycopg's Ctrl-C polling) is not needed under
    eventlet, where a green thread can be killed while parked.
    """
    import greenlet
    from eventlet.hubs import get_hub

    hub, current = get_hub(), greenlet.getcurrent()
    timer = None
    if timeout is not None:
        timer = hub.schedule_call_global(timeout, current.throw, psycopg.errors._WaitTimeout)
    try:
        state = next(gen)
        while True:
            listeners = []
            if state & Wait.R:
                listeners.append(
                    hub.add(
                        hub.READ, fileno, lambda _: current.switch(Ready.R), current.throw, None
                    )
                )
            if state & Wait.W:
                listeners.append(
                    hub.add(
                        hub.WRITE, fileno, lambda _: current.switch(Ready.W), current.throw, None
                    )
                )
            try:
                ready = hub.switch()
            finally:
                for listener in listeners:
                    hub.remove(listener)
            state = gen.send(ready)
    except StopIteration as done:
        return done.value
    finally:
        if timer is not None:
            timer.cancel()


def connect(url, **kwargs):
    """Open one connection (autocommit off, rows as dicts unless told otherwise).

    jsonb goes through orjson: decoding event data is most of the cost of
    reading a log.
    """
    cooperate_with_eventlet()
    kwargs.setdefault("row_factory", dict_row)
    conn = psycopg.connect(url, **kwargs)
    set_json_loads(orjson.loads, conn)
    set_json_dumps(orjson.dumps, conn)
    return conn


class Database:
    """A small pool of connections to one database.

    ``connection()`` lends a connection for a block; a connection that broke
    (server restarted, connection terminated) is dropped instead of returned,
    so the next borrower gets a fresh one. Connections open lazily, up to
    ``size`` at once; a borrower beyond that waits.
    """

    def __init__(self, url, size=10):
        self.url = url
        self.size = size
        self._idle = queue.LifoQueue()
        self._slots = queue.Queue()
        for _ in range(size):
            self._slots.put(None)

    @contextmanager
    def connection(self):
        self._slots.get()
        conn = None
        try:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                conn = connect(self.url)
            yield conn
        finally:
            if conn is not None:
                self._give_back(conn)
            self._slots.put(None)

    @contextmanager
    def read(self):
        """A connection for reading: each statement runs on its own (autocommit), so a
        query costs one round trip, with no BEGIN before it and no ROLLBACK after."""
        with self.connection() as conn:
            conn.autocommit = True
            try:
                yield conn
            finally:
                if not conn.closed:
                    conn.autocommit = False

    @contextmanager
    def transaction(self):
        """A connection inside one transaction: committed on success, rolled back on error."""
        with self.connection() as conn, conn.transaction():
            yield conn

    def _give_back(self, conn):
        if conn.closed or conn.broken:
            return
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            try:
                conn.rollback()
            except psycopg.Error:
                conn.close()
                return
        self._idle.put(conn)

    def close(self):
        """Close every idle connection."""
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


def _lock_key(name):
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def migrate(db, *folders):
    """Apply the ``*.sql`` files of each folder once, in name order, under an advisory lock.

    Each file is applied in its own transaction together with its row in
    ``schema_migrations`` (name and SHA-256); the lock makes concurrent starters
    wait instead of racing on ``CREATE TABLE``. A file changed after it was
    applied stops the start with :class:`MigrationChanged`: a database must
    never silently differ from its migrations. ``folders`` default to the
    platform's own. Returns the names applied now.
    """
    folders = folders or (MIGRATIONS,)
    applied_now = []
    with db.connection() as conn:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_lock(%s)", [_lock_key("rembug.migrations")])
        try:
            with conn.transaction():
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
                )
                conn.execute("ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS checksum text")
            done = {
                r["name"]: r["checksum"]
                for r in conn.execute("SELECT name, checksum FROM schema_migrations")
            }
            conn.commit()
            for folder in map(Path, folders):
                for path in sorted(folder.glob("*.sql")):
                    name = f"{folder.parent.name}/{folder.name}/{path.name}"
                    sql = path.read_text()
                    checksum = hashlib.sha256(sql.encode()).hexdigest()
                    if name in done:
                        if done[name] not in (None, checksum):
                            raise MigrationChanged(
                                f"migration {name} changed after it was applied to this "
                                "database; put the change in a new migration file instead"
                            )
                        continue
                    with conn.transaction():
                        conn.execute(sql)
                        conn.execute(
                            "INSERT INTO schema_migrations (name, checksum) VALUES (%s, %s)",
                            [name, checksum],
                        )
                    log.info("applied migration %s", name)
                    applied_now.append(name)
        finally:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_unlock(%s)", [_lock_key("rembug.migrations")])
    return applied_now


class MigrationChanged(Exception):
    """An applied migration file was edited; the database no longer matches the code."""
