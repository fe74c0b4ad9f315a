"""Aggregates: plain Python that decides events and folds them into state.

An aggregate never does I/O. A command method checks the current state and the
actor, then calls :meth:`Aggregate.record` with the event type and its data;
:meth:`Aggregate.apply` folds an event in by calling ``on_<type>`` (dots become
underscores, the prefix before the first dot is dropped: ``proposal.submitted``
-> ``on_submitted``). Loading is replaying every stored event through
:meth:`apply`; the events recorded since loading wait in :attr:`pending` (as
``(type, data, meta)``) for the store. ``meta`` is :func:`meta_for` of the
acting caller: who acts, and when.
"""

from shared.errors import Conflict, NotFound


class Aggregate:
    """Base of every aggregate; ``version`` counts the events folded in.

    ``noun`` names the aggregate in messages ("proposal", "service request");
    ``status`` is None until its first event.
    """

    noun = "aggregate"
    status = None

    def __init__(self, id):
        self.id = id
        self.version = 0
        self.pending = []

    @classmethod
    def replay(cls, id, events):
        """Rebuild an aggregate from ``(type, data, meta)`` triples in stream order."""
        aggregate = cls(id)
        for type_, data, meta in events:
            aggregate.apply(type_, data, meta)
        return aggregate

    def apply(self, type_, data, meta=None):
        """Fold one event in; ``meta`` carries the envelope (actor, time) when loaded."""
        handler = getattr(self, "on_" + type_.split(".", 1)[1].replace(".", "_"), None)
        if handler is not None:
            handler(data, meta or {})
        self.version += 1

    def _require_exists(self):
        """NotFound unless the aggregate has been created."""
        if self.status is None:
            raise NotFound(f"{self.noun} {self.id} not found")

    def _require_status(self, allowed, done):
        """Conflict, saying why, unless the status is one of ``allowed`` for ``done``."""
        if self.status not in allowed:
            article = "an" if allowed[0][0] in "aeiou" else "a"
            raise Conflict(
                f"{self.noun} is {self.status}; only {article} {' or '.join(allowed)} "
                f"{self.noun} can be {done}"
            )

    def record(self, type_, data, meta=None):
        """Decide an event: fold it in now and keep it for the store to append."""
        self.apply(type_, data, meta)
        self.pending.append((type_, data, meta or {}))


def json_copy(value):
    """A deep copy of JSON-native data (dicts, lists, scalars; tuples become lists).

    Aggregates hand out and take in plain data without sharing mutable parts;
    this does it several times faster than :func:`copy.deepcopy`.
    """
    if isinstance(value, dict):
        return {key: json_copy(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_copy(item) for item in value]
    return value


def meta_for(actor, now=None):
    """The envelope facts a command passes to its events: the actor and the time."""
    from datetime import UTC, datetime

    return {"actor": actor.as_dict(), "time": (now or datetime.now(UTC)).isoformat()}
