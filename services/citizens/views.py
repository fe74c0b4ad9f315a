"""The citizens service's read models: written with their events, queried by RPC.

:func:`project` is the service's projection (bound to the node's pseudonym
function by the service): its statements run in every appending transaction, so
a query right after a command sees the command's effect, and a view never shows
an event that was not stored. The views hold personal data in clear (they never
leave the node); erasing a resident deletes its rows and its key in the
transaction of ``resident.erased``.

- ``resident_view`` / ``family_view`` / ``request_view``: each aggregate's
  snapshot, with indexed columns for the filters;
- ``nik_index`` / ``kk_index``: ``pseudonym(number) -> id``, uniqueness without
  storing a NIK or No. KK in clear (a concurrent duplicate fails the append on
  the primary key);
- ``resident_periods``: each resident's presence as spans ``[valid_from,
  valid_to)`` of unchanged attributes, for the monograph now and at any date.
"""

import csv
import io
from datetime import date, datetime

from psycopg.types.json import Jsonb

from services.citizens.domain import (
    ADULT_AGE,
    AGE_BANDS,
    CATEGORIES,
    ELDERLY_AGE,
    LOCAL_TZ,
    PREGNANCY_GRACE,
    SEXES,
    Family,
    Resident,
    ServiceRequest,
    age_band,
    pregnant_until,
)
from services.citizens.schemas import (
    FamilyView,
    ResidentSummary,
    ResidentView,
    ServiceDeskCounts,
    ServiceRequestView,
    resident_summary,
)
from shared.errors import NotFound
from shared.pii import ERASE_KEY

PRESENT = ("alive", "missing")  # statuses that count as living in the kelurahan
#: Resident events whose personal part carries the date they take effect.
DATED = (
    "resident.moved",
    "resident.moved_out",
    "resident.moved_in",
    "resident.died",
    "resident.missing_reported",
    "resident.found",
)
PERIOD_COLUMNS = (
    "resident_id, valid_from, valid_to, rw, rt, sex, birth_date, religion, education,"
    " occupation, marital_status, family_id, categories, status, pregnant_until"
)
ERASE_REQUEST_KEYS = (
    "INSERT INTO subject_keys (subject_id, wrapped, erased_at)"
    " SELECT id::text, NULL, now() FROM request_view WHERE resident_id = %s"
    " ON CONFLICT (subject_id) DO UPDATE"
    " SET wrapped = NULL, erased_at = coalesce(subject_keys.erased_at, now())"
)
MONOGRAPH_DIMENSIONS = (
    "rw",
    "rt",
    "sex",
    "age_band",
    "religion",
    "education",
    "occupation",
    "marital_status",
    "status",
)

# -- projection -------------------------------------------------------------------------


def project(changes, pseudonym):
    """The statements that bring the read models up to date with a command's events.

    The residents' rows go in one statement per table, however many residents the
    command touched (a bulk import: hundreds), each fed one jsonb or array
    parameter: an import of 500 residents is a handful of statements, not 2,000.
    """
    statements, rows = [], _ResidentRows()
    for aggregate, events in changes:
        if isinstance(aggregate, Resident):
            statements += rows.add(aggregate, events, pseudonym)
        elif isinstance(aggregate, Family):
            statements += _family_statements(aggregate, pseudonym)
        elif isinstance(aggregate, ServiceRequest):
            statements.append(_upsert_request(aggregate.snapshot(copy=False)))
    return statements + rows.statements()


