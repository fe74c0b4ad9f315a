"""A projection statement may refuse a command: nothing is written, the caller gets a Conflict."""

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
