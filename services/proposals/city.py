"""The proposals of every kelurahan as the city node sees them.

:func:`project` is the city's projection of replicated proposal and forum
events (:mod:`shared.replication`): it runs in the transaction that stores
them, rebuilding each touched proposal and forum from its replicated stream
with the kelurahan's own domain code, into the same read models a kelurahan
has (``proposal_view``, ``forum_view``). The city's proposals service answers
lists by kecamatan, sector and target agency, and the city ranking, from them.
"""

from types import SimpleNamespace

from services.proposals import views
from services.proposals.domain import Forum, Proposal

KINDS = {"proposal": Proposal, "forum": Forum}


def project(conn, events):
    """Bring the city's views of every proposal and forum in ``events`` up to date: one
    query reads every touched stream, and the upserts go as one batch per view."""
    touched = sorted({(e.source, e.stream) for e in events if e.stream.split("-", 1)[0] in KINDS})
    if not touched:
        return
    rows = conn.execute(
        f"SELECT source, stream, {_COLUMNS} FROM replica_events"
        " WHERE (source, stream) IN (SELECT * FROM unnest(%s::text[], %s::text[]))"
        " ORDER BY source, stream, sequence",
        [[source for source, _ in touched], [stream for _, stream in touched]],
    ).fetchall()
    by_stream = {}
    for row in rows:
        by_stream.setdefault((row["source"], row["stream"]), []).append(row)
    upserts = {}
    for (_, stream), stream_rows in by_stream.items():
        aggregate = _rebuilt(stream, stream_rows)
        first = [SimpleNamespace(time=stream_rows[0]["time"])]
        for sql, params in views.project([(aggregate, first)]):
            upserts.setdefault(sql, []).append(params)
    with conn.cursor() as cursor:
        for sql, params in upserts.items():
            cursor.executemany(sql, params)


_COLUMNS = "type, data, time, actor_id, actor_role"


def replicated(conn, source, stream):
    """The proposal or forum of a replicated stream rebuilt from its events, and the
    time of its first event."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM replica_events WHERE source = %s AND stream = %s"
        " ORDER BY sequence",
        [source, stream],
    ).fetchall()
    return _rebuilt(stream, rows), rows[0]["time"]


def _rebuilt(stream, rows):
    kind, _, id_ = stream.partition("-")
    return KINDS[kind].replay(
        id_,
        [
            (
                r["type"],
                r["data"],
                {
                    "actor": {"id": r["actor_id"], "role": r["actor_role"]},
                    "time": r["time"].isoformat(),
                },
            )
            for r in rows
        ],
    )


def find_source(conn, proposal_id):
    """The source (kelurahan) whose log holds a proposal, or None."""
    row = conn.execute(
        "SELECT source FROM replica_events WHERE stream = %s LIMIT 1",
        [f"proposal-{proposal_id}"],
    ).fetchone()
    return row and row["source"]