class _ResidentRows:
    """The residents' read-model rows of one command, gathered per table."""

    def __init__(self):
        self.unindexed = []  # resident ids whose NIK changed
        self.indexed = []  # (NIK pseudonym, resident id)
        self.closed = []  # {"resident_id", "day"}: the open span ends at day
        self.opened = []  # a new open span (resident_periods columns)
        self.views = {}  # resident id -> snapshot

    def add(self, resident, events, pseudonym):
        """Gather one resident's rows; returns the statements that cannot wait (erasure)."""
        # ``pending`` still holds the events in clear (the stored ones are sealed)
        for type_, data, _ in resident.pending:
            if type_ == "resident.erased":
                return _erase_statements(resident.id)
            personal = data.get("personal") or {}
            if type_ == "resident.registered":
                self.indexed.append((pseudonym(personal["nik"]), resident.id))
            elif type_ == "resident.corrected" and "nik" in personal.get("changes", {}):
                self.unindexed.append(resident.id)
                self.indexed.append((pseudonym(personal["changes"]["nik"]), resident.id))
        type_, data, _ = resident.pending[-1]
        day = _effective_date(type_, data, events[-1])
        if resident.version > len(resident.pending):  # a new resident has no span to close
            self.closed.append({"resident_id": resident.id, "day": day})
        if resident.status in PRESENT and resident.personal is not None:
            self.opened.append(_period_row(resident, day))
        self.views[resident.id] = resident.snapshot(copy=False)
        return []

    def statements(self):
        statements = []
        if self.unindexed:
            statements.append((_UNINDEX_NIKS, [self.unindexed]))
        if self.indexed:
            tokens, ids = zip(*self.indexed, strict=True)
            statements.append((_INDEX_NIKS, [list(tokens), list(ids)]))
        if self.closed:
            statements.append((_CLOSE_PERIODS, [Jsonb(self.closed)]))
        if self.opened:
            statements.append((_OPEN_PERIODS, [Jsonb(self.opened)]))
        if self.views:
            statements.append((_UPSERT_RESIDENTS, [Jsonb(list(self.views.values()))]))
        return statements


_UNINDEX_NIKS = "DELETE FROM nik_index WHERE resident_id = ANY(%s::uuid[])"
_INDEX_NIKS = (
    "INSERT INTO nik_index (token, resident_id)"
    " SELECT * FROM unnest(%s::text[], %s::uuid[]) ORDER BY 1"
)
# Close each open span at its day; a span opened and closed on one day is kept, empty.
_CLOSE_PERIODS = (
    "UPDATE resident_periods p SET valid_to = greatest(p.valid_from, c.day)"
    " FROM jsonb_to_recordset(%s) AS c (resident_id uuid, day date)"
    " WHERE p.resident_id = c.resident_id AND p.valid_to IS NULL"
)
# A new open span from its day, never before the end of the resident's last span.
_OPEN_PERIODS = (
    f"INSERT INTO resident_periods ({PERIOD_COLUMNS})"
    " SELECT o.resident_id, greatest(o.day, (SELECT max(valid_to) FROM resident_periods p"
    "  WHERE p.resident_id = o.resident_id)), NULL, o.rw, o.rt, o.sex, o.birth_date,"
    " o.religion, o.education, o.occupation, o.marital_status, o.family_id, o.categories,"
    " o.status, o.pregnant_until"
    " FROM jsonb_to_recordset(%s) AS o (resident_id uuid, day date, rw integer, rt integer,"
    " sex text, birth_date date, religion text, education text, occupation text,"
    " marital_status text, family_id uuid, categories text[], status text,"
    " pregnant_until date)"
)
_UPSERT_RESIDENTS = (
    "INSERT INTO resident_view (id, kelurahan, status, rw, rt, sex, birth_date, family_id,"
    " categories, pregnant_until, version, view)"
    " SELECT (v->>'id')::uuid, v->>'kelurahan', v->>'status', (v->'public'->>'rw')::integer,"
    " (v->'personal'->>'rt')::integer, v->'public'->>'sex', (v->'personal'->>'birth_date')::date,"
    " (v->>'family_id')::uuid,"
    " ARRAY(SELECT jsonb_array_elements_text(v->'public'->'categories')),"
    f" (v->'vulnerability'->'pregnancy'->>'expected_date')::date + {PREGNANCY_GRACE.days},"
    " (v->>'version')::integer, v"
    " FROM jsonb_array_elements(%s) AS r (v)"
    " ON CONFLICT (id) DO UPDATE SET status = excluded.status, rw = excluded.rw,"
    " rt = excluded.rt, sex = excluded.sex, birth_date = excluded.birth_date,"
    " family_id = excluded.family_id, categories = excluded.categories,"
    " pregnant_until = excluded.pregnant_until, version = excluded.version, view = excluded.view"
)


def _effective_date(type_, data, event):
    """The date an event takes effect: its own date where it has one (a move, a death,
    an entry), else its time's date in WIB."""
    personal = data.get("personal") or {}
    day = None
    if type_ == "resident.registered":
        day = personal.get("entry_date")
        if day is None and data.get("entry") == "birth":
            day = personal.get("birth_date")
    elif type_ in DATED:
        day = personal.get("date")
    return day or event.time.astimezone(LOCAL_TZ).date().isoformat()


