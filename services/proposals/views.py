"""The proposals service's read models: written with their events, queried by RPC.

:func:`project` is the service's projection: its statements run in every
appending transaction, so a query right after a command sees the command's effect
(read-your-writes), and a view never shows an event that was not stored.
"""

from psycopg.types.json import Jsonb

from services.proposals.domain import STATUSES, Forum, Proposal
from services.proposals.schemas import (
    CityRankingEntry,
    ForumView,
    ProposalSummary,
    ProposalView,
    RankingEntry,
    proposal_summary,
)
from shared.errors import NotFound

PROPOSAL_FILTERS = ("kecamatan", "kelurahan", "rw", "status", "sector", "target_agency", "year")


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


def _conditions(filters, names):
    """An equality for each filter among ``names`` that is set (the names are the view's
    column names), and their parameters."""
    names = [name for name in names if filters.get(name) is not None]
    return [f"{name} = %s" for name in names], [filters[name] for name in names]


def _where(conditions):
    return ("WHERE " + " AND ".join(conditions)) if conditions else ""


def list_proposals(db, filters):
    """A page of proposal summaries, oldest first, with the total that match.

    Every filter (``kecamatan``, ``kelurahan``, ``rw``, ``status``, ``sector``,
    ``target_agency``, ``year``) that is not None must match exactly."""
    conditions, params = _conditions(filters, PROPOSAL_FILTERS)
    clause = _where(conditions)
    page, per_page = filters["page"], filters["per_page"]
    with db.read() as conn:
        total = conn.execute(f"SELECT count(*) AS n FROM proposal_view {clause}", params).fetchone()
        rows = conn.execute(
            f"SELECT view FROM proposal_view {clause} ORDER BY submitted_at, id LIMIT %s OFFSET %s",
            [*params, per_page, (page - 1) * per_page],
        ).fetchall()
    items = ProposalSummary(many=True).dump([proposal_summary(r["view"]) for r in rows])
    return {"items": items, "page": page, "per_page": per_page, "total": total["n"]}


def count_by_status(db, filters):
    """How many proposals are in each status (every status listed), and the total, among
    those matching the ``kecamatan``, ``kelurahan`` and ``year`` filters that are set."""
    conditions, params = _conditions(filters, ("kecamatan", "kelurahan", "year"))
    clause = _where(conditions)
    with db.read() as conn:
        rows = conn.execute(
            f"SELECT status, count(*) AS n FROM proposal_view {clause} GROUP BY status", params
        ).fetchall()
    counts = dict.fromkeys(STATUSES, 0) | {r["status"]: r["n"] for r in rows}
    return {**counts, "total": sum(counts.values())}


#: The city ranking's order, best first: the weighted score of the kelurahan scoring
#: (1-5, the forum's criteria weights normalised), then the kelurahan forum's rank, then
#: the earlier submission, then the proposal id (so no two proposals ever tie).
CITY_ORDER = "score_total DESC NULLS LAST, rank, submitted_at, id"
CITY_ORDER_DESCRIBED = "score_total desc, forum_rank, submitted_at, id"
_RANKING_FILTERS = ("kecamatan", "kelurahan", "sector", "target_agency", "status")


def city_ranking(db, query):
    """The proposals kelurahan forums forwarded for plan year ``query["year"]``, whatever
    became of them since, ranked city-wide in :data:`CITY_ORDER`.

    Each entry's ``position`` (city, kecamatan, sector, target agency) is counted
    among all of that year's forwarded proposals, before any filter: a filtered or
    grouped page shows the positions the whole list has. Entries come in city
    order, or with ``group_by`` group after group (by code or name), in the group's
    order. ``total`` counts the entries that match the filters."""
    conditions, params = _conditions(query, _RANKING_FILTERS)
    clause = _where(conditions)
    order = "city_position"
    if query["group_by"] is not None:
        order = f"{query['group_by']}, {query['group_by']}_position"
    sql = f"""
        WITH ranked AS (
            SELECT id::text AS id, kecamatan, kelurahan, year, sector, target_agency, rw,
                   status, score_total, rank, submitted_at, view,
                   row_number() OVER (ORDER BY {CITY_ORDER}) AS city_position,
                   row_number() OVER (PARTITION BY kecamatan ORDER BY {CITY_ORDER})
                       AS kecamatan_position,
                   row_number() OVER (PARTITION BY sector ORDER BY {CITY_ORDER})
                       AS sector_position,
                   row_number() OVER (PARTITION BY target_agency ORDER BY {CITY_ORDER})
                       AS target_agency_position
            FROM proposal_view WHERE year = %s AND rank IS NOT NULL
        )
        SELECT *, count(*) OVER () AS total FROM ranked {clause}
        ORDER BY {order} LIMIT %s OFFSET %s"""
    with db.read() as conn:
        rows = conn.execute(
            sql, [query["year"], *params, query["limit"], query["offset"]]
        ).fetchall()
        if rows:
            total = rows[0]["total"]
        else:  # past the end, or nothing matches
            where = _where(["year = %s", "rank IS NOT NULL", *conditions])
            total = conn.execute(
                f"SELECT count(*) AS n FROM proposal_view {where}", [query["year"], *params]
            ).fetchone()["n"]
    items = CityRankingEntry(many=True).dump([_city_entry(r) for r in rows])
    return {
        "year": query["year"],
        "order": CITY_ORDER_DESCRIBED,
        "items": items,
        "limit": query["limit"],
        "offset": query["offset"],
        "total": total,
    }


def _city_entry(row):
    view = row["view"]
    return {
        "id": row["id"],
        "kecamatan": row["kecamatan"],
        "kelurahan": row["kelurahan"],
        "year": row["year"],
        "title": view["title"],
        "sector": row["sector"],
        "target_agency": row["target_agency"],
        "rw": row["rw"],
        "estimated_cost": view["estimated_cost"],
        "status": row["status"],
        "score_total": row["score_total"],
        "forum_id": view.get("forum_id"),
        "forum_rank": row["rank"],
        "submitted_at": row["submitted_at"].isoformat(),
        "position": {
            "city": row["city_position"],
            "kecamatan": row["kecamatan_position"],
            "sector": row["sector_position"],
            "target_agency": row["target_agency_position"],
        },
    }


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
