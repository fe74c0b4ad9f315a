"""The city monograph, from the pseudonymous public parts every kelurahan replicates.

:func:`project` runs in the city's ingest transaction (:mod:`shared.replication`):
each resident event's public part (RW, sex, age band, categories) becomes the
resident's row in ``city_residents``, keyed by the random resident token; a
death, a move out of the kelurahan or an erasure takes the resident out of the
counts. :func:`monograph` counts them per kecamatan and kelurahan.
"""

from psycopg.types.json import Jsonb

from shared import wilayah
from shared.replication import code_of

ABSENT = ("resident.died", "resident.moved_out", "resident.erased")

_UPSERT = (
    "INSERT INTO city_residents AS r (resident_id, kelurahan, kecamatan, rw, sex, age_band,"
    " categories, present, updated_at)"
    " SELECT u.resident_id, u.kelurahan, u.kecamatan, u.rw, u.sex, u.age_band,"
    " ARRAY(SELECT jsonb_array_elements_text(u.categories)), u.present, u.time"
    " FROM jsonb_to_recordset(%s) AS u (resident_id uuid, kelurahan text, kecamatan text,"
    " rw integer, sex text, age_band text, categories jsonb, present boolean, time timestamptz)"
    " ON CONFLICT (resident_id) DO UPDATE SET rw = excluded.rw, sex = excluded.sex,"
    " age_band = excluded.age_band, categories = excluded.categories,"
    " present = excluded.present, updated_at = excluded.updated_at"
)


def project(conn, events):
    """Bring ``city_residents`` up to date with replicated resident events (the last
    event of a resident in the batch wins: they come in log order)."""
    latest = {}
    for event in events:
        if not event.type.startswith("resident."):
            continue
        public = event.data.get("public") or {}
        code = code_of(event.source)
        latest[event.stream.removeprefix("resident-")] = {
            "resident_id": event.stream.removeprefix("resident-"),
            "kelurahan": code,
            "kecamatan": code.rsplit(".", 1)[0],
            "rw": public.get("rw"),
            "sex": public.get("sex"),
            "age_band": public.get("age_band"),
            "categories": list(public.get("categories") or []),
            "present": event.type not in ABSENT,
            "time": event.time.isoformat(),
        }
    if latest:
        conn.execute(_UPSERT, [Jsonb(list(latest.values()))])


def monograph(db, kecamatan=None):
    """Residents per kecamatan and kelurahan (optionally of one kecamatan): population,
    by sex, and the vulnerable groups by category, with names."""
    where, params = ("AND kecamatan = %s", [kecamatan]) if kecamatan else ("", [])
    with db.read() as conn:
        rows = conn.execute(
            "SELECT kecamatan, kelurahan, count(*) AS population,"
            " count(*) FILTER (WHERE sex = 'L') AS l, count(*) FILTER (WHERE sex = 'P') AS p"
            f" FROM city_residents WHERE present {where} GROUP BY 1, 2 ORDER BY 1, 2",
            params,
        ).fetchall()
        groups = conn.execute(
            "SELECT kelurahan, c AS category, count(*) AS n"
            f" FROM city_residents, unnest(categories) c WHERE present {where} GROUP BY 1, 2",
            params,
        ).fetchall()
    vulnerable = {}
    for row in groups:
        vulnerable.setdefault(row["kelurahan"], {})[row["category"]] = row["n"]
    kecamatans = {}
    for row in rows:
        entry = kecamatans.setdefault(
            row["kecamatan"],
            {
                "kecamatan": row["kecamatan"],
                "name": wilayah.name_of(row["kecamatan"]),
                "population": 0,
                "kelurahan": [],
            },
        )
        entry["population"] += row["population"]
        entry["kelurahan"].append(
            {
                "kelurahan": row["kelurahan"],
                "name": wilayah.name_of(row["kelurahan"]),
                "population": row["population"],
                "by_sex": {"L": row["l"], "P": row["p"]},
                "vulnerable": dict(sorted(vulnerable.get(row["kelurahan"], {}).items())),
            }
        )
    return {
        "kecamatan": list(kecamatans.values()),
        "population": sum(k["population"] for k in kecamatans.values()),
    }
