"""The nameko dependency for a service's event store, and what each worker gets from it.

:class:`EventStoreProvider` owns one service's database: at setup it validates
the configuration, applies the platform's and the service's migrations (under
the advisory lock) and opens the pool. Each worker gets a :class:`Repository`
that loads aggregates and saves their pending events together with the
service's projections, stamping every event with the envelope: the caller as
actor, the call id as correlation id, the schema version of its data.
"""

from datetime import datetime

from nameko.extensions import DependencyProvider

from shared import config as configmod
from shared.db import MIGRATIONS, Database, migrate
from shared.envelope import Event
from shared.errors import NotFound
from shared.store import EventStore, Upcasters


class EventStoreProvider(DependencyProvider):
    """One event store per service container.

    ``event_schemas`` maps each event type to its marshmallow schema class
    (with a ``version`` attribute, stamped on the event). That the domain's
    events fit their schemas is proven by the tests (every event of the domain
    tests, and every event the service stores, validated against the AsyncAPI
    document), not re-checked on every command. ``project(changes)`` is the
    service's projection: given ``[(aggregate, events), ...]`` it returns the
    ``(sql, params)`` statements that update the read models, run in every
    appending transaction.

    ``personal=True`` is for a service whose events carry ``data["personal"]``:
    it is sealed with the aggregate's own key (:mod:`shared.pii`, the master
    key from ``PII_MASTER_KEY``) before it is stored, and unsealed when an
    aggregate is loaded (None once the aggregate's key was erased).
    """

    def __init__(
        self, service, migrations, event_schemas, project=None, upcasters=None, personal=False
    ):
        self.service = service
        self.migrations = migrations
        self.event_schemas = event_schemas
        self.project = project
        self.upcasters = upcasters or Upcasters()
        self.personal = personal

    def setup(self):
        self.config = configmod.load(self.service)
        self.protector = None
        if self.personal:
            from shared.pii import Protector

            self.protector = Protector.from_env()
        self.db = Database(self.config.database_url, size=20)
        migrate(self.db, MIGRATIONS, self.migrations)
        self.store = EventStore(self.db, self.config.source, self.upcasters)

    def stop(self):
        self.db.close()

    def kill(self):
        self.db.close()

    def get_dependency(self, worker_ctx):
        return Repository(self, worker_ctx)


class Repository:
    """A worker's access to its service's store and read models."""

    def __init__(self, provider, worker_ctx):
        self.provider = provider
        self.store = provider.store
        self.db = provider.db
        self.config = provider.config
        self.worker_ctx = worker_ctx

    def load(self, aggregate_cls, stream, id, what=None):
        """The aggregate rebuilt from its stream; NotFound if the stream has no events."""
        events = self.store.load(stream)
        if not events:
            raise NotFound(f"{what or aggregate_cls.__name__.lower()} {id} does not exist")
        protector = self.provider.protector
        if protector is not None:
            with self.db.connection() as conn:
                events = [e.with_data(protector.unseal(conn, e.data)) for e in events]
                conn.rollback()
        return aggregate_cls.replay(id, [(e.type, e.data, _meta(e)) for e in events])

    def save(self, *changes, command_id=None, causation_id=None):
        """Append the pending events of each ``(aggregate, stream)`` in one transaction.

        The expected version of each stream is the one its aggregate was loaded
        at, so a concurrent change to any of them is a Conflict and nothing is
        written. The service's projection statements run in the same transaction. A command retried
        with the same ``command_id`` stores nothing and returns what the first
        attempt stored. Returns the stored events.
        """
        sealed = iter(self._seal_all(changes))
        batches = []
        for aggregate, stream in changes:
            events = [
                self._event(stream, type_, next(sealed), meta, causation_id)
                for type_, _, meta in aggregate.pending
            ]
            batches.append((stream, aggregate.version - len(events), events))

        def project(stored):
            if self.provider.project is None:
                return []
            aggregates = [aggregate for aggregate, _ in changes]
            return self.provider.project(list(zip(aggregates, stored, strict=True)))

        appended = self.store.append_many(batches, command_id=command_id, project=project)
        for aggregate, _ in changes:
            aggregate.pending = []
        return appended.events

    def _seal_all(self, changes):
        """The data of every pending event of ``changes``, in order, each with its personal
        part sealed under its aggregate's key (if it has one).

        The keys are created in one transaction of their own, by one
        :meth:`shared.pii.Protector.seal_many` (the bulk path: an import of
        hundreds of residents makes their keys in one statement): a key without
        events is harmless, and the append stays one message.
        """
        items = [
            (aggregate.id, data) for aggregate, _ in changes for _, data, _ in aggregate.pending
        ]
        protector = self.provider.protector
        if protector is None or not any("personal" in data for _, data in items):
            return [data for _, data in items]
        with self.db.transaction() as conn:
            return protector.seal_many(conn, items)

    def _event(self, stream, type_, data, meta, causation_id):
        schema_cls = self.provider.event_schemas[type_]
        call_ids = self.worker_ctx.call_id_stack
        kwargs = {"time": datetime.fromisoformat(meta["time"])} if "time" in meta else {}
        return Event(
            type=type_,
            stream=stream,
            data=data,
            data_version=getattr(schema_cls, "version", 1),
            actor=meta.get("actor", {"id": "system", "role": "system"}),
            correlation_id=call_ids[0] if call_ids else None,
            causation_id=causation_id or self.worker_ctx.call_id,
            **kwargs,
        )


def _meta(event):
    return {"actor": event.actor, "time": event.time.isoformat()}
