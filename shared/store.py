"""The event store: one PostgreSQL log per service.

Guarantees, each proven by a test against a real server
(``tests/platform/test_store.py``):

1. :meth:`EventStore.append` is atomic: all of a command's events or none; a
   wrong expected version raises :class:`~shared.errors.Conflict` and writes
   nothing.
2. A command retried with the same command id appends nothing the second
   time; the events of the first attempt are returned instead.
3. Sequences are handed out in commit order (appends take turns on an advisory
   lock held until commit, and read the log head only once they hold it), so a
   reader tailing by sequence never skips an event that commits late with a
   lower sequence, and the log has no gaps.
4. The statements ``project`` returns run in the appending transaction: the
   service's read models commit with their events, or neither does. A
   statement (or a trigger it fires) that raises SQLSTATE ``RB412`` refuses the
   command: nothing is written, and the caller gets a Conflict carrying the
   error's message (which must name no person).
5. (see :mod:`shared.tracking`) a consumer's position commits with its effects.
6. Events stored under an older schema version are upcast when read.
"""

import re
from dataclasses import dataclass

import psycopg
from psycopg import ClientCursor
from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb

from shared.envelope import Event
from shared.errors import Conflict

APPEND = "SELECT last_seq, base FROM rembug_append(%s, %s, %s, %s, %s)"
# binary parameters: the server reads the time, the id and the numbers without parsing text
APPEND_ONE = (
    "SELECT last_seq, base FROM rembug_append_one(%b, %b::integer, %b::text, %b::uuid, %b, %b,"
    " %b, %b::integer, %b::text, %b::text, %b)"
)
APPEND_MANY = "SELECT last_seq, bases FROM rembug_append_many(%s, %s::text[], %s::integer[], %s)"
CONFLICT_SQLSTATE = "RB409"
DUPLICATE_SQLSTATE = "RB208"
REFUSED_SQLSTATE = "RB412"
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

        ``project(events)`` returns the projection's statements (see
        :meth:`append_many`). Returns :class:`Appended`.
        """
        one = None if project is None else (lambda batches: project(batches[0]))
        return self.append_many([(stream, expected_version, events)], command_id, one)

    def append_many(self, batches, command_id=None, project=None):
        """Append to several streams in one transaction: all of them, or none.

        ``batches`` is a list of ``(stream, expected_version, events)``; several
        of them go to ``rembug_append_many`` as one statement (one turn on the
        log's lock, one insert of every event, however many streams).
        ``project(batches_of_events)`` returns the read models' writes as
        ``(sql, params)`` statements, given each event with its stream and
        version (its sequence is handed out later, under the lock); they run in
        the same transaction, before the appends. The statements, the appends
        and the commit go to the server as one message, one implicit
        transaction: the log's lock is then held only while the server
        works, never while this process waits behind other green threads, and
        a command costs one round trip. A duplicate command returns every event
        the first attempt stored.
        """
        statements = []
        if project is not None:  # the projection sees each event with its stream version
            pending = [
                [e.stored(self.source, _version(expected, i), None) for i, e in enumerate(events)]
                for _, expected, events in batches
            ]
            statements = list(project(pending))
        statements = _with_append(statements, _append_statement(batches, command_id))
        with self.db.connection() as conn:
            try:
                last_seq, bases = _run_as_one_transaction(conn, statements)[-1]
            except psycopg.Error as exc:
                if exc.sqlstate == DUPLICATE_SQLSTATE:
                    return Appended(self.events_of_command(command_id), duplicate=True)
                if exc.sqlstate == REFUSED_SQLSTATE:
                    raise Conflict(exc.diag.message_primary) from None
                if exc.sqlstate == CONFLICT_SQLSTATE:
                    raise Conflict(
                        f"{_stream_of(exc)} was changed by someone else meanwhile; "
                        "reload and try again"
                    ) from None
                raise
        bases = bases if isinstance(bases, list) else [bases]
        sequence = last_seq - sum(len(events) for _, _, events in batches)
        stored = []
        for base, (_, _, events) in zip(bases, batches, strict=True):
            stored += [
                e.stored(self.source, base + i + 1, sequence + i + 1) for i, e in enumerate(events)
            ]
            sequence += len(events)
        return Appended(stored)

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
        with self.db.read() as conn:
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
            return self._decode(_cursor(conn).execute(sql, params, prepare=True).fetchall())
        with self.db.read() as own:
            rows = _cursor(own).execute(sql, params, prepare=True).fetchall()
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


def _append_statement(batches, command_id):
    """The one statement that appends ``batches``: ``(last_seq, base or bases)``. One event
    (most commands) goes with its envelope as typed parameters, which the server neither
    parses as JSON nor iterates."""
    if len(batches) == 1:
        stream, expected, events = batches[0]
        if len(events) == 1:
            e = events[0]
            return APPEND_ONE, [
                stream,
                expected,
                command_id,
                e.id,
                e.type,
                e.time,
                Jsonb(e.data),
                e.data_version,
                e.correlation_id,
                e.causation_id,
                Jsonb(e.actor),
            ]
        return APPEND, [stream, expected, command_id, True, Jsonb(_payload(events))]
    streams = [stream for stream, _, _ in batches]
    expected = [expected for _, expected, _ in batches]
    events = Jsonb([_payload(events) for _, _, events in batches])
    return APPEND_MANY, [command_id, streams, expected, events]


def _with_append(statements, append):
    """The projection's statements and the append, in that order; a lone INSERT, UPDATE
    or DELETE rides in the append's statement as a data-modifying WITH (it runs to
    completion in the same statement), so the command is one prepared statement."""
    if len(statements) == 1 and _EMBEDDABLE.match(statements[0][0]):
        (sql, params), (append_sql, append_params) = statements[0], append
        return [(f"WITH projection AS ({sql}) {append_sql}", [*params, *append_params])]
    return [*statements, append]


_EMBEDDABLE = re.compile(r"\s*(INSERT|UPDATE|DELETE)\b", re.IGNORECASE)


def _payload(events):
    return [
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


def _run_as_one_transaction(conn, statements):
    """Run ``(sql, params)`` statements as one message, one implicit transaction.

    Returns each statement's first row (None for a statement without rows).
    One statement goes as a prepared statement; several are bound client-side
    and sent as one simple-protocol query, which PostgreSQL runs atomically.
    """
    conn.autocommit = True
    try:
        if len(statements) == 1:
            sql, params = statements[0]
            return [_cursor(conn).execute(sql, params, prepare=True).fetchone()]
        cursor = ClientCursor(conn, row_factory=tuple_row)
        cursor.execute(
            "; ".join(sql for sql, _ in statements), [p for _, ps in statements for p in ps]
        )
        rows = []
        while True:
            rows.append(cursor.fetchone() if cursor.description else None)
            if not cursor.nextset():
                return rows
    finally:
        if not conn.closed:
            conn.autocommit = False


def _cursor(conn):
    """The store's cursor on ``conn`` (tuple rows), made once per connection and kept on it:
    a fresh cursor would look up the dumper of every parameter again on each statement.
    The store reads every result whole before the connection goes back to its pool, so
    no two statements ever share it at once."""
    cursor = getattr(conn, "_rembug_store_cursor", None)
    if cursor is None or cursor.closed:
        cursor = conn._rembug_store_cursor = conn.cursor(row_factory=tuple_row)
    return cursor


def _version(expected, index):
    return None if expected is None else expected + index + 1


def _stream_of(error):
    """The stream named in a conflict raised by rembug_append."""
    words = (error.diag.message_primary or "").split()
    return words[1] if len(words) > 1 else "the stream"
