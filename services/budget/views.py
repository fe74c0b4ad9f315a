"""The budget service's read models: written with their events, queried by RPC.

:func:`project` is the service's projection: its statements run in every
appending transaction, so the journal, the lines and the reports never show a
transaction that was not stored, and always show one that was.
"""

from psycopg.types.json import Jsonb

from services.budget.domain import (
    DEFAULT_ACCOUNTS,
    Account,
    Activity,
    Advance,
    BudgetLine,
    Expense,
    FiscalYear,
    fiscal_year_of,
)
from shared.errors import NotFound


def project(changes):
    """The statements that bring every read model a command touched up to date.

    The journal (ledger entries, transaction views, payable accounts) is written
    by a trigger on the event store as each ``transaction.posted`` is appended
    (migration 003), so a posting needs no statement here."""
    return [_UPSERTS[type(a)](a) for a, _ in changes if type(a) in _UPSERTS]


def _upsert(table, columns, values, view):
    names = ", ".join((*columns, "version", "view"))
    marks = ", ".join(["%s"] * (len(columns) + 2))
    updates = ", ".join(f"{c} = excluded.{c}" for c in (*columns[1:], "version", "view"))
    return (
        f"INSERT INTO {table} ({names}) VALUES ({marks})"
        f" ON CONFLICT ({columns[0]}) DO UPDATE SET {updates}",
        [*values, view["version"], Jsonb(view)],
    )


def _fiscal_year(year):
    view = year.snapshot()
    return _upsert("fiscal_year_view", ("year", "status"), [view["year"], view["status"]], view)


def _line(line):
    view = line.snapshot()
    columns = ("id", "fiscal_year", "activity", "category", "allocated", "committed")
    return _upsert("line_view", columns, [view[c] for c in columns], view)


def _expense(expense):
    view = expense.snapshot()
    values = [
        view["expense_id"],
        fiscal_year_of(view["date"]),
        view["line_id"],
        view["status"],
        view["amount"],
        view["date"],
        view["activity_id"],
    ]
    columns = ("id", "fiscal_year", "line_id", "status", "amount", "date", "activity_id")
    return _upsert("expense_view", columns, values, view)


def _advance(advance):
    view = advance.snapshot()
    columns = ("id", "person_id", "line_id", "amount", "outstanding", "paid_on", "status")
    values = [view["advance_id"], *(view[c] for c in columns[1:])]
    return _upsert("advance_view", (*columns, "activity_id"), [*values, view["activity_id"]], view)


def _activity(activity):
    view = activity.snapshot()
    columns = ("id", "fiscal_year", "kind", "rw", "proposal_id", "status", "planned_on")
    values = [
        view["activity_id"],
        fiscal_year_of(view["planned_on"]),
        view["kind"],
        view["rw"],
        view["proposal_id"],
        view["status"],
        view["planned_on"],
    ]
    return _upsert("activity_view", columns, values, view)


def _account(account):
    view = account.snapshot()
    return (
        "INSERT INTO account_view (code, kind, name) VALUES (%s, %s, %s)",
        [view["code"], view["kind"], view["name"]],
    )


_UPSERTS = {
    FiscalYear: _fiscal_year,
    BudgetLine: _line,
    Expense: _expense,
    Advance: _advance,
    Activity: _activity,
    Account: _account,
}


# -- queries ---------------------------------------------------------------------------------


def unknown_accounts(db, codes):
    """The codes among ``codes`` that are neither in the default chart nor opened."""
    others = sorted(set(codes) - set(DEFAULT_ACCOUNTS))
    if not others:
        return []
    with db.read() as conn:
        rows = conn.execute(
            "SELECT code FROM account_view WHERE code = ANY(%s)", [others]
        ).fetchall()
    known = {r["code"] for r in rows}
    return [code for code in others if code not in known]


def fiscal_year_status(db, year):
    """``open``, ``closed``, or None when the year was never opened."""
    with db.read() as conn:
        row = conn.execute("SELECT status FROM fiscal_year_view WHERE year = %s", [year]).fetchone()
    return row and row["status"]


def get_view(db, table, id_, noun):
    """The stored view of one entity; NotFound if there is none."""
    with db.read() as conn:
        row = conn.execute(f"SELECT view FROM {table} WHERE id = %s", [id_]).fetchone()
    if row is None:
        raise NotFound(f"{noun} {id_} does not exist")
    return row["view"]


def list_views(db, table, filters, order, page, per_page):
    """A page of views from ``table`` matching ``filters`` (column -> value; None skips)."""
    where = [(f"{column} = %s", value) for column, value in filters.items() if value is not None]
    clause = ("WHERE " + " AND ".join(w for w, _ in where)) if where else ""
    params = [v for _, v in where]
    with db.read() as conn:
        total = conn.execute(f"SELECT count(*) AS n FROM {table} {clause}", params).fetchone()
        rows = conn.execute(
            f"SELECT view FROM {table} {clause} ORDER BY {order} LIMIT %s OFFSET %s",
            [*params, per_page, (page - 1) * per_page],
        ).fetchall()
    return {
        "items": [r["view"] for r in rows],
        "page": page,
        "per_page": per_page,
        "total": total["n"],
    }


def with_costs(db, activities):
    """Supervision activity views with ``cost``: what the paid expenses and the advances
    naming each one came to."""
    ids = [a["activity_id"] for a in activities]
    with db.read() as conn:
        rows = conn.execute(
            "SELECT activity_id::text AS id, sum(amount)::bigint AS cost FROM ("
            " SELECT activity_id, amount FROM expense_view"
            "  WHERE status = 'paid' AND activity_id = ANY(%s::uuid[])"
            " UNION ALL SELECT activity_id, amount FROM advance_view"
            "  WHERE activity_id = ANY(%s::uuid[])) spent GROUP BY activity_id",
            [ids, ids],
        ).fetchall()
    costs = {r["id"]: r["cost"] for r in rows}
    return [{**a, "cost": costs.get(a["activity_id"], 0)} for a in activities]


def lines_of_year(db, year):
    with db.read() as conn:
        rows = conn.execute(
            "SELECT view FROM line_view WHERE fiscal_year = %s ORDER BY id", [year]
        ).fetchall()
    return [r["view"] for r in rows]