def _period_row(resident, day):
    """The columns of a resident's new open span from ``day``."""
    p = resident.personal
    return {
        "resident_id": resident.id,
        "day": day,
        **{k: p[k] for k in _PERIOD_PERSONAL},
        "family_id": resident.family_id,
        "categories": list(resident.public["categories"]),
        "status": resident.status,
        "pregnant_until": pregnant_until(resident.vulnerability),
    }


_PERIOD_PERSONAL = (
    "rw",
    "rt",
    "sex",
    "birth_date",
    "religion",
    "education",
    "occupation",
    "marital_status",
)


def _erase_statements(resident_id):
    """Forget the resident everywhere, and shred its key (and its requests' keys) with
    the ``resident.erased`` event: the same transaction, so neither happens alone."""
    return [
        ("DELETE FROM resident_view WHERE id = %s", [resident_id]),
        ("DELETE FROM nik_index WHERE resident_id = %s", [resident_id]),
        ("DELETE FROM resident_periods WHERE resident_id = %s", [resident_id]),
        (ERASE_KEY, [resident_id]),
        (ERASE_REQUEST_KEYS, [resident_id]),
        (
            "UPDATE request_view SET view = jsonb_set(view, '{personal}', 'null')"
            " WHERE resident_id = %s",
            [resident_id],
        ),
    ]


def _family_statements(family, pseudonym):
    statements = [
        (
            "INSERT INTO kk_index (token, family_id) VALUES (%s, %s)",
            [pseudonym(d["personal"]["kk"]), family.id],
        )
        for type_, d, _ in family.pending
        if type_ == "family.formed"
    ]
    view = family.snapshot(copy=False)
    statements.append(
        (
            "INSERT INTO family_view (id, kelurahan, status, rw, version, view)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET"
            " status = excluded.status, rw = excluded.rw, version = excluded.version,"
            " view = excluded.view",
            [
                view["id"],
                view["kelurahan"],
                view["status"],
                view["rw"],
                view["version"],
                Jsonb(view),
            ],
        )
    )
    return statements


def _upsert_request(view):
    return (
        "INSERT INTO request_view (id, kelurahan, rw, status, kind, resident_id, assigned_to,"
        " raised_at, due_at, closed_at, version, view)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (id) DO UPDATE SET status = excluded.status,"
        " assigned_to = excluded.assigned_to, closed_at = excluded.closed_at,"
        " version = excluded.version, view = excluded.view",
        [
            view["id"],
            view["kelurahan"],
            view["rw"],
            view["status"],
            view["kind"],
            view["resident_id"],
            view["assigned_to"],
            view["raised_at"],
            view["due_at"],
            view["closed_at"],
            view["version"],
            Jsonb(view),
        ],
    )


# -- residents and families -------------------------------------------------------------


def resident_row(db, resident_id):
    """``{"rw", "status", "view"}`` of a resident; NotFound if absent (or erased)."""
    with db.connection() as conn:
        row = conn.execute(
            "SELECT rw, status, view FROM resident_view WHERE id = %s", [resident_id]
        ).fetchone()
    if row is None:
        raise NotFound(f"resident {resident_id} does not exist")
    return row


def get_resident(db, resident_id):
    return ResidentView().dump(resident_row(db, resident_id)["view"])


def residents_of_tokens(db, tokens):
    """``{token: resident id}`` of the NIK pseudonyms among ``tokens`` that are indexed."""
    if not tokens:
        return {}
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT token, resident_id::text AS id FROM nik_index WHERE token = ANY(%s)",
            [list(tokens)],
        ).fetchall()
        conn.rollback()
    return {row["token"]: row["id"] for row in rows}


def resident_of_token(db, token):
    """The id of the resident whose NIK has this pseudonym, or None."""
    with db.connection() as conn:
        row = conn.execute(
            "SELECT resident_id::text AS id FROM nik_index WHERE token = %s", [token]
        ).fetchone()
    return row and row["id"]


def family_of_token(db, token):
    with db.connection() as conn:
        row = conn.execute(
            "SELECT family_id::text AS id FROM kk_index WHERE token = %s", [token]
        ).fetchone()
    return row and row["id"]


