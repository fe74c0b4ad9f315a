"""The event store's guarantees (DESIGN.md), each against the real PostgreSQL."""

import shutil
import threading
import time

import psycopg
import pytest
from psycopg.types.json import Jsonb

from shared.db import MIGRATIONS, Database, migrate
from shared.envelope import Event
from shared.errors import Conflict
from shared.store import EventStore, Upcasters

SOURCE = "/kelurahan/32.75.05.1002/test"


def make_event(type_="thing.happened", stream="thing-1", **data):
    return Event(type=type_, stream=stream, data=data or {"n": 1})


@pytest.fixture
def store(db):
    return EventStore(db, SOURCE)


def count_events(db):
    with db.connection() as conn:
        return conn.execute("SELECT count(*) AS n FROM events").fetchone()["n"]


def test_append_assigns_stream_versions_and_gap_free_sequences(store):
    first = store.append("a", 0, [make_event(stream="a"), make_event(stream="a")])
    second = store.append("b", 0, [make_event(stream="b")])
    third = store.append("a", 2, [make_event(stream="a")])
    assert [e.version for e in first.events] == [1, 2]
    assert [e.sequence for e in first.events + second.events + third.events] == [1, 2, 3, 4]
    assert third.events[0].version == 3
    assert [e.sequence for e in store.read()] == [1, 2, 3, 4]
    assert store.head() == 4


def test_one_event_is_stored_as_it_would_be_among_several(store):
    """A lone event takes the typed-parameter path (rembug_append_one), events of a
    batch the JSON one (rembug_append): both store the same envelope."""

    def full(data):
        return Event(
            type="thing.happened",
            stream="s",
            data=data,
            data_version=3,
            actor={"id": "u-1", "role": "operator"},
            correlation_id="corr-1",
            causation_id="cause-1",
        )

    alone = full({"n": 1, "nested": {"x": [1.5, None, "é"]}})
    pair = [full({"n": 2}), full({"n": 3})]
    store.append("s", 0, [alone], command_id="cmd-one")
    store.append("s", 1, pair, command_id="cmd-pair")
    store.append("s", None, [full({"n": 4})])  # anywhere: at the end
    loaded = store.load("s")
    assert [e.version for e in loaded] == [1, 2, 3, 4]
    assert [e.sequence for e in loaded] == [1, 2, 3, 4]
    for original, stored in zip([alone, *pair], loaded, strict=False):
        fields = ("id", "type", "time", "data", "data_version", "actor")
        assert [getattr(stored, f) for f in fields] == [getattr(original, f) for f in fields]
        assert (stored.correlation_id, stored.causation_id) == ("corr-1", "cause-1")
    assert [e.id for e in store.events_of_command("cmd-one")] == [alone.id]


def test_wrong_expected_version_is_a_conflict_and_writes_nothing(store, db):
    store.append("a", 0, [make_event(stream="a")])
    with pytest.raises(Conflict):
        store.append("a", 0, [make_event(stream="a"), make_event(stream="a")])
    with pytest.raises(Conflict):
        store.append("a", 5, [make_event(stream="a")])
    assert count_events(db) == 1
    assert store.head() == 1


def test_append_is_all_or_nothing(store, db):
    duplicate_id = make_event(stream="x")
    store.append("x", 0, [duplicate_id])
    # the second event reuses an id: the whole append fails, the first event with it
    with pytest.raises(psycopg.errors.UniqueViolation):
        store.append("y", 0, [make_event(stream="y"), duplicate_id])
    assert count_events(db) == 1
    assert store.load("y") == []
    # the failed append did not burn a sequence number
    assert store.append("z", 0, [make_event(stream="z")]).events[0].sequence == 2


def test_retried_command_appends_nothing_and_returns_first_result(store, db):
    first = store.append("a", 0, [make_event(stream="a")], command_id="cmd-1")
    retry = store.append("other", 0, [make_event(stream="other")], command_id="cmd-1")
    assert retry.duplicate
    assert [e.id for e in retry.events] == [e.id for e in first.events]
    assert count_events(db) == 1


def raw_payload(event):
    return Jsonb(
        [
            {
                "id": event.id,
                "type": event.type,
                "time": event.time.isoformat(),
                "data": event.data,
                "data_version": 1,
                "actor": event.actor,
            }
        ]
    )


