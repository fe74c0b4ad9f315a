"""The budget ledger: posting by RPC against a no-op RPC, and the realisation report
over ten years of history."""

import os
import random
import secrets
import time
import uuid
from datetime import date, timedelta
from urllib.parse import urlsplit

from bench import benchmark, compare, fresh_database, log, report, server_url

ROUNDS = 4
POST_TARGET = 0.5
REPORT_TARGET_MS = 100
YEARS = range(2017, 2027)  # ten fiscal years
TRANSACTIONS = 100_000
CATEGORIES = ("transport", "consumption", "office_supplies", "honoraria", "printing")
ACTIVITIES = ("binwas", "posyandu", "musrenbang")
BATCH = 500


def posting(caller, i):
    """A balanced transaction: a cash payment of office supplies, on no line."""
    amount = 10_000 + (caller * 7919 + i * 104_729) % 500_000
    return {
        "date": "2027-03-15",
        "description": f"Belanja ATK {caller}-{i}",
        "entries": [
            {"account": "expense.office_supplies", "debit": amount},
            {"account": "asset.cash", "credit": amount},
        ],
    }


@benchmark("budget_post", eventlet=True)
def budget_post(quick):
    """post_transaction by RPC (validated, balanced, stored, journal projected) with 10
    callers vs no-op RPC, in alternating rounds."""
    from nameko.runners import ServiceRunner
    from nameko.standalone.rpc import ServiceRpcProxy

    from bench.nameko_rpc import CALLERS, SECONDS, alternating_rates, rabbit_vhost
    from services.budget.service import BudgetService
    from shared.actor import Actor
    from shared.auth import issue_token

    seconds = 1.0 if quick else SECONDS
    secret = secrets.token_urlsafe(40)
    bendahara = Actor("bench-bendahara", "bendahara", "32.75.05.1002")
    context = {"authorization": issue_token(secret, bendahara)}
    server = server_url()
    with fresh_database("budget_post"), rabbit_vhost("budget_post") as amqp:
        database = urlsplit(server)._replace(path="/rembug_bench_budget_post").geturl()
        os.environ.update(
            KELURAHAN_CODE="32.75.05.1002", DATABASE_URL=database, AMQP_URI=amqp, AUTH_SECRET=secret
        )
        config = {"AMQP_URI": amqp}
        runner = ServiceRunner(config)
        runner.add_service(BudgetService)
        runner.start()
        with ServiceRpcProxy("budget", config, context_data=context) as budget:
            budget.open_fiscal_year(year=2027)
        runner.stop()
        post, noop = alternating_rates(
            BudgetService, "post_transaction", posting, amqp, ROUNDS, seconds, context
        )
        os.environ["DATABASE_URL"] = server
    log(f"budget_post: {CALLERS} callers, {ROUNDS} alternating rounds of {seconds:.0f} s")
    compare("budget_post", post, "calls/s", noop, "nameko_rpc_noop", POST_TARGET)


def seed_history(db, store, transactions):
    """Ten fiscal years of lines and ``transactions`` line postings, written through the
    store with the service's own projection (the same events and read models as RPC)."""
    from services.budget import views
    from services.budget.domain import BudgetLine, FiscalYear, post_on_line
    from shared.domain import meta_for
    from shared.envelope import Event

    rng = random.Random(7)
    bendahara = _actor("bendahara")
    meta = meta_for(bendahara)

    def save(aggregates):
        batches = [
            (stream, 0, [Event(t, stream, d) for t, d, _ in aggregate.pending])
            for aggregate, stream in aggregates
        ]
        store.append_many(
            batches,
            project=lambda stored: views.project(
                [(a, events) for (a, _), events in zip(aggregates, stored, strict=True)]
            ),
        )

    lines = {}
    for year in YEARS:
        setup = [(FiscalYear.open(_actor("lurah"), year, meta), f"fiscal_year-{year}")]
        for activity in ACTIVITIES:
            for category in CATEGORIES:
                line = BudgetLine.plan(
                    _actor("lurah"),
                    {
                        "fiscal_year": year,
                        "activity": activity,
                        "activity_name": activity.title(),
                        "category": f"expense.{category}",
                        "source": "source.apbd",
                        "allocated": 10**12,
                    },
                    meta,
                )
                lines.setdefault(year, []).append(line)
                setup.append((line, f"line-{line.id}"))
        save(setup)
    per_year = transactions // len(YEARS)
    written, started = 0, time.perf_counter()
    for year in YEARS:
        first = date(year, 1, 1)
        for start in range(0, per_year, BATCH):
            batch = []
            for _ in range(min(BATCH, per_year - start)):
                line = rng.choice(lines[year])
                line.pending = []  # the lines' commitments are not what this measures
                amount = rng.randint(10_000, 2_000_000)
                day = (first + timedelta(days=rng.randrange(365))).isoformat()
                entries = [
                    {"account": line.category, "debit": amount},
                    {"account": "asset.bank", "credit": amount},
                ]
                data = {"date": day, "description": "Belanja kegiatan", "entries": entries}
                transaction_id = str(uuid.uuid4())
                posted = post_on_line(bendahara, transaction_id, line, data, None, meta)
                batch.append((posted, f"transaction-{transaction_id}"))
            save(batch)
            written += len(batch)
        log(
            f"budget_realisation: {written} transactions written ({time.perf_counter() - started:.0f} s)"
        )


def _actor(role):
    from shared.actor import Actor

    return Actor(f"bench-{role}", role, "32.75.05.1002")


@benchmark("budget_realisation")
def budget_realisation(quick):
    """The realisation report (per line and month, as of a date) of a random one of ten
    fiscal years, over 100,000 transactions of history; p99 of many calls."""
    from services.budget.reports import realisation
    from services.budget.service import MIGRATIONS as BUDGET_MIGRATIONS
    from shared.db import MIGRATIONS, Database, migrate
    from shared.store import EventStore

    transactions = 5_000 if quick else TRANSACTIONS
    with fresh_database("budget_realisation") as url:
        db = Database(url)
        migrate(db, MIGRATIONS, BUDGET_MIGRATIONS)
        store = EventStore(db, "/kelurahan/32.75.05.1002/budget")
        seed_history(db, store, transactions)
        with db.connection() as conn:
            conn.autocommit = True
            conn.execute("VACUUM ANALYZE")
            conn.autocommit = False
        rng = random.Random(11)
        times = []
        for i in range(220):
            year = rng.choice(YEARS)
            as_of = date(year, rng.randint(1, 12), 28).isoformat()
            start = time.perf_counter()
            result = realisation(db, year, as_of)
            if i >= 20:  # the first calls warm up caches and prepared statements
                times.append((time.perf_counter() - start) * 1000)
        times.sort()
        db.close()
    report(
        "budget_realisation_p99",
        times[min(len(times) - 1, int(len(times) * 0.99))],
        "ms",
        median=round(times[len(times) // 2], 1),
        target=REPORT_TARGET_MS,
        transactions=transactions,
        lines_in_report=len(result["lines"]),
    )
