"""Every kelurahan's budget realisation and outstanding advances, on the city node.

:func:`project` runs in the city's ingest transaction (:mod:`shared.replication`):
planned and revised lines, spending on lines (from each posted transaction's
entries that name a line) and advances with what is still owed.
:func:`realisation` reports them per kelurahan.
"""

from datetime import date

from shared import wilayah
from shared.replication import code_of


def project(conn, events):
    """Fold replicated budget events into the city's tables, in log order."""
    for event in events:
        code, data = code_of(event.source), event.data
        if event.type in ("line.planned", "line.revised"):
            line_id = data.get("line_id") or event.stream.removeprefix("line-")
            conn.execute(
                "INSERT INTO city_lines (kelurahan, line_id, fiscal_year, allocated)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (kelurahan, line_id)"
                " DO UPDATE SET allocated = excluded.allocated",
                [code, line_id, int(line_id[:4]), data["allocated"]],
            )
        elif event.type == "transaction.posted":
            for position, entry in enumerate(data["entries"], 1):
                if entry.get("line_id"):
                    conn.execute(
                        "INSERT INTO city_spending VALUES (%s, %s, %s, %s, %s, %s)"
                        " ON CONFLICT DO NOTHING",
                        [
                            code,
                            data["transaction_id"],
                            position,
                            data["date"],
                            entry["line_id"],
                            (entry.get("debit") or 0) - (entry.get("credit") or 0),
                        ],
                    )
        elif event.type == "advance.recorded":
            conn.execute(
                "INSERT INTO city_advances VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                [code, data["advance_id"], data["paid_on"], data["amount"], data["amount"]],
            )
        elif event.type == "advance.reimbursed":
            conn.execute(
                "UPDATE city_advances SET outstanding = %s WHERE kelurahan = %s AND advance_id = %s",
                [data["outstanding"], code, data["advance_id"]],
            )


def realisation(db, fiscal_year, today):
    """Per kelurahan: allocated and realised in a fiscal year, and advances still owed
    (how many, how much, the oldest's age in days)."""
    with db.read() as conn:
        rows = conn.execute(
            "SELECT l.kelurahan, sum(l.allocated)::bigint AS allocated,"
            " coalesce(sum(s.spent), 0)::bigint AS realised"
            " FROM city_lines l LEFT JOIN (SELECT kelurahan, line_id, sum(amount) AS spent"
            "  FROM city_spending GROUP BY 1, 2) s USING (kelurahan, line_id)"
            " WHERE l.fiscal_year = %s GROUP BY 1",
            [fiscal_year],
        ).fetchall()
        owed = conn.execute(
            "SELECT kelurahan, count(*) AS advances, sum(outstanding)::bigint AS outstanding,"
            " min(paid_on) AS oldest FROM city_advances WHERE outstanding > 0 GROUP BY 1"
        ).fetchall()
    advances = {r["kelurahan"]: r for r in owed}
    report = []
    for code in sorted({r["kelurahan"] for r in rows} | set(advances)):
        line = next((r for r in rows if r["kelurahan"] == code), None)
        debt = advances.get(code)
        report.append(
            {
                "kelurahan": code,
                "name": wilayah.name_of(code),
                "allocated": line["allocated"] if line else 0,
                "realised": line["realised"] if line else 0,
                "advances_outstanding": debt["outstanding"] if debt else 0,
                "advances_count": debt["advances"] if debt else 0,
                "oldest_advance_days": (date.fromisoformat(today) - debt["oldest"]).days
                if debt
                else None,
            }
        )
    return {"fiscal_year": fiscal_year, "kelurahan": report}