def test_tailing_reader_never_skips_an_event_that_commits_late(store, db):
    """A writer holds its sequence uncommitted while another writer appends."""
    with db.connection() as slow:
        slow.execute(
            "SELECT * FROM rembug_append('slow', 0, NULL, false, %s)",
            [raw_payload(make_event(stream="slow"))],
        )
        fast = threading.Thread(target=store.append, args=("fast", 0, [make_event(stream="fast")]))
        fast.start()
        time.sleep(0.3)
        seen_while_held = store.read(after=0)
        fast_waited = fast.is_alive()
        slow.commit()
    fast.join(5)

    assert seen_while_held == []  # nothing visible past the open transaction
    assert fast_waited  # the later writer could not take a sequence meanwhile
    events = store.read(after=0)
    assert [(e.stream, e.sequence) for e in events] == [("slow", 1), ("fast", 2)]


def test_projection_commits_with_its_events(store, db):
    with db.connection() as conn, conn.transaction():
        conn.execute("CREATE TABLE counts (stream text PRIMARY KEY, n int CHECK (n < 2))")

    def project(events):
        return [("INSERT INTO counts VALUES (%s, %s)", [events[0].stream, len(events)])]

    store.append("a", 0, [make_event(stream="a")], project=project)

    # the projection's write fails in the database: the events are not written either
    with pytest.raises(psycopg.errors.CheckViolation):
        store.append("b", 0, [make_event(stream="b"), make_event(stream="b")], project=project)

    def failing_project(events):
        raise RuntimeError("projection failed")

    with pytest.raises(RuntimeError):
        store.append("c", 0, [make_event(stream="c")], project=failing_project)

    # events that cannot be appended take their projection with them
    with pytest.raises(Conflict):
        store.append(
            "a", 0, [make_event(stream="a")], project=lambda _: project([make_event("x", "d")])
        )

    with db.connection() as conn:
        assert conn.execute("SELECT stream FROM counts").fetchall() == [{"stream": "a"}]
    assert store.load("b") == [] and store.load("c") == []
    assert count_events(db) == 1


def test_projection_sees_stream_versions_before_sequences(store):
    seen = []
    store.append("a", 0, [make_event(stream="a")])
    store.append("a", 1, [make_event(stream="a")], project=lambda events: seen.extend(events) or [])
    assert [(e.version, e.sequence) for e in seen] == [(2, None)]


def test_events_of_an_older_schema_version_are_upcast_on_read(db):
    upcasters = Upcasters()

    @upcasters.register("thing.happened", 1)
    def split_name(data):
        first, last = data["name"].split(" ", 1)
        return {"first": first, "last": last}

    @upcasters.register("thing.happened", 2)
    def add_count(data):
        return {**data, "count": 0}

    old_store = EventStore(db, SOURCE)
    old_store.append(
        "a", 0, [Event(type="thing.happened", stream="a", data={"name": "Budi Santoso"})]
    )
    new_store = EventStore(db, SOURCE, upcasters)
    [event] = new_store.load("a")
    assert event.data == {"first": "Budi", "last": "Santoso", "count": 0}
    assert event.data_version == 3
    assert new_store.read()[0].data == event.data


def test_cloudevent_round_trip(store):
    [stored] = store.append("a", 0, [make_event(stream="a")]).events
    ce = stored.to_cloudevent()
    assert ce["specversion"] == "1.0"
    assert ce["source"] == SOURCE
    assert ce["sequence"] == 1 and ce["streamversion"] == 1
    assert type(stored).from_cloudevent(ce) == stored


def test_personal_data_never_leaves_in_the_cloudevent_form(store):
    event = Event(
        type="resident.moved", stream="r-1", data={"personal": {"nik": "x"}, "public": {"rw": 7}}
    )
    [stored] = store.append("r-1", 0, [event]).events
    assert stored.to_cloudevent()["data"] == {"public": {"rw": 7}}
    assert store.read()[0].data["personal"] == {"nik": "x"}  # kept in the store itself


# -- many streams in one append (rembug_append_many) ---------------------------------


def events_of(stream, n=1):
    return [make_event(stream=stream, i=i) for i in range(n)]


