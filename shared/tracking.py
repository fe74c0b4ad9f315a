"""Consumer tracking: every event of another source takes effect exactly once.

DESIGN guarantee 5, proven against a real PostgreSQL in
``tests/platform/test_tracking.py``:

- A consumer's position in a source's log (``consumer_positions``) and the
  effects it derives from the next event commit in ONE transaction, or neither
  does. A crash (process killed, connection terminated) at any moment before
  the commit leaves no effect and the old position; a crash after it leaves
  both. Retrying the event therefore applies it exactly once.
- The position row is locked (``SELECT ... FOR UPDATE``) before the effect, so
  two consumers of the same name racing on the same event (two instances of a
  service, a redelivery next to a catch-up) apply it once: the second waits,
  then sees a duplicate.
- Events are applied strictly in source-sequence order: an event at or below
  the position is a duplicate and is skipped; one beyond ``position + 1`` is a
  gap and is not applied (the caller catches up from the source's log first).
- :meth:`Tracker.handle_batch` applies consecutive events of one source in one
  transaction, with the same checks per event and one position update: all of
  their effects and the new position commit together, or none do.
- An event the consumer gives up on is parked (``parked_events``, with the
  reason) and the position moves past it in the same transaction.

Plain Python, no nameko: :mod:`shared.subscriber` builds on it.
"""

from psycopg.types.json import Jsonb

APPLIED = "applied"
DUPLICATE = "duplicate"
GAP = "gap"
PARKED = "parked"


class Tracker:
    """Where ``consumer`` has got to in each source's log, and the one way to move it."""

    def __init__(self, db, consumer):
        self.db = db
        self.consumer = consumer

    def handle(self, event, effect):
        """Apply ``event`` through ``effect(conn, event)`` if it is the next one of its source.

        Returns :data:`APPLIED` (effect and new position committed together),
        :data:`DUPLICATE` (already applied or parked; nothing done) or
        :data:`GAP` (events are missing before it; nothing done). An exception
        from ``effect`` rolls back the effect and leaves the position as it was.
        """
        _require_sequence(event)
        with self.db.transaction() as conn:
            outcome = self._check(conn, event)
            if outcome is None:
                effect(conn, event)
                self._advance(conn, event)
                outcome = APPLIED
            return outcome

    def handle_batch(self, events, effect, together=False):
        """Apply each of ``events`` (one source, in sequence order) that is next, in ONE transaction.

        Returns one outcome per event, as :meth:`handle` would: duplicates are
        skipped; at the first gap that event and every later one are
        :data:`GAP` and untouched. ``effect(conn, event)`` runs for each event
        applied, in order; with ``together``, ``effect(conn, events)`` runs once
        with all of them (if any). The effects of the applied ones and the new
        position commit together; an exception from ``effect`` rolls back the
        whole batch and leaves the position as it was.
        """
        if not events:
            return []
        for event in events:
            _require_sequence(event)
        source = events[0].source
        if any(event.source != source for event in events):
            raise ValueError("a batch holds events of one source only")
        outcomes, applied = [], []
        # pipeline mode: BEGIN goes with the lock, and the effects' writes that read
        # nothing back go with the position update and COMMIT (fewer round trips)
        with self.db.connection() as conn, conn.pipeline(), conn.transaction():
            position = start = self._lock_position(conn, source)
            for event in events:
                if outcomes and outcomes[-1] == GAP or event.sequence > position + 1:
                    outcomes.append(GAP)
                elif event.sequence <= position:
                    outcomes.append(DUPLICATE)
                else:
                    if not together:
                        effect(conn, event)
                    applied.append(event)
                    position = event.sequence
                    outcomes.append(APPLIED)
            if together and applied:
                effect(conn, applied)
            if position != start:
                conn.execute(
                    "UPDATE consumer_positions SET position = %s WHERE consumer = %s AND source = %s",
                    [position, self.consumer, source],
                )
        return outcomes

    def park(self, event, reason, attempts, before_commit=None):
        """Give up on ``event``: record it in ``parked_events`` and move the position past it.

        ``before_commit(conn)`` runs last inside the transaction (to hand the
        event to a dead-letter queue, say): if it raises, nothing is parked.
        Returns :data:`PARKED`, or :data:`DUPLICATE` / :data:`GAP` as
        :meth:`handle` does, without parking.
        """
        _require_sequence(event)
        with self.db.transaction() as conn:
            outcome = self._check(conn, event)
            if outcome is not None:
                return outcome
            conn.execute(
                "INSERT INTO parked_events (consumer, source, sequence, event, reason, attempts)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                [
                    self.consumer,
                    event.source,
                    event.sequence,
                    Jsonb(event.to_cloudevent()),
                    reason,
                    attempts,
                ],
            )
            self._advance(conn, event)
            if before_commit is not None:
                before_commit(conn)
            return PARKED

    def position(self, source):
        """The sequence of the last event of ``source`` applied or parked (0: none yet)."""
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT position FROM consumer_positions WHERE consumer = %s AND source = %s",
                [self.consumer, source],
            ).fetchone()
            conn.rollback()
        return row["position"] if row else 0

    def _check(self, conn, event):
        """Lock the position row; None if ``event`` is the next one, else why not."""
        position = self._lock_position(conn, event.source)
        if event.sequence <= position:
            return DUPLICATE
        if event.sequence > position + 1:
            return GAP
        return None

    def _lock_position(self, conn, source):
        select = (
            "SELECT position FROM consumer_positions WHERE consumer = %s AND source = %s FOR UPDATE"
        )
        params = [self.consumer, source]
        row = conn.execute(select, params).fetchone()
        if row is None:
            conn.execute(
                "INSERT INTO consumer_positions (consumer, source, position) VALUES (%s, %s, 0)"
                " ON CONFLICT DO NOTHING",
                params,
            )
            row = conn.execute(select, params).fetchone()
        return row["position"]

    def _advance(self, conn, event):
        conn.execute(
            "UPDATE consumer_positions SET position = %s WHERE consumer = %s AND source = %s",
            [event.sequence, self.consumer, event.source],
        )


def _require_sequence(event):
    if event.sequence is None or event.source is None:
        raise ValueError("only a stored event (with source and sequence) can be tracked")
