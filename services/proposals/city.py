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
    """Bring the city's views of every proposal and forum in ``events`` up to date."""
    touched = {(e.source, e.stream) for e in events if e.stream.split("-", 1)[0] in KINDS}
    for source, stream in sorted(touched):
        aggregate, first = replicated(conn, source, stream)
        for sql, params in views.project([(aggregate, [SimpleNamespace(time=first)])]):
            conn.execute(sql, params)


def replicated(conn, source, stream):
    """The proposal or forum of a replicated stream rebuilt from its events, and the
    time of its first event."""
    kind, _, id_ = stream.partition("-")
    rows = conn.execute(
        "SELECT type, data, time, actor_id, actor_role FROM replica_events"
        " WHERE source = %s AND stream = %s ORDER BY sequence",
        [source, stream],
    ).fetchall()
    aggregate = KINDS[kind].replay(
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
    return aggregate, rows[0]["time"]


def find_source(conn, proposal_id):
    """The source (kelurahan) whose log holds a proposal, or None."""
    row = conn.execute(
        "SELECT source FROM replica_events WHERE stream = %s LIMIT 1",
        [f"proposal-{proposal_id}"],
    ).fetchone()
    return row and row["source"]
