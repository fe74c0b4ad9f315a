"""Notify on the city node: the camat and bappeda hear what awaits their Musrenbang.

(Not ``services/notify/city.py``: that name is the hook of notify's own events'
city projection, :func:`shared.replication.city_projection`, which notify does
not need.)

What it sees. The kelurahan's proposals events come up to the city broker
(:mod:`shared.replication`); notify's own ingest (:func:`run`, ``python -m
services.notify.awaiting`` beside the city's notify) takes a copy of them from a
queue of its own on ``replication.up`` (``city.notify.proposals``) with the
platform's :class:`~shared.replication.Ingest`, which stores each event once per
source and sequence, in order, without gaps (asking a kelurahan to publish
again what it lacks), and runs :func:`fold` in the storing transaction: each
event takes effect exactly once. The city's own decisions (a camat's or
bappeda's ``decide`` on the city node) also come from the city proposals
service's log through notify's ordinary subscription, so bappeda hears of a
kecamatan acceptance at once, even while the kelurahan is offline. Both paths
move a proposal's stage only forward, so either may come first.

What it says. ``city_proposals`` holds each forwarded proposal's stage:
``kecamatan`` (forwarded, awaiting the Musrenbang Kecamatan), ``city``
(accepted there, awaiting the city's decision), ``done``. A kelurahan forwards
its proposals together, and a camat decides many at a sitting, so notices are
digests: once a group has been quiet for ``NOTIFY_DIGEST_SECONDS``,
:func:`notice_awaiting` (the dispatcher's housekeeping) tells the camat of the
kecamatan how many proposals of a kelurahan were forwarded and how many of
that kelurahan wait in all, and bappeda how many of a kecamatan were accepted
there and wait for the city; each proposal's stage is in one notice only. No
personal data: counts and place names.
"""

import hashlib
import logging
from datetime import timedelta

from services.notify import notifier, rules
from shared import config as configmod
from shared.process import stop_on_signals
from shared.replication import Ingest, code_of

log = logging.getLogger(__name__)

QUEUE = "city.notify.proposals"
RANK = {"kecamatan": 1, "city": 2, "done": 3}

ADVANCE = """
INSERT INTO city_proposals AS p (id, kelurahan, kecamatan, year, stage, stage_since)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::integer[], %s::text[],
                     %s::timestamptz[])
ON CONFLICT (id) DO UPDATE SET stage = excluded.stage, stage_since = excluded.stage_since,
    told = false
WHERE array_position(ARRAY['kecamatan', 'city', 'done'], excluded.stage)
    > array_position(ARRAY['kecamatan', 'city', 'done'], p.stage)
"""
"""Moves proposals to a later stage only (a stage told is not told again)."""


def stage_of(event):
    """``(proposal id, kelurahan, year, stage)`` an event puts a proposal in, or None."""
    data = event.data
    if event.type == "proposal.forwarded":
        kelurahan, year = data["forum_id"].rsplit("-", 1)
        return event.stream.removeprefix("proposal-"), kelurahan, int(year), "kecamatan"
    if event.type == "proposal.decided":
        kelurahan = data.get("kelurahan") or code_of(event.source)
        accepted_here = data["level"] == "kecamatan" and data["decision"] == "accepted"
        return data["proposal_id"], kelurahan, None, "city" if accepted_here else "done"
    return None


def fold(conn, events):
    """Bring ``city_proposals`` up to date with ``events`` (replicated or the city's own)."""
    stages, years = {}, {}
    for event in events:
        found = stage_of(event)
        if found is None:
            continue
        proposal_id, kelurahan, year, stage = found
        if year is not None:
            years[proposal_id] = year
        known = stages.get(proposal_id)
        if known is None or RANK[stage] > RANK[known[2]]:
            stages[proposal_id] = (kelurahan, event.time, stage)
    rows = {
        pid: (pid, kelurahan, kelurahan[:8], years.get(pid), stage, time)
        for pid, (kelurahan, time, stage) in stages.items()
    }
    if any(r[3] is None for r in rows.values()):
        _fill_years(conn, rows)
    if rows:
        conn.execute(ADVANCE, [list(c) for c in zip(*rows.values(), strict=True)])


