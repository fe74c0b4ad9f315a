"""Prometheus metrics of a service, in the text exposition format (version 0.0.4).

A metric is a name, a help text, a type and a collector: a function that takes
the service's :class:`~shared.repository.Repository` (``.db``, ``.store``,
``.config``) and returns its value, either a number or an iterable of
``(labels, value)`` pairs for a labelled metric (``None`` leaves a sample out).
Collectors run when ``GET /metrics`` is scraped, against the service's own
database; they read, never write. Any module adds its own::

    from shared import metrics

    @metrics.register("rembug_outbox_pending", "Messages waiting in the outbox")
    def outbox_pending(repo):
        with repo.db.read() as conn:
            return conn.execute("SELECT count(*) AS n FROM outbox").fetchone()["n"]

Every sample carries the labels ``service`` and ``kelurahan`` (the node's code,
``32.75`` on the city node). A collector that fails (a table that does not
exist yet, a database that does not answer) is logged by exception type and
its metric left out of that scrape; the others are still served.

Built in: events stored (the log head), events relayed and relay lag per
target (``relay_positions``), and, where a database keeps
``replication_positions(source, position, source_head, received_at)``,
replication lag per source in events and seconds.
"""

import logging
import math
from dataclasses import dataclass

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
TYPES = ("gauge", "counter", "untyped")


@dataclass(frozen=True)
class Metric:
    name: str
    help: str
    collect: object
    type: str = "gauge"


class Registry:
    """Metrics by name, rendered in the order they were registered."""

    def __init__(self):
        self._metrics = {}

    def register(self, name, help, fn=None, type="gauge"):
        """Add (or replace) metric ``name``; usable as a decorator when ``fn`` is omitted."""
        if type not in TYPES:
            raise ValueError(f"metric type must be one of {TYPES}, not {type!r}")

        def add(fn):
            self._metrics[name] = Metric(name, help, fn, type)
            return fn

        return add if fn is None else add(fn)

    def unregister(self, name):
        self._metrics.pop(name, None)

    def names(self):
        return list(self._metrics)

    def render(self, repo, constant_labels=None):
        """Every metric's samples for ``repo``'s service, as exposition text."""
        constant = dict(constant_labels or {})
        lines = []
        for metric in list(self._metrics.values()):
            try:
                samples = _samples(metric.collect(repo))
            except Exception as exc:  # one broken collector must not hide the others
                log.warning("metric %s not collected: %s", metric.name, type(exc).__name__)
                continue
            lines.append(f"# HELP {metric.name} {_escape_help(metric.help)}")
            lines.append(f"# TYPE {metric.name} {metric.type}")
            for labels, value in samples:
                if value is None:
                    continue
                lines.append(
                    f"{metric.name}{_labels({**constant, **labels})} {_format_value(value)}"
                )
        return "\n".join(lines) + "\n"


REGISTRY = Registry()


def register(name, help, fn=None, type="gauge"):
    """Register a metric in the registry every service serves (see the module docstring)."""
    return REGISTRY.register(name, help, fn, type)


def render(repo):
    """The exposition text of every registered metric for ``repo``'s service."""
    config = repo.config
    return REGISTRY.render(repo, {"service": config.service, "kelurahan": config.kelurahan_code})


def _samples(value):
    if value is None:
        return []
    if isinstance(value, (int, float)):
        return [({}, value)]
    return [(dict(labels), v) for labels, v in value]


def _escape_help(text):
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels):
    if not labels:
        return ""
    inner = ",".join(f'{key}="{_escape_label(value)}"' for key, value in labels.items())
    return "{" + inner + "}"


def _format_value(value):
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


# -- built in ---------------------------------------------------------------------------------


def _relay_rows(repo):
    """``(target, position, head)`` for the service's own exchange and every other target."""
    with repo.db.read() as conn:
        head = conn.execute("SELECT sequence FROM log_head").fetchone()["sequence"]
        positions = {
            r["target"]: r["position"]
            for r in conn.execute("SELECT target, position FROM relay_positions")
        }
    positions.setdefault(f"{repo.config.service}.events", 0)  # before the relay's first batch
    return head, sorted(positions.items())


@register(
    "rembug_events_stored_total", "Events in this service's log (the log head)", type="counter"
)
def events_stored(repo):
    return repo.store.head()


@register(
    "rembug_events_relayed_total",
    "Events the broker has confirmed, per relay target (the relay's position)",
    type="counter",
)
def events_relayed(repo):
    _, rows = _relay_rows(repo)
    return [({"target": target}, position) for target, position in rows]


@register("rembug_relay_lag_events", "Events stored but not yet relayed, per target")
def relay_lag(repo):
    head, rows = _relay_rows(repo)
    return [({"target": target}, max(0, head - position)) for target, position in rows]


REPLICATION_QUERY = """
SELECT source,
       source_head - position AS events,
       extract(epoch FROM now() - received_at)::float8 AS seconds,
       diverged_at IS NOT NULL AS diverged
  FROM replication_positions
 ORDER BY source
"""


def _replication(repo):
    with repo.db.read() as conn:
        if conn.execute("SELECT to_regclass('replication_positions') AS t").fetchone()["t"] is None:
            return []
        return conn.execute(REPLICATION_QUERY).fetchall()


@register(
    "rembug_replication_lag_events",
    "Events a source has that this node has not received yet (source head - position)",
)
def replication_lag_events(repo):
    return [({"source": r["source"]}, _not_below_zero(r["events"])) for r in _replication(repo)]


@register(
    "rembug_replication_lag_seconds",
    "Seconds since this node last received an event from the source",
)
def replication_lag_seconds(repo):
    return [({"source": r["source"]}, _not_below_zero(r["seconds"])) for r in _replication(repo)]


@register(
    "rembug_replication_diverged",
    "1 while this node refuses a source's events because its log differs from the history"
    " stored here (a kelurahan store reset or restored; see shared.replication), else 0",
)
def replication_diverged(repo):
    return [({"source": r["source"]}, int(r["diverged"])) for r in _replication(repo)]


def _not_below_zero(value):
    """A lag, never negative (a clock or a head read a moment apart); None stays unknown."""
    return None if value is None else max(value, 0)