def get_family(db, family_id):
    with db.connection() as conn:
        row = conn.execute("SELECT view FROM family_view WHERE id = %s", [family_id]).fetchone()
    if row is None:
        raise NotFound(f"family {family_id} does not exist")
    return FamilyView().dump(row["view"])


def _years_before(day, years):
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def category_clause(category, on):
    """SQL (and params) for "in ``category`` at date ``on``": child and elderly from the
    birth date (ages move on), pregnant from the day it stops counting, the others
    from the recorded categories."""
    if category == "child":
        return "birth_date > %s", [_years_before(on, ADULT_AGE)]
    if category == "elderly":
        return "birth_date <= %s", [_years_before(on, ELDERLY_AGE)]
    if category == "pregnant":
        return "pregnant_until >= %s", [on]
    return "categories @> ARRAY[%s]::text[]", [category]


def _age_band_clause(band, on):
    if band.endswith("+"):
        return "birth_date <= %s", [_years_before(on, int(band[:-1]))]
    low, high = (int(x) for x in band.split("-"))
    return "birth_date > %s AND birth_date <= %s", [
        _years_before(on, high + 1),
        _years_before(on, low),
    ]


def list_residents(db, filters, on):
    """A page of resident summaries by RW and RT, with the total that match."""
    where, params = [], []
    for name in ("rw", "rt", "status", "sex", "family_id"):
        if filters.get(name) is not None:
            where.append(f"{name} = %s")
            params.append(filters[name])
    for key, clause in (("category", category_clause), ("age_band", _age_band_clause)):
        if filters.get(key) is not None:
            sql, values = clause(filters[key], on)
            where.append(sql)
            params += values
    if filters.get("name"):
        where.append("view->'personal'->>'name' ILIKE %s")
        params.append("%" + filters["name"].replace("%", r"\%").replace("_", r"\_") + "%")
    clause = ("WHERE " + " AND ".join(where)) if where else ""
    page, per_page = filters["page"], filters["per_page"]
    with db.connection() as conn:
        total = conn.execute(f"SELECT count(*) AS n FROM resident_view {clause}", params).fetchone()
        rows = conn.execute(
            f"SELECT view FROM resident_view {clause} ORDER BY rw, rt, id LIMIT %s OFFSET %s",
            [*params, per_page, (page - 1) * per_page],
        ).fetchall()
    items = ResidentSummary(many=True).dump([resident_summary(r["view"]) for r in rows])
    return {"items": items, "page": page, "per_page": per_page, "total": total["n"]}


def targeting(db, rw, category, living_alone, on):
    """Living residents in ``category`` at ``on`` (in RW ``rw``), with what a field
    worker needs to reach them: id, name, RW, RT, address, family."""
    sql, params = category_clause(category, on)
    where = ["status = 'alive'", sql]
    if rw is not None:
        where.append("rw = %s")
        params.append(rw)
    if living_alone:
        where.append(
            "NOT EXISTS (SELECT 1 FROM resident_view o WHERE o.family_id = resident_view.family_id"
            " AND o.id <> resident_view.id AND o.status = 'alive')"
        )
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT id::text AS id, rw, rt, family_id::text AS family_id,"
            " view->'personal'->>'name' AS name, view->'personal'->>'address' AS address"
            f" FROM resident_view WHERE {' AND '.join(where)} ORDER BY rw, rt, id",
            params,
        ).fetchall()
    return [dict(r) for r in rows]


# -- the Pamor service desk -------------------------------------------------------------

BREACHED = (
    "(CASE WHEN status IN ('done', 'cancelled') THEN closed_at > due_at ELSE %s > due_at END)"
)


def _request_item(view, breached):
    return ServiceRequestView().dump({**view, "breached": breached})


def get_request(db, request_id, now):
    with db.connection() as conn:
        row = conn.execute(
            f"SELECT view, {BREACHED} AS breached FROM request_view WHERE id = %s",
            [now, request_id],
        ).fetchone()
    if row is None:
        raise NotFound(f"service request {request_id} does not exist")
    return _request_item(row["view"], row["breached"])


