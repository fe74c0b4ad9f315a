"""The proposals service's read models: written with their events, queried by RPC.

:func:`project` is the service's projection: its statements run in every
appending transaction, so a query right after a command sees the command's effect
(read-your-writes), and a view never shows an event that was not stored.
"""

from psycopg.types.json import Jsonb

from services.proposals.domain import STATUSES, Forum, Proposal
from services.proposals.schemas import (
    ForumView,
    ProposalSummary,
    ProposalView,
    RankingEntry,
    proposal_summary,
)
from shared.errors import NotFound

PROPOSAL_FILTERS = ("kelurahan", "rw", "status", "sector", "year")


def project(changes):
    """The statements that upsert the view of every proposal and forum a command changed."""
    statements = []
    for aggregate, events in changes:
        if isinstance(aggregate, Proposal):
            statements.append(_upsert_proposal(aggregate.snapshot(copy=False), events[0].time))
        elif isinstance(aggregate, Forum):
            statements.append(_upsert_forum(aggregate.snapshot(copy=False)))
    return statements


def _upsert_proposal(view, time):
    return (
        "INSERT INTO proposal_view (id, kelurahan, year, rw, status, sector, score_total, rank,"
        " submitted_at, version, view) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (id) DO UPDATE SET rw = excluded.rw, status = excluded.status,"
        " sector = excluded.sector, score_total = excluded.score_total, rank = excluded.rank,"
        " version = excluded.version, view = excluded.view",
        [
            view["id"],
            view["kelurahan"],
            view["year"],
            view["location"]["rw"],
            view["status"],
            view["sector"],
            view["score_total"],
            view["rank"],
            time,
            view["version"],
            Jsonb(view),
        ],
    )


def _upsert_forum(view):
    return (
        "INSERT INTO forum_view (id, kelurahan, year, version, view) VALUES (%s, %s, %s, %s, %s)"
        " ON CONFLICT (id) DO UPDATE SET version = excluded.version, view = excluded.view",
        [view["id"], view["kelurahan"], view["year"], view["version"], Jsonb(view)],
    )


def get_proposal(db, proposal_id):
    """One proposal with its full history; NotFound if it does not exist."""
    with db.read() as conn:
        row = conn.execute("SELECT view FROM proposal_view WHERE id = %s", [proposal_id]).fetchone()
    if row is None:
        raise NotFound(f"proposal {proposal_id} does not exist")
    return ProposalView().dump(row["view"])


def list_proposals(db, filters):
    """A page of proposal summaries, oldest first, with the total that match."""
    where, params = [], []
    for name in PROPOSAL_FILTERS:
        if filters.get(name) is not None:
            where.append(f"{name} = %s")
            params.append(filters[name])
    if filters.get("kecamatan"):
        where.append("kelurahan LIKE %s")
        params.append(filters["kecamatan"] + ".%")
    clause = ("WHERE " + " AND ".join(where)) if where else ""
    page, per_page = filters["page"], filters["per_page"]
    with db.read() as conn:
        total = conn.execute(f"SELECT count(*) AS n FROM proposal_view {clause}", params).fetchone()
        rows = conn.execute(
            f"SELECT view FROM proposal_view {clause} ORDER BY submitted_at, id LIMIT %s OFFSET %s",
            [*params, per_page, (page - 1) * per_page],
        ).fetchall()
    items = ProposalSummary(many=True).dump([proposal_summary(r["view"]) for r in rows])
    return {"items": items, "page": page, "per_page": per_page, "total": total["n"]}


def count_by_status(db, kelurahan, year=None):
    """How many proposals are in each status (every status listed), and the total."""
    sql = "SELECT status, count(*) AS n FROM proposal_view WHERE kelurahan = %s"
    params = [kelurahan]
    if year is not None:
        sql += " AND year = %s"
        params.append(year)
    with db.read() as conn:
        rows = conn.execute(sql + " GROUP BY status", params).fetchall()
    counts = dict.fromkeys(STATUSES, 0) | {r["status"]: r["n"] for r in rows}
    return {**counts, "total": sum(counts.values())}


def scored_candidates(db, kelurahan, year):
    """Verified, scored proposals of a plan year, best total first: the default ranking."""
    with db.read() as conn:
        rows = conn.execute(
            "SELECT id::text AS id, score_total FROM proposal_view"
            " WHERE kelurahan = %s AND year = %s AND status = 'verified'"
            " AND score_total IS NOT NULL ORDER BY score_total DESC, submitted_at, id",
            [kelurahan, year],
        ).fetchall()
    return [{"proposal_id": r["id"], "total": r["score_total"]} for r in rows]


def get_forum(db, forum_id):
    """A forum with its ranking, each entry with the proposal's title, RW, sector, cost."""
    with db.read() as conn:
        row = conn.execute("SELECT view FROM forum_view WHERE id = %s", [forum_id]).fetchone()
        if row is None:
            raise NotFound(f"forum {forum_id} does not exist")
        view = row["view"]
        ids = [entry["proposal_id"] for entry in view["ranking"]]
        proposals = {
            r["id"]: r["view"]
            for r in conn.execute(
                "SELECT id::text AS id, view FROM proposal_view WHERE id = ANY(%s::uuid[])", [ids]
            )
        }
    view["ranking"] = [
        _ranking_entry(i, e, proposals.get(e["proposal_id"]))
        for i, e in enumerate(view["ranking"], 1)
    ]
    return ForumView().dump(view)


def _ranking_entry(rank, entry, proposal):
    detail = {}
    if proposal is not None:
        detail = {
            "title": proposal["title"],
            "rw": proposal["location"]["rw"],
            "sector": proposal["sector"],
            "estimated_cost": proposal["estimated_cost"],
        }
    return RankingEntry().dump({"rank": rank, **entry, **detail})
