"""The event envelope: CloudEvents 1.0 attributes plus rembug's own.

Every stored and every published event carries the same envelope. Published,
it is a CloudEvents JSON object (structured mode) whose extension attributes
are ``sequence`` (position in the source's log, gap-free), ``streamversion``,
``correlationid``, ``causationid``, ``dataversion`` (schema version of
``data``), ``actorid`` and ``actorrole``. ``source`` + ``id`` identifies an
event everywhere; consumers deduplicate on it (or on source + sequence).

An event's ``data["personal"]`` (everything that identifies or describes a
person, sealed per person in the store: :mod:`shared.pii`) never leaves its
service: the CloudEvents form carries the data without it.
"""

import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"
PERSONAL = "personal"


def utcnow():
    return datetime.now(UTC)


@dataclass(frozen=True)
class Event:
    """One event. ``sequence`` and ``version`` are set by the store when it is appended."""

    type: str
    stream: str
    data: dict
    data_version: int = 1
    actor: dict = field(default_factory=lambda: {"id": "system", "role": "system"})
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    time: datetime = field(default_factory=utcnow)
    correlation_id: str | None = None
    causation_id: str | None = None
    version: int | None = None
    sequence: int | None = None
    source: str | None = None

    def stored(self, source, version, sequence):
        """The same event as the store records it."""
        return replace(self, source=source, version=version, sequence=sequence)

    def with_data(self, data):
        """The same event carrying other data (sealed or unsealed personal part)."""
        return replace(self, data=data)

    def to_cloudevent(self):
        """The event as a CloudEvents 1.0 JSON object, without ``data["personal"]``."""
        data = self.data
        if PERSONAL in data:
            data = {key: value for key, value in data.items() if key != PERSONAL}
        return {
            "specversion": SPEC_VERSION,
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "subject": self.stream,
            "time": self.time.isoformat(),
            "datacontenttype": CONTENT_TYPE,
            "sequence": self.sequence,
            "streamversion": self.version,
            "correlationid": self.correlation_id,
            "causationid": self.causation_id,
            "dataversion": self.data_version,
            "actorid": self.actor.get("id"),
            "actorrole": self.actor.get("role"),
            "data": data,
        }

    @classmethod
    def from_cloudevent(cls, ce):
        """Read an event back from its CloudEvents JSON object."""
        return cls(
            type=ce["type"],
            stream=ce["subject"],
            data=ce["data"],
            data_version=ce.get("dataversion", 1),
            actor={"id": ce.get("actorid"), "role": ce.get("actorrole")},
            id=ce["id"],
            time=datetime.fromisoformat(ce["time"]),
            correlation_id=ce.get("correlationid"),
            causation_id=ce.get("causationid"),
            version=ce.get("streamversion"),
            sequence=ce.get("sequence"),
            source=ce["source"],
        )
