"""A projection statement may refuse a command: nothing is written, the caller gets a Conflict."""

import psycopg
import pytest

from shared.envelope import Event
from shared.errors import Conflict
from shared.store import EventStore

SOURCE = "/kelurahan/32.75.05.1002/test"
REFUSE = (
    "DO $$ BEGIN RAISE EXCEPTION 'the books of 2026 are closed' USING ERRCODE = 'RB412'; END $$",
    [],
)


@pytest.mark.parametrize("statements", [[REFUSE], [("SELECT 1", []), REFUSE]])
def test_a_refusing_statement_writes_nothing_and_becomes_a_conflict(db, statements):
    store = EventStore(db, SOURCE)
    with pytest.raises(Conflict) as refused:
        store.append(
            "thing-1",
            0,
            [Event("thing.happened", "thing-1", {"n": 1})],
            project=lambda _: statements,
        )
    assert str(refused.value) == "the books of 2026 are closed"
    assert store.read() == [] and store.head() == 0
    store.append("thing-1", 0, [Event("thing.happened", "thing-1", {"n": 2})])
    assert [e.sequence for e in store.read()] == [1]


def test_a_lone_projection_statement_rides_in_the_append_and_fails_with_it(db):
    """One INSERT goes in the append's own statement (a data-modifying WITH): it commits
    with the events, and when it fails, no event is stored."""
    store = EventStore(db, SOURCE)
    with db.transaction() as conn:
        conn.execute("CREATE TABLE seen (stream text PRIMARY KEY)")

    def project(events):
        return [("INSERT INTO seen (stream) VALUES (%s)", [events[0].stream])]

    store.append("thing-1", 0, [Event("thing.happened", "thing-1", {"n": 1})], project=project)
    with pytest.raises(psycopg.errors.UniqueViolation):  # the projection row exists already
        store.append(
            "thing-1", None, [Event("thing.happened", "thing-1", {"n": 2})], project=project
        )
    assert [e.version for e in store.read()] == [1]
    with db.read() as conn:
        assert conn.execute("SELECT count(*) AS n FROM seen").fetchone()["n"] == 1
