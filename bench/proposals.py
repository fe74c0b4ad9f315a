"""Submitting proposals by RPC, against a no-op nameko RPC in the same run."""

import os
import secrets
from urllib.parse import urlsplit

from bench import benchmark, compare, fresh_database, log, server_url
from bench.nameko_rpc import CALLERS, SECONDS, alternating_rates, rabbit_vhost

ROUNDS = 4
TARGET = 0.6


def submission(caller, i):
    """A valid proposal from the RT chair of RW ``caller + 1``, RT 1."""
    rw = caller + 1
    return {
        "year": 2027,
        "title": f"Perbaikan jalan lingkungan {i}",
        "problem": "Jalan berlubang sepanjang 200 m, rawan kecelakaan saat hujan",
        "idea": "Pengaspalan ulang dan saluran tepi jalan",
        "sector": "pekerjaan_umum",
        "target_agency": "Dinas Bina Marga dan Sumber Daya Air",
        "proposer": {"level": "rw", "rw": rw},
        "location": {"rw": rw, "rt": 1, "address": "Jl. Kenanga"},
        "volume": 200,
        "unit": "m",
        "estimated_cost": 250_000_000,
    }


@benchmark("submit_proposal", eventlet=True)
def submit_proposal(quick):
    """submit by RPC (validated, stored, projected) with 10 callers vs no-op RPC."""
    from services.proposals.service import ProposalsService
    from shared.actor import Actor
    from shared.auth import issue_token

    seconds = 1.0 if quick else SECONDS
    secret = secrets.token_urlsafe(40)
    operator = Actor("bench-operator", "operator", "32.75.05.1002")
    context = {"authorization": issue_token(secret, operator)}
    server = server_url()
    with fresh_database("submit_proposal"), rabbit_vhost("submit_proposal") as amqp:
        database = urlsplit(server)._replace(path="/rembug_bench_submit_proposal").geturl()
        service_env = dict(
            KELURAHAN_CODE="32.75.05.1002", DATABASE_URL=database, AMQP_URI=amqp, AUTH_SECRET=secret
        )
        os.environ.update(service_env)  # the service reads its configuration from there
        submit, noop = alternating_rates(
            ProposalsService, "submit", submission, amqp, ROUNDS, seconds, context
        )
        os.environ["DATABASE_URL"] = server
    log(f"submit_proposal: {CALLERS} callers, {ROUNDS} alternating rounds of {seconds:.0f} s")
    compare("submit_proposal", submit, "calls/s", noop, "nameko_rpc_noop", TARGET)