def _fill_years(conn, rows):
    """A decision names no year: it is the forwarded proposal's. A decision on a proposal
    notify has not seen forwarded yet (the city's own decision overtaking notify's
    ingest) is left to the same decision replicated back up from the kelurahan."""
    ids = [i for i, r in rows.items() if r[3] is None]
    known = {
        r["id"]: r["year"]
        for r in conn.execute("SELECT id, year FROM city_proposals WHERE id = ANY(%s)", [ids])
    }
    for proposal_id in ids:
        if proposal_id in known:
            rows[proposal_id] = (*rows[proposal_id][:3], known[proposal_id], *rows[proposal_id][4:])
        else:
            del rows[proposal_id]


# -- digests ------------------------------------------------------------------------------

UNTOLD = """
SELECT id, kelurahan, kecamatan, year, stage, stage_since FROM city_proposals
WHERE NOT told AND stage IN ('kecamatan', 'city')
ORDER BY id FOR UPDATE SKIP LOCKED
"""
WAITING = """
SELECT kelurahan, kecamatan, year, stage, count(*) AS n FROM city_proposals
WHERE stage IN ('kecamatan', 'city') GROUP BY kelurahan, kecamatan, year, stage
"""


def notice_awaiting(db, node, channels, now, quiet_seconds):
    """Tell the camat and bappeda of every settled group of untold stages (see the module
    docstring); returns how many notifications were created."""
    settled_before = now - timedelta(seconds=quiet_seconds)
    total = 0
    with db.transaction() as conn:
        untold = conn.execute(UNTOLD).fetchall()
        if not untold:
            return 0
        groups = {}
        for row in untold:
            place = row["kelurahan"] if row["stage"] == "kecamatan" else row["kecamatan"]
            groups.setdefault((row["stage"], place, row["year"]), []).append(row)
        waiting = {}
        for row in conn.execute(WAITING).fetchall():
            place = row["kelurahan"] if row["stage"] == "kecamatan" else row["kecamatan"]
            key = (row["stage"], place, row["year"])
            waiting[key] = waiting.get(key, 0) + row["n"]
        told = []
        for (stage, place, year), rows in sorted(groups.items()):
            if max(r["stage_since"] for r in rows) > settled_before:
                continue  # still moving: wait until the group is quiet
            ids = [r["id"] for r in rows]
            builder = (
                rules.awaiting_kecamatan_notice
                if stage == "kecamatan"
                else rules.awaiting_city_notice
            )
            notice = builder(place, year, len(ids), waiting.get((stage, place, year), len(ids)))
            digest = hashlib.sha256(" ".join(ids).encode()).hexdigest()[:16]
            cause = f"city.awaiting_{stage}#{place}#{year}#{digest}"
            total += notifier.send_notice(conn, cause, notice.template, notice, node, channels, now)
            told += ids
        if told:
            conn.execute("UPDATE city_proposals SET told = true WHERE id = ANY(%s)", [told])
    return total


# -- the ingest ---------------------------------------------------------------------------


def ingest(cfg):
    """Notify's ingest of the kelurahan's proposals events on the city broker."""
    return Ingest(cfg.database_url, cfg.amqp_uri, "proposals", project=fold, queue=QUEUE)


def run(cfg, stop_event):
    """Run notify's ingest until ``stop_event`` is set (surviving outages)."""
    ingest(cfg).run_forever(stop_event)


def main():
    """``python -m services.notify.awaiting``: notify's ingest on the city node, until SIGTERM or
    SIGINT (its database migrated by the notify service)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    cfg = configmod.load("notify")
    if cfg.node_role != "city":
        raise SystemExit("services.notify.awaiting runs on the city node (NODE_ROLE=city)")
    stop = stop_on_signals()
    run(cfg, stop)


if __name__ == "__main__":
    main()