def test_append_to_many_streams_is_one_gap_free_run_of_sequences(store):
    store.append("old", 0, events_of("old", 2))
    store.append("anywhere", 0, events_of("anywhere"))
    appended = store.append_many(
        [
            ("new-1", 0, events_of("new-1", 2)),
            ("old", 2, events_of("old")),
            ("anywhere", None, events_of("anywhere", 2)),
            ("new-2", 0, events_of("new-2")),
            ("fresh", None, events_of("fresh")),
        ]
    )
    stored = [(e.stream, e.version, e.sequence) for e in appended.events]
    assert stored == [
        ("new-1", 1, 4),
        ("new-1", 2, 5),
        ("old", 3, 6),
        ("anywhere", 2, 7),
        ("anywhere", 3, 8),
        ("new-2", 1, 9),
        ("fresh", 1, 10),
    ]
    assert [(e.stream, e.version, e.sequence) for e in store.read(after=3)] == stored
    assert [e.id for e in store.read(after=3)] == [e.id for e in appended.events]
    assert store.head() == 10
    store.append("new-1", 2, events_of("new-1"))  # each stream's version moved on
    with pytest.raises(Conflict):
        store.append("fresh", 0, events_of("fresh"))


def test_a_stream_named_twice_in_one_append_goes_on_from_its_earlier_batch(store):
    store.append("old", 0, events_of("old"))
    appended = store.append_many(
        [
            ("new", 0, events_of("new", 2)),
            ("old", None, events_of("old")),
            ("new", 2, events_of("new")),
            ("old", 2, events_of("old")),
            ("new", None, events_of("new")),
        ]
    )
    assert [(e.stream, e.version) for e in appended.events] == [
        ("new", 1),
        ("new", 2),
        ("old", 2),
        ("new", 3),
        ("old", 3),
        ("new", 4),
    ]
    assert [e.version for e in store.load("new")] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    "wrong",
    [("a", 0), ("a", 3), ("b", 0), ("new", 0)],
    ids=["existing-as-new", "stale-version", "new-twice-elsewhere", "named-twice"],
)
def test_one_wrong_stream_of_many_is_a_conflict_and_writes_nothing(store, db, wrong):
    store.append("a", 0, events_of("a"))
    store.append("b", 0, events_of("b"))
    batches = [("new", 0, events_of("new")), ("a", 1, events_of("a")), (*wrong, events_of("x"))]
    if wrong[0] == "a":
        batches.pop(1)
    with pytest.raises(Conflict, match=f"{wrong[0]} was changed"):
        store.append_many(batches, command_id="cmd-conflict")
    assert count_events(db) == 2 and store.head() == 2
    assert store.load("new") == []
    # nothing of it stuck: not the new stream, not the versions, not the command id
    assert store.append_many(batches[:1] + [("a", 1, events_of("a"))], "cmd-conflict").events


def test_append_to_many_streams_is_all_or_nothing(store, db):
    reused = make_event(stream="x")
    store.append("x", 0, [reused])
    with pytest.raises(psycopg.errors.UniqueViolation):
        store.append_many([("y", 0, events_of("y", 3)), ("z", 0, [make_event(stream="z"), reused])])
    assert count_events(db) == 1
    assert store.load("y") == [] and store.load("z") == []
    assert store.append("z", 0, events_of("z")).events[0].sequence == 2


def test_retried_command_on_many_streams_appends_nothing_and_returns_first_result(store, db):
    first = store.append_many(
        [("a", 0, events_of("a", 2)), ("b", 0, events_of("b"))], command_id="cmd-many"
    )
    retry = store.append_many(
        [("c", 0, events_of("c")), ("d", 0, events_of("d"))], command_id="cmd-many"
    )
    again = store.append("e", 0, events_of("e"), command_id="cmd-many")
    assert retry.duplicate and again.duplicate
    assert [e.id for e in retry.events] == [e.id for e in first.events]
    assert [e.id for e in again.events] == [e.id for e in first.events]
    assert count_events(db) == 3


