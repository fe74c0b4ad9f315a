"""Watch everything that leaves a service during the test session for personal data.

What is watched: every log record (formatted), every error text a service
sends back to a caller, and every CloudEvent produced (what the relay
publishes and replay returns). What counts as a leak: a NIK-shaped number (16
digits standing alone) or the name of a resident the tests generated
(:func:`remember_name` is called by the resident factory). The session fails
when anything leaked, with where it was seen, never the value itself.
"""

import contextlib
import json
import logging
import re
from functools import wraps

from shared.logs import RedactPersonalData

NIK_SHAPED = re.compile(r"(?<!\d)\d{16}(?!\d)")
_names = set()
_seen = []  # (where, text)


def remember_name(name):
    """A generated resident's name: it must never be seen outside the service."""
    _names.add(name.lower())


def record(where, text):
    _seen.append((where, text))


class _Collector(logging.Handler):
    """Sees each record as the deployed console handler would print it."""

    def emit(self, record_):
        with contextlib.suppress(Exception):  # a broken record must not break the run
            record(f"log {record_.name}", self.format(record_))


def install():
    """Start watching logs, error replies and CloudEvents for the session."""
    root = logging.getLogger()
    collector = _Collector(level=logging.DEBUG)
    collector.addFilter(RedactPersonalData())  # as deploy/nameko.yaml configures it
    root.addHandler(collector)
    if root.level > logging.INFO:
        root.setLevel(logging.INFO)

    import nameko.rpc

    from shared.envelope import Event

    serialize = nameko.rpc.serialize

    @wraps(serialize)
    def watched_serialize(exc):
        result = serialize(exc)
        record("error reply", json.dumps(result, default=str))
        return result

    nameko.rpc.serialize = watched_serialize

    to_cloudevent = Event.to_cloudevent

    @wraps(to_cloudevent)
    def watched_to_cloudevent(self):
        result = to_cloudevent(self)
        record(f"cloudevent {result['type']}", json.dumps(result, default=str))
        return result

    Event.to_cloudevent = watched_to_cloudevent


def findings(seen=None, names=None):
    """Where personal data was seen: ``[(where, kind)]``, the values left out."""
    seen = _seen if seen is None else seen
    names = _names if names is None else names
    found = []
    for where, text in seen:
        if NIK_SHAPED.search(text):
            found.append((where, "a NIK-shaped number"))
        lowered = text.lower()
        if any(name in lowered for name in names):
            found.append((where, "a generated resident's name"))
    return found


def watched():
    """How many texts were examined, and how many names are watched for."""
    return len(_seen), len(_names)
