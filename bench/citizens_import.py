"""Importing a kelurahan's residents by RPC, against raw batched psycopg inserts.

A generated kelurahan (:mod:`bench.residents`, 46,000 residents; --quick 2,000) goes
through ``citizens.import_residents`` in batches of 500 from one caller: validated,
checked against the NIK index, sealed, stored as events with their projections. The
baseline inserts the same rows into a plain table with the same columns
(``executemany``, batches of 500, one transaction each) in the same database. The
two take turns (ABBA, on halves of the file) so both see the same load.
"""

import os
import secrets
from urllib.parse import urlsplit

import psycopg

from bench import alternate, benchmark, compare, fresh_database, log, server_url
from bench.nameko_rpc import rabbit_vhost
from bench.residents import generate
from services.citizens.importer import COLUMNS, payload

RESIDENTS = 46_000
BATCH = 500
TARGET = 0.1


def _csv_row(row):
    """The row as the importer sees it: every column, as text."""
    return {c: "" if row.get(c) is None else str(row[c]) for c in COLUMNS}


@benchmark("citizens_import", eventlet=True)
def citizens_import(quick):
    """import_residents in batches of 500 vs executemany of the same rows."""
    from nameko.runners import ServiceRunner
    from nameko.standalone.rpc import ServiceRpcProxy

    from services.citizens.service import CitizensService
    from shared.actor import Actor
    from shared.auth import issue_token
    from shared.pii import new_master_key

    n = 2_000 if quick else RESIDENTS
    texts = [_csv_row(r) for r in generate(n, seed=1)]
    rows = [{"line": i + 2, "payload": payload(t)} for i, t in enumerate(texts)]
    plain = [tuple(t[c] or None for c in COLUMNS) for t in texts]
    secret = secrets.token_urlsafe(40)
    operator = Actor("bench-operator", "operator", "32.75.05.1002")
    context = {"authorization": issue_token(secret, operator)}
    server = server_url()
    with fresh_database("citizens_import"), rabbit_vhost("citizens_import") as amqp:
        database = urlsplit(server)._replace(path="/rembug_bench_citizens_import").geturl()
        os.environ.update(
            KELURAHAN_CODE="32.75.05.1002",
            DATABASE_URL=database,
            AMQP_URI=amqp,
            AUTH_SECRET=secret,
            PII_MASTER_KEY=new_master_key(),
        )
        config = {"AMQP_URI": amqp}
        runner = ServiceRunner(config)
        runner.add_service(CitizensService)
        runner.start()
        conn = psycopg.connect(database)
        try:
            columns = ", ".join(f"{c} text" for c in COLUMNS)
            conn.execute(f"CREATE TABLE plain_residents (id bigserial PRIMARY KEY, {columns})")
            conn.commit()
            insert = (
                f"INSERT INTO plain_residents ({', '.join(COLUMNS)})"
                f" VALUES ({', '.join(['%s'] * len(COLUMNS))})"
            )
            half = n // 2
            chunks = {"import": [rows[:half], rows[half:]], "raw": [plain[:half], plain[half:]]}
            accepted = []

            with ServiceRpcProxy("citizens", config, context_data=context, timeout=600) as rpc:

                def imported():
                    part = chunks["import"].pop(0)
                    for start in range(0, len(part), BATCH):
                        reply = rpc.import_residents(
                            import_id="bench", rows=part[start : start + BATCH]
                        )
                        accepted.append(reply["accepted"])
                    return len(part)

                def raw():
                    part = chunks["raw"].pop(0)
                    with conn.cursor() as cursor:
                        for start in range(0, len(part), BATCH):
                            cursor.executemany(insert, part[start : start + BATCH])
                            conn.commit()
                    return len(part)

                rate, baseline = alternate(2, imported, raw)
        finally:
            conn.close()
            runner.stop()
            os.environ["DATABASE_URL"] = server
    if sum(accepted) != n:
        raise AssertionError(f"{sum(accepted)} of {n} generated residents were accepted")
    log(f"citizens_import: {n} residents, batches of {BATCH}, one caller, ABBA on halves")
    compare("citizens_import", rate, "residents/s", baseline, "psycopg_executemany_500", TARGET)
