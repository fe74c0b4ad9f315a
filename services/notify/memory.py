"""What notify remembers of other services' entities, written in the event's own transaction.

Later events do not repeat what notify needs to address them: a decision
names the proposal, not its title or its proposer; a ranking names no
delegates. A merged duplicate's proposer (and the co-proposers it had
gathered) joins the survivor's ``co_proposers``, so they keep hearing of the
proposal their request lives on in. :func:`remember` folds the few facts in (``known_proposals``,
``known_forums``, ``desk_requests``) on the subscription's connection, so they
commit with the consumer's position; :class:`Memory` reads them back.
Nothing here is personal data: titles, RW numbers, pseudonymous user ids.
"""

from datetime import timedelta

SERVICE_TARGET = timedelta(hours=24)


class Memory:
    """Lookups on one connection (the subscription's transaction)."""

    def __init__(self, conn):
        self.conn = conn

    def proposal(self, proposal_id):
        return self.conn.execute(
            "SELECT title, rw, proposer, co_proposers, co_rws FROM known_proposals WHERE id = %s",
            [proposal_id],
        ).fetchone()

    def forum(self, forum_id):
        return self.conn.execute(
            "SELECT year, delegates FROM known_forums WHERE id = %s", [forum_id]
        ).fetchone()

    def request(self, request_id):
        return self.conn.execute(
            "SELECT kind, rw FROM desk_requests WHERE id = %s", [request_id]
        ).fetchone()


def remember(conn, event):
    """Fold what later notices need of ``event`` into notify's memory."""
    data = event.data
    if event.type == "proposal.submitted":
        conn.execute(
            "INSERT INTO known_proposals (id, kelurahan, title, rw, proposer)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
            [
                event.stream.removeprefix("proposal-"),
                data["kelurahan"],
                data["title"],
                data["proposer"].get("rw") or data["location"]["rw"],
                event.actor.get("id"),
            ],
        )
    elif event.type == "proposal.revised" and "title" in data.get("changes", {}):
        conn.execute(
            "UPDATE known_proposals SET title = %s WHERE id = %s",
            [data["changes"]["title"], event.stream.removeprefix("proposal-")],
        )
    elif event.type == "proposal.merged":
        conn.execute(MERGE, {"survivor": data["survivor_id"], "merged": _id(event, "proposal-")})
    elif event.type == "forum.scheduled":
        conn.execute(
            "INSERT INTO known_forums (id, kelurahan, year) VALUES (%s, %s, %s)"
            " ON CONFLICT (id) DO NOTHING",
            [event.stream.removeprefix("forum-"), data["kelurahan"], data["year"]],
        )
    elif event.type == "forum.held":
        conn.execute(
            "UPDATE known_forums SET delegates = %s WHERE id = %s",
            [[d["delegate_id"] for d in data["delegates"]], event.stream.removeprefix("forum-")],
        )
    elif event.type == "request.raised":
        conn.execute(
            "INSERT INTO desk_requests (id, kelurahan, kind, rw, due_at)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
            [
                event.stream.removeprefix("request-"),
                data["kelurahan"],
                data["kind"],
                data["public"]["rw"],
                event.time + SERVICE_TARGET,
            ],
        )
    elif event.type in ("request.done", "request.cancelled"):
        conn.execute(
            "UPDATE desk_requests SET closed = true WHERE id = %s",
            [event.stream.removeprefix("request-")],
        )


MERGE = """
UPDATE known_proposals s SET
    co_proposers = ARRAY(SELECT DISTINCT u FROM unnest(s.co_proposers || m.proposer || m.co_proposers) u
                         WHERE u <> s.proposer),
    co_rws = ARRAY(SELECT DISTINCT r FROM unnest(s.co_rws || m.rw || m.co_rws) r
                   WHERE r IS NOT NULL AND r IS DISTINCT FROM s.rw)
FROM known_proposals m
WHERE s.id = %(survivor)s AND m.id = %(merged)s
"""
"""A merged duplicate's proposer, co-proposers and their RWs join the survivor's."""


def _id(event, prefix):
    return event.stream.removeprefix(prefix)


def due_breaches(conn, now, limit=100):
    """Open requests past their target whose breach was not noticed yet, locked for this
    transaction (another notify process skips them)."""
    return conn.execute(
        "SELECT id, kind, rw FROM desk_requests WHERE NOT closed AND NOT breach_noticed"
        " AND due_at <= %s ORDER BY due_at LIMIT %s FOR UPDATE SKIP LOCKED",
        [now, limit],
    ).fetchall()


def breach_noticed(conn, request_id):
    conn.execute("UPDATE desk_requests SET breach_noticed = true WHERE id = %s", [request_id])
