"""The event store: one PostgreSQL log per service.

Guarantees, each proven by a test against a real server
(``tests/platform/test_store.py``):

1. :meth:`EventStore.append` is atomic: all of a command's events or none; a
   wrong expected version raises :class:`~shared.errors.Conflict` and writes
   nothing.
2. A command retried with the same command id appends nothing the second
   time; the events of the first attempt are returned instead.
3. Sequences are handed out in commit order (a lock on the log head, taken last
   in the appending transaction), so a reader tailing by sequence never skips
   an event that commits late with a lower sequence, and the log has no gaps.
4. The ``project`` callback of an append runs in the appending transaction:
   the service's read models commit with their events, or neither does.
5. (see :mod:`shared.tracking`) a consumer's position commits with its effects.
6. Events stored under an older schema version are upcast when read.
"""

from dataclasses import dataclass

import psycopg
from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb

from shared.envelope import Event
from shared.errors import Conflict

CONFLICT_SQLSTATE = "RB409"
# actor fields as text: decoding one jsonb per row is the dearest part of a log read
COLUMNS = (
    "sequence, id::text, stream, version, type, time, data, data_version, "
    "correlation_id, causation_id, actor->>'id', actor->>'role'"
)


class Upcasters:
    """Functions that lift an event's ``data`` from one schema version to the next."""

    def __init__(self):
        self._steps = {}

    def register(self, type_, from_version):
        """Decorator: ``fn(data) -> data`` lifts ``type_`` from ``from_version`` to the next."""

        def add(fn):
            self._steps[(type_, from_version)] = fn
            return fn

        return add

    def upcast(self, type_, version, data):
        """Return ``(data, version)`` lifted through every registered step."""
        while (type_, version) in self._steps:
            data = self._steps[(type_, version)](data)
            version += 1
        return data, version


@dataclass(frozen=True)
class Appended:
    """What an append wrote, or, for a retried command, what the first attempt wrote."""

    events: list
    duplicate: bool = False

    @property
    def last_sequence(self):
        return self.events[-1].sequence if self.events else 0


class EventStore:
    """The log of one service on one node (its CloudEvents ``source``)."""

    def __init__(self, db, source, upcasters=None):
        self.db = db
        self.source = source
        self.upcasters = upcasters or Upcasters()

    def append(self, stream, expected_version, events, command_id=None, project=None):
        """Append ``events`` to ``stream`` if it is at ``expected_version`` (None: anywhere).

        ``project(conn, stored_events)`` runs in the same transaction, after the
        events are written. Returns :class:`Appended`.
        """
        one = None if project is None else (lambda conn, stored: project(conn, stored[0]))
        return self.append_many([(stream, expected_version, events)], command_id, one)

    def append_many(self, batches, command_id=None, project=None):
        """Append to several streams in one transaction: all of them, or none.

        ``batches`` is a list of ``(stream, expected_version, events)``;
        ``project(conn, stored)`` gets the stored events as one list per batch.
        A duplicate command returns every event the first attempt stored.
        """
        with self.db.connection() as conn:
            if project is None and len(batches) == 1:
                # one statement is its own transaction: one round trip instead of three
                conn.autocommit = True
                try:
                    return self._write(conn, batches, command_id, None)
                finally:
                    if not conn.closed:
                        conn.autocommit = False
            with conn.transaction():
                return self._write(conn, batches, command_id, project)

    def _write(self, conn, batches, command_id, project):
        stored = []
        for n, (stream, expected_version, events) in enumerate(batches):
            row = self._append_one(conn, stream, expected_version, events, command_id, n == 0)
            if row["last_seq"] == -1:
                return Appended(self.events_of_command(command_id, conn), duplicate=True)
            first = row["last_seq"] - len(events) + 1
            stored.append(
                [
                    e.stored(self.source, row["base"] + i + 1, first + i)
                    for i, e in enumerate(events)
                ]
            )
        if project is not None:
            project(conn, stored)
        return Appended([e for batch in stored for e in batch])

    def _append_one(self, conn, stream, expected_version, events, command_id, check_command):
        payload = [
            {
                "id": e.id,
                "type": e.type,
                "time": e.time.isoformat(),
                "data": e.data,
                "data_version": e.data_version,
                "correlation_id": e.correlation_id,
                "causation_id": e.causation_id,
                "actor": e.actor,
            }
            for e in events
        ]
        # the command id is recorded by the first stream only; every event carries it
        try:
            return conn.execute(
                "SELECT last_seq, base FROM rembug_append(%s, %s, %s, %s, %s)",
                [stream, expected_version, command_id, check_command, Jsonb(payload)],
                prepare=True,
            ).fetchone()
        except psycopg.Error as exc:
            if exc.sqlstate == CONFLICT_SQLSTATE:
                raise Conflict(
                    f"{stream} was changed by someone else meanwhile; reload and try again"
                ) from None
            raise

    def load(self, stream, conn=None):
        """Every event of ``stream`` in stream order (empty if it does not exist)."""
        return self._select(
            f"SELECT {COLUMNS} FROM events WHERE stream = %s ORDER BY version", [stream], conn
        )

    def read(self, after=0, limit=1000, conn=None):
        """Up to ``limit`` events of the log with a sequence above ``after``, in log order."""
        return self._select(
            f"SELECT {COLUMNS} FROM events WHERE sequence > %s ORDER BY sequence LIMIT %s",
            [after, limit],
            conn,
        )

    def head(self):
        """The highest sequence committed so far (0 for an empty log)."""
        with self.db.connection() as conn:
            return conn.execute("SELECT sequence FROM log_head").fetchone()["sequence"]

    def events_of_command(self, command_id, conn=None):
        """The events a command stored (empty if it never ran)."""
        return self._select(
            f"SELECT {COLUMNS} FROM events WHERE command_id = %s ORDER BY sequence",
            [command_id],
            conn,
        )

    def _select(self, sql, params, conn=None):
        if conn is not None:
            return self._decode(
                conn.cursor(row_factory=tuple_row).execute(sql, params, prepare=True)
            )
        with self.db.connection() as own:
            rows = own.cursor(row_factory=tuple_row).execute(sql, params, prepare=True).fetchall()
            own.rollback()
        return self._decode(rows)

    def _decode(self, rows):
        upcast, source = self.upcasters.upcast, self.source
        events = []
        for (
            seq,
            id_,
            stream,
            version,
            type_,
            time,
            data,
            data_version,
            corr,
            cause,
            aid,
            role,
        ) in rows:
            data, data_version = upcast(type_, data_version, data)
            events.append(
                Event(
                    type=type_,
                    stream=stream,
                    data=data,
                    data_version=data_version,
                    actor={"id": aid, "role": role},
                    id=id_,
                    time=time,
                    correlation_id=corr,
                    causation_id=cause,
                    version=version,
                    sequence=seq,
                    source=source,
                )
            )
        return events