def list_requests(db, filters, now):
    """A page of requests (oldest first) and the desk counts of the caller's scope:
    each status, breaches of the 24-hour target, done within it."""
    scope, scope_params = (["rw = %s"], [filters["rw"]]) if filters.get("rw") else ([], [])
    where, params = list(scope), list(scope_params)
    for name in ("status", "kind", "assigned_to", "resident_id"):
        if filters.get(name) is not None:
            where.append(f"{name} = %s")
            params.append(filters[name])
    if filters.get("breached") is not None:
        where.append(f"{BREACHED} = %s")
        params += [now, filters["breached"]]
    clause = ("WHERE " + " AND ".join(where)) if where else ""
    page, per_page = filters["page"], filters["per_page"]
    statuses = ", ".join(
        f"count(*) FILTER (WHERE status = '{s}') AS {s}"
        for s in ("open", "assigned", "in_progress", "done", "cancelled")
    )
    with db.connection() as conn:
        total = conn.execute(f"SELECT count(*) AS n FROM request_view {clause}", params).fetchone()
        rows = conn.execute(
            f"SELECT view, {BREACHED} AS breached FROM request_view {clause}"
            " ORDER BY raised_at, id LIMIT %s OFFSET %s",
            [now, *params, per_page, (page - 1) * per_page],
        ).fetchall()
        counts = conn.execute(
            f"SELECT count(*) AS total, {statuses},"
            f" count(*) FILTER (WHERE {BREACHED}) AS breached,"
            f" count(*) FILTER (WHERE status = 'done' AND NOT {BREACHED}) AS done_within_target"
            f" FROM request_view {'WHERE ' + scope[0] if scope else ''}",
            [now, now, *scope_params],
        ).fetchone()
    return {
        "items": [_request_item(r["view"], r["breached"]) for r in rows],
        "page": page,
        "per_page": per_page,
        "total": total["n"],
        "counts": ServiceDeskCounts().dump(dict(counts)),
    }


# -- the monograph ----------------------------------------------------------------------

_AGE = "(%(on_key)s - birth_key) / 10000"  # whole years at the date (see birth_key)
# One scan, hashed grouping sets (no DISTINCT aggregate, which would force a sort per set).
_MONOGRAPH = f"""
SELECT rw, rt, sex, age_band, religion, education, occupation, marital_status, status,
       count(*) AS n
FROM (SELECT rw, rt, sex, religion, education, occupation, marital_status, status,
             CASE WHEN age >= 75 THEN '75+' ELSE (age / 5 * 5) || '-' || (age / 5 * 5 + 4)
             END AS age_band
      FROM (SELECT *, {_AGE} AS age FROM resident_periods WHERE :where) a) p
GROUP BY GROUPING SETS ((), (rw), (rw, rt), (sex), (age_band), (religion), (education),
                        (occupation), (marital_status), (status))
"""
_VULNERABLE = f"""
SELECT c AS category, count(*) AS n
FROM resident_periods,
     unnest(array_remove(array_remove(array_remove(categories, 'child'), 'elderly'), 'pregnant')
            || CASE WHEN {_AGE} < {ADULT_AGE} THEN '{{child}}'::text[] ELSE '{{}}' END
            || CASE WHEN {_AGE} >= {ELDERLY_AGE} THEN '{{elderly}}'::text[] ELSE '{{}}' END
            || CASE WHEN pregnant_until >= %(on)s THEN '{{pregnant}}'::text[] ELSE '{{}}' END) c
WHERE :where
GROUP BY c
"""
_FAMILIES = """
SELECT NULL::integer AS rw, count(*) AS n
FROM (SELECT DISTINCT family_id FROM resident_periods
      WHERE :where AND family_id IS NOT NULL) f
UNION ALL
SELECT rw, count(*) AS n
FROM (SELECT DISTINCT rw, family_id FROM resident_periods
      WHERE :where AND family_id IS NOT NULL) f
GROUP BY rw
"""
_AS_OF = "valid_from <= %(on)s AND (valid_to IS NULL OR valid_to > %(on)s)"


_CELLS = "SELECT dimension, value, n FROM monograph_cells WHERE n > 0"
_PREGNANT = (
    "SELECT count(*) AS n FROM resident_periods WHERE valid_to IS NULL AND pregnant_until >= %(on)s"
)
_AGES = (
    "SELECT (%(on_key)s - birth_key) / 10000 AS age, sum(n)::integer AS n"
    " FROM monograph_births WHERE n > 0 GROUP BY 1"
)
_CURRENT_FAMILIES = (
    "SELECT NULL::integer AS rw, count(DISTINCT family_id) AS n FROM monograph_families"
    " WHERE n > 0 UNION ALL"
    " SELECT rw, count(*) AS n FROM monograph_families WHERE n > 0 GROUP BY rw"
)


