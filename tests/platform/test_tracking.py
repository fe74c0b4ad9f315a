"""Consumer tracking (DESIGN guarantee 5) against the real PostgreSQL."""

import eventlet
import psycopg
import pytest

from shared.envelope import Event
from shared.tracking import APPLIED, DUPLICATE, GAP, PARKED, Tracker

SOURCE = "/kelurahan/32.75.05.1002/talker"


def event(sequence, source=SOURCE):
    return Event(type="thing.happened", stream="thing-1", data={"n": sequence}).stored(
        source, sequence, sequence
    )


@pytest.fixture
def tracker(db):
    with db.transaction() as conn:
        conn.execute("CREATE TABLE effects (sequence bigint NOT NULL)")
    return Tracker(db, "listener.on_event")


def record(conn, event):
    conn.execute("INSERT INTO effects (sequence) VALUES (%s)", [event.sequence])


def effects(db):
    with db.connection() as conn:
        return [r["sequence"] for r in conn.execute("SELECT sequence FROM effects ORDER BY 1")]


def test_effect_and_position_commit_together(tracker, db):
    assert tracker.handle(event(1), record) == APPLIED
    assert tracker.position(SOURCE) == 1
    assert effects(db) == [1]


def test_an_effect_that_raises_leaves_position_and_effects_unchanged(tracker, db):
    def record_then_fail(conn, event):
        record(conn, event)
        raise ValueError("handler bug")

    with pytest.raises(ValueError):
        tracker.handle(event(1), record_then_fail)
    assert tracker.position(SOURCE) == 0
    assert effects(db) == []
    assert tracker.handle(event(1), record) == APPLIED
    assert effects(db) == [1]


def test_a_duplicate_is_skipped_without_its_effect(tracker, db):
    tracker.handle(event(1), record)
    tracker.handle(event(2), record)
    assert tracker.handle(event(1), record) == DUPLICATE
    assert tracker.handle(event(2), record) == DUPLICATE
    assert effects(db) == [1, 2]
    assert tracker.position(SOURCE) == 2


def test_a_gap_is_reported_and_nothing_applied(tracker, db):
    tracker.handle(event(1), record)
    assert tracker.handle(event(3), record) == GAP
    assert effects(db) == [1]
    assert tracker.position(SOURCE) == 1


def test_positions_are_kept_per_source(tracker, db):
    other = "/kelurahan/32.75.05.1001/talker"
    tracker.handle(event(1), record)
    assert tracker.handle(event(1, source=other), record) == APPLIED
    assert tracker.position(other) == 1
    assert tracker.position(SOURCE) == 1


def test_a_crash_before_commit_applies_nothing_and_a_retry_applies_once(tracker, db, database_url):
    """The connection is terminated by the server between the effect and the commit."""

    def record_then_lose_connection(conn, event):
        record(conn, event)
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [conn.info.backend_pid])

    with pytest.raises(psycopg.OperationalError):
        tracker.handle(event(1), record_then_lose_connection)
    assert effects(db) == []
    assert tracker.position(SOURCE) == 0

    assert tracker.handle(event(1), record) == APPLIED
    assert tracker.handle(event(1), record) == DUPLICATE
    assert effects(db) == [1]
    assert tracker.position(SOURCE) == 1


def test_two_consumers_racing_on_one_event_apply_it_once(tracker, db):
    """The second waits on the position row's lock, then sees a duplicate."""
    holding = eventlet.event.Event()

    def slow_record(conn, event):
        record(conn, event)
        holding.send()
        eventlet.sleep(0.3)

    first = eventlet.spawn(tracker.handle, event(1), slow_record)
    holding.wait()
    second = Tracker(db, tracker.consumer).handle(event(1), record)
    assert first.wait() == APPLIED
    assert second == DUPLICATE
    assert effects(db) == [1]


def test_park_records_the_event_and_moves_past_it(tracker, db):
    given_up = event(1)
    assert tracker.park(given_up, "ValueError: bad", 3) == PARKED
    assert tracker.position(SOURCE) == 1
    assert tracker.handle(given_up, record) == DUPLICATE
    assert tracker.handle(event(2), record) == APPLIED
    assert effects(db) == [2]
    with db.connection() as conn:
        parked = conn.execute(
            "SELECT consumer, source, sequence, event, reason, attempts FROM parked_events"
        ).fetchall()
    assert len(parked) == 1
    row = parked[0]
    assert (row["consumer"], row["source"], row["sequence"]) == ("listener.on_event", SOURCE, 1)
    assert (row["reason"], row["attempts"]) == ("ValueError: bad", 3)
    assert Event.from_cloudevent(row["event"]) == given_up


def test_park_is_undone_when_the_dead_letter_fails(tracker, db):
    def broker_down(conn):
        raise OSError("broker unreachable")

    with pytest.raises(OSError):
        tracker.park(event(1), "ValueError: bad", 3, before_commit=broker_down)
    assert tracker.position(SOURCE) == 0
    with db.connection() as conn:
        assert conn.execute("SELECT count(*) AS n FROM parked_events").fetchone()["n"] == 0