def test_tailing_reader_never_skips_events_of_many_streams_that_commit_late(store, db):
    """A multi-stream writer holds its sequences uncommitted while another writer appends."""
    with db.connection() as slow:
        slow.execute(
            "SELECT * FROM rembug_append_many(NULL, %s, %s, %s)",
            [
                ["s1", "s2"],
                [0, 0],
                Jsonb([raw_payload(make_event(stream=s)).obj for s in ("s1", "s2")]),
            ],
        )
        fast = threading.Thread(
            target=store.append_many,
            args=([("f1", 0, events_of("f1")), ("f2", 0, events_of("f2"))],),
        )
        fast.start()
        time.sleep(0.3)
        seen_while_held = store.read(after=0)
        fast_waited = fast.is_alive()
        slow.commit()
    fast.join(5)

    assert seen_while_held == []
    assert fast_waited
    events = store.read(after=0)
    assert [(e.stream, e.sequence) for e in events] == [("s1", 1), ("s2", 2), ("f1", 3), ("f2", 4)]


def test_projection_of_many_streams_commits_with_their_events(store, db):
    with db.connection() as conn, conn.transaction():
        conn.execute("CREATE TABLE seen (stream text CHECK (stream <> 'bad'))")

    def project(batches):
        return [("INSERT INTO seen SELECT unnest(%s::text[])", [[es[0].stream for es in batches]])]

    store.append_many([("a", 0, events_of("a")), ("b", 0, events_of("b"))], project=project)
    with pytest.raises(Conflict):  # the appends fail: the projection goes with them
        store.append_many([("c", 0, events_of("c")), ("a", 0, events_of("a"))], project=project)
    with pytest.raises(psycopg.errors.CheckViolation):  # the projection fails: so do the appends
        store.append_many([("d", 0, events_of("d")), ("bad", 0, events_of("bad"))], project=project)
    with db.connection() as conn:
        assert [r["stream"] for r in conn.execute("SELECT stream FROM seen ORDER BY 1")] == [
            "a",
            "b",
        ]
    assert store.load("c") == [] and store.load("d") == []
    assert count_events(db) == 2 and store.head() == 2


def test_a_waiting_append_queues_on_an_advisory_lock_keyed_by_the_events_table(store, db):
    """A waiting append waits for a transaction-level advisory lock keyed by this schema's
    events table (migration 008), not for a row: the log keeps no row of its own to lock."""
    with db.connection() as slow, db.connection() as watcher:
        watcher.autocommit = True
        slow.execute(
            "SELECT * FROM rembug_append('slow', 0, NULL, false, %s)",
            [raw_payload(make_event(stream="slow"))],
        )
        fast = threading.Thread(target=store.append, args=("fast", 0, [make_event(stream="fast")]))
        fast.start()
        waits = []
        for _ in range(50):
            waits = watcher.execute(
                "SELECT l.locktype, l.classid::bigint = 'events'::regclass::oid AS on_events"
                " FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
                " WHERE NOT l.granted AND a.datname = current_database()"
            ).fetchall()
            if waits:
                break
            time.sleep(0.05)
        slow.commit()
    fast.join(5)

    assert waits == [{"locktype": "advisory", "on_events": True}]
    assert [(e.stream, e.sequence) for e in store.read(after=0)] == [("slow", 1), ("fast", 2)]


def test_a_log_written_before_migration_008_goes_on_where_it_stood(database_url, tmp_path):
    """A node upgraded with its log: once 008 drops the stream and log-head rows, the head
    and every stream's version are read off the events already stored."""
    before = tmp_path / "shared" / "migrations"
    before.mkdir(parents=True)
    for path in sorted(MIGRATIONS.glob("00[1-7]_*.sql")):
        shutil.copy(path, before)
    database = Database(database_url)
    try:
        migrate(database, before)
        store = EventStore(database, SOURCE)
        store.append("a", 0, events_of("a", 2))
        store.append("b", 0, events_of("b"))

        assert migrate(database) == ["shared/migrations/008_head_from_events.sql"]
        assert store.head() == 3
        appended = store.append("a", 2, events_of("a"))
        assert [(e.version, e.sequence) for e in appended.events] == [(3, 4)]
        with pytest.raises(Conflict):
            store.append("b", 0, events_of("b"))
        assert [e.sequence for e in store.read()] == [1, 2, 3, 4]
    finally:
        database.close()