def monograph(db, on, current):
    """The kelurahan's demographic profile at date ``on`` (``current``: the open spans,
    from the counts the trigger keeps; else a scan of the spans covering ``on``):
    population by RW, RT, sex, five-year age band, religion, education, occupation,
    marital status and status; families; vulnerable groups by category."""
    tables = {
        "as_of": on.isoformat(),
        "current": current,
        "population": 0,
        "families": 0,
        "by_sex": dict.fromkeys(SEXES, 0),
        "by_age_band": dict.fromkeys(AGE_BANDS, 0),
        **{f"by_{d}": {} for d in MONOGRAPH_DIMENSIONS if d not in ("sex", "age_band")},
        "families_by_rw": {},
        "vulnerable": dict.fromkeys(CATEGORIES, 0),
    }
    params = {"on": on, "on_key": on.year * 10000 + on.month * 100 + on.day}
    with db.connection() as conn:
        if current:
            _fill_current(conn, params, tables)
        else:
            _fill_as_of(conn, params, tables)
        for row in conn.execute(
            _CURRENT_FAMILIES if current else _FAMILIES.replace(":where", _AS_OF), params
        ):
            if row["rw"] is None:
                tables["families"] = row["n"]
            else:
                tables["families_by_rw"][str(row["rw"])] = row["n"]
        conn.rollback()
    for name in ("by_rw", "families_by_rw"):
        tables[name] = dict(sorted(tables[name].items(), key=lambda item: int(item[0])))
    tables["by_rt"] = dict(
        sorted(tables["by_rt"].items(), key=lambda i: tuple(map(int, i[0].split("/"))))
    )
    for name in ("by_religion", "by_education", "by_occupation", "by_marital_status", "by_status"):
        tables[name] = dict(sorted(tables[name].items()))
    return tables


def _fill_current(conn, params, tables):
    for row in conn.execute(_CELLS):
        table = "vulnerable" if row["dimension"] == "vulnerable" else f"by_{row['dimension']}"
        tables[table][row["value"]] = row["n"]
    tables["population"] = sum(tables["by_rw"].values())
    tables["vulnerable"]["pregnant"] = conn.execute(_PREGNANT, params).fetchone()["n"]
    for row in conn.execute(_AGES, params):
        age, n = row["age"], row["n"]
        tables["by_age_band"][age_band(age)] += n
        tables["vulnerable"]["child"] += n if age < ADULT_AGE else 0
        tables["vulnerable"]["elderly"] += n if age >= ELDERLY_AGE else 0


def _fill_as_of(conn, params, tables):
    for row in conn.execute(_MONOGRAPH.replace(":where", _AS_OF), params):
        dimension = _dimension_of(row)
        if dimension is None:
            tables["population"] = row["n"]
        elif dimension == "rt":
            tables["by_rt"][f"{row['rw']}/{row['rt']}"] = row["n"]
        else:
            tables[f"by_{dimension}"][str(row[dimension])] = row["n"]
    for row in conn.execute(_VULNERABLE.replace(":where", _AS_OF), params):
        tables["vulnerable"][row["category"]] = row["n"]


def _dimension_of(row):
    """Which grouping set a row belongs to (no grouped column is ever NULL)."""
    if row["rt"] is not None:
        return "rt"
    return next((d for d in MONOGRAPH_DIMENSIONS if row[d] is not None), None)


def monograph_csv(tables):
    """The monograph as CSV: one ``dimension,value,count`` row per cell."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["dimension", "value", "count"])
    writer.writerow(["as_of", tables["as_of"], ""])
    writer.writerow(["population", "total", tables["population"]])
    writer.writerow(["families", "total", tables["families"]])
    for name, table in tables.items():
        if isinstance(table, dict):
            dimension = name.removeprefix("by_")
            writer.writerows([dimension, value, count] for value, count in table.items())
    return out.getvalue()


def today():
    """The date in Kota Bekasi now."""
    return datetime.now(LOCAL_TZ).date()


def as_date(text):
    return date.fromisoformat(text)
