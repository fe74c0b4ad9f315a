"""The budget's reports, computed from the journal (``ledger_entry``) as of any date.

Each report is a list of rows (dicts of JSON-native values) with totals;
:func:`to_csv` writes any of them as CSV for a spreadsheet. Money is whole
rupiah throughout.
"""

import csv
import io
from datetime import date

from services.budget.domain import DEBIT_NORMAL, DEFAULT_ACCOUNTS, account_kind

MONTHS = range(1, 13)


def realisation(db, fiscal_year, as_of):
    """Per budget line: allocation, what was spent in each month up to ``as_of``, the
    total, what remains and the share used; spending on no line is left out."""
    with db.read() as conn:
        lines = conn.execute(
            "SELECT id, activity, view->>'activity_name' AS activity_name, category,"
            " view->>'source' AS source, allocated FROM line_view WHERE fiscal_year = %s"
            " ORDER BY id",
            [fiscal_year],
        ).fetchall()
        spent = conn.execute(
            "SELECT e.line_id, extract(month FROM e.date)::int AS month,"
            " sum(e.debit - e.credit)::bigint AS amount"
            " FROM line_view l JOIN ledger_entry e ON e.line_id = l.id AND e.date <= %s"
            " WHERE l.fiscal_year = %s GROUP BY 1, 2",
            [as_of, fiscal_year],
        ).fetchall()
    by_line = {}
    for row in spent:
        by_line.setdefault(row["line_id"], {})[row["month"]] = row["amount"]
    rows = []
    for line in lines:
        months = by_line.get(line["id"], {})
        total = sum(months.values())
        rows.append(
            {
                **line,
                **{f"m{m:02d}": months.get(m, 0) for m in MONTHS},
                "realised": total,
                "remaining": line["allocated"] - total,
                "percent": round(total * 100 / line["allocated"], 1),
            }
        )
    allocated = sum(r["allocated"] for r in rows)
    realised = sum(r["realised"] for r in rows)
    return {
        "fiscal_year": fiscal_year,
        "as_of": as_of,
        "lines": rows,
        "totals": {"allocated": allocated, "realised": realised, "remaining": allocated - realised},
    }


def outstanding_advances(db, as_of):
    """Per person: each advance still owed on ``as_of`` (amount, outstanding, age in days),
    and what the person is owed in all; oldest first."""
    with db.read() as conn:
        rows = conn.execute(
            "SELECT a.id::text AS advance_id, a.person_id, a.line_id, a.paid_on::text,"
            " a.amount, a.view->>'description' AS description,"
            " sum(e.credit - e.debit)::bigint AS outstanding"
            " FROM advance_view a JOIN ledger_entry e ON e.ref_id = a.id::text"
            " AND e.account LIKE 'payable.%%' AND e.date <= %s"
            " WHERE a.paid_on <= %s GROUP BY a.id HAVING sum(e.credit - e.debit) > 0"
            " ORDER BY a.person_id, a.paid_on, a.id",
            [as_of, as_of],
        ).fetchall()
    day = date.fromisoformat(as_of)
    people = {}
    for row in rows:
        row["age_days"] = (day - date.fromisoformat(row["paid_on"])).days
        person = people.setdefault(
            row["person_id"], {"person_id": row["person_id"], "outstanding": 0, "advances": []}
        )
        person["outstanding"] += row["outstanding"]
        person["advances"].append(row)
    return {
        "as_of": as_of,
        "people": list(people.values()),
        "total": sum(p["outstanding"] for p in people.values()),
    }


def binwas_costs(db, fiscal_year):
    """Per RW: supervision activities planned and held in a fiscal year, and what they
    cost (paid expenses and advances naming them)."""
    with db.read() as conn:
        rows = conn.execute(
            "WITH costs AS ("
            "  SELECT activity_id, amount FROM expense_view"
            "  WHERE status = 'paid' AND activity_id IS NOT NULL"
            "  UNION ALL SELECT activity_id, amount FROM advance_view WHERE activity_id IS NOT NULL),"
            " per_activity AS ("
            "  SELECT a.id, a.rw, a.status, coalesce(sum(c.amount), 0)::bigint AS cost"
            "  FROM activity_view a LEFT JOIN costs c ON c.activity_id = a.id"
            "  WHERE a.fiscal_year = %s GROUP BY a.id)"
            " SELECT rw, count(*) FILTER (WHERE status <> 'cancelled') AS activities,"
            " count(*) FILTER (WHERE status = 'held') AS held, sum(cost)::bigint AS cost"
            " FROM per_activity GROUP BY rw ORDER BY rw NULLS LAST",
            [fiscal_year],
        ).fetchall()
    return {"fiscal_year": fiscal_year, "rws": rows, "total": sum(r["cost"] for r in rows)}


def trial_balance(db, as_of):
    """Every account's debits, credits and balance (on its normal side) up to ``as_of``;
    the debits and credits of the whole journal are equal."""
    with db.read() as conn:
        rows = conn.execute(
            "SELECT e.account, coalesce(a.name, '') AS name, sum(e.debit)::bigint AS debit,"
            " sum(e.credit)::bigint AS credit FROM ledger_entry e"
            " LEFT JOIN account_view a ON a.code = e.account"
            " WHERE e.date <= %s GROUP BY e.account, a.name ORDER BY e.account",
            [as_of],
        ).fetchall()
    for row in rows:
        row["name"] = row["name"] or DEFAULT_ACCOUNTS.get(row["account"], "")
        row["balance"] = balance(row["account"], row["debit"], row["credit"])
    return {
        "as_of": as_of,
        "accounts": rows,
        "totals": {
            "debit": sum(r["debit"] for r in rows),
            "credit": sum(r["credit"] for r in rows),
        },
    }


def balance(account, debit, credit):
    """An account's balance on its normal side: debit-normal assets and expenses,
    credit-normal sources and payables."""
    return debit - credit if account_kind(account) in DEBIT_NORMAL else credit - debit


def account_entries(db, account, date_from, date_to, page, per_page):
    """An account's entries in date order with the running balance, a page at a time."""
    where, params = ["account = %s"], [account]
    if date_from:
        where.append("date >= %s")
        params.append(date_from)
    if date_to:
        where.append("date <= %s")
        params.append(date_to)
    sign = 1 if account_kind(account) in DEBIT_NORMAL else -1
    with db.read() as conn:
        total = conn.execute(
            f"SELECT count(*) AS n FROM ledger_entry WHERE {' AND '.join(where)}", params
        ).fetchone()
        rows = conn.execute(
            "SELECT transaction_id::text, date::text, debit, credit, line_id, ref_kind, ref_id,"
            " (%s * sum(debit - credit) OVER (ORDER BY date, transaction_id, position))::bigint"
            f" AS balance FROM ledger_entry WHERE {' AND '.join(where)}"
            " ORDER BY date, transaction_id, position LIMIT %s OFFSET %s",
            [sign, *params, per_page, (page - 1) * per_page],
        ).fetchall()
    return {
        "account": account,
        "items": rows,
        "page": page,
        "per_page": per_page,
        "total": total["n"],
    }


def to_csv(report):
    """A report as CSV: the rows of its first list (nested lists flattened), header first."""
    rows = _flat_rows(report)
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return out.getvalue()


def _flat_rows(report):
    for key in ("lines", "accounts", "rws", "items"):
        if key in report:
            return report[key]
    # outstanding advances: one row per advance
    return [advance for person in report["people"] for advance in person["advances"]]
