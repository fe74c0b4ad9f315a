"""The citizens monograph on a kelurahan's worth of residents (about 46,000).

Inserts generated spans straight into ``resident_periods`` (no events: this
measures the query), most of them open, some closed by a move, then times the
current monograph (target p99 <= 50 ms) and the monograph as of a past date
(target <= 1 s), each as the RPC runs it (:func:`services.citizens.views.monograph`).
"""

import random
import time
import uuid
from datetime import date, timedelta

from bench import benchmark, fresh_database, log, report
from services.citizens.domain import CATEGORIES, EDUCATION_LEVELS, MARITAL_STATUSES, OCCUPATIONS
from services.citizens.service import MIGRATIONS
from services.citizens.views import monograph
from shared.db import Database, migrate

RESIDENTS = 46_000
TODAY = date(2026, 11, 1)


def _rows(n, rng):
    for _ in range(n):
        resident = uuid.uuid4()
        born = TODAY - timedelta(days=rng.randrange(0, 90 * 365))
        since = max(born, date(2015, 1, 1)) + timedelta(days=rng.randrange(0, 2000))
        categories = rng.sample(CATEGORIES[:8], rng.choice((0, 0, 0, 1)))
        common = (
            rng.randrange(1, 19),
            rng.randrange(1, 10),
            rng.choice("LP"),
            born,
            rng.choice(("islam", "islam", "kristen", "katolik", "buddha", "hindu")),
            rng.choice(EDUCATION_LEVELS),
            rng.choice(OCCUPATIONS),
            rng.choice(MARITAL_STATUSES),
            uuid.UUID(int=rng.randrange(1, n // 3)),
            categories,
            "alive",
        )
        if rng.random() < 0.15:  # moved within, once: a closed span and an open one
            moved = since + timedelta(days=rng.randrange(1, 400))
            yield (resident, since, moved, *common)
            since = moved
        yield (resident, since, None, *common)


@benchmark("citizens_monograph")
def citizens_monograph(quick):
    n = 2000 if quick else RESIDENTS
    with fresh_database("citizens_monograph") as url:
        db = Database(url)
        migrate(db)
        migrate(db, MIGRATIONS)
        rows = list(_rows(n, random.Random(7)))
        with db.connection() as conn:
            # in transactions of 500 rows, as events arrive: the counters the trigger keeps
            # are hot rows, and one huge transaction would pile up their versions
            for start in range(0, len(rows), 500):
                with conn.cursor().copy(
                    "COPY resident_periods (resident_id, valid_from, valid_to, rw, rt, sex,"
                    " birth_date, religion, education, occupation, marital_status, family_id,"
                    " categories, status) FROM STDIN"
                ) as copy:
                    for row in rows[start : start + 500]:
                        copy.write_row(row)
                conn.commit()
            conn.autocommit = True
            conn.execute("VACUUM ANALYZE")
            conn.autocommit = False
        log(f"citizens_monograph: {n} residents inserted")
        for name, on, current, rounds, target in (
            ("monograph_current", TODAY, True, 200, 50),
            ("monograph_as_of", date(2022, 6, 30), False, 50, 1000),
        ):
            monograph(db, on, current)  # warm up
            times = []
            for _ in range(rounds):
                start = time.perf_counter()
                tables = monograph(db, on, current)
                times.append((time.perf_counter() - start) * 1000)
            times.sort()
            p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
            report(
                f"citizens_{name}_p99",
                p99,
                "ms",
                median=round(times[len(times) // 2], 1),
                target=target,
                population=tables["population"],
            )
        db.close()
