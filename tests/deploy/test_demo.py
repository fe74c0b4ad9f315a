"""``make demo`` against three nodes started as ``make run`` starts them: the city and two
kelurahan, under a namespace of their own (``REMBUG_NAMESPACE``: vhosts, databases,
run/ directory) and with kelurahan no developer runs (their broker users are the
broker's, not the vhost's), so a developer's ``make run`` is left alone. Small sizes:
the whole Musrenbang day, 40 proposals and 200 residents."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import psycopg
import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "demotest"
KELURAHAN = ("32.75.05.1001", "32.75.08.1001")  # Bojong Rawalumbu, Jatiwaringin
ENV = {**os.environ, "REMBUG_NAMESPACE": NAMESPACE, "HTTP_PORT_BASE": "28000"}
CONNECTIONS = 150  # PostgreSQL connections three nodes of four services can hold


def python(*args, timeout=60):
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout
    )


def objects():
    """The vhosts, databases and broker users of the test's nodes, as node.py names them."""
    script = f"""if True:
        import json
        from deploy.local import node
        from shared import replication
        codes = ["32.75", *{list(KELURAHAN)!r}]
        print(json.dumps({{
            "vhosts": [node.vhost_name(code) for code in codes],
            "databases": [node.database_name(c, s) for c in codes for s in node.SERVICES],
            "users": [replication.kelurahan_user(code) for code in codes[1:]],
        }}))"""
    done = python("-c", script)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def drop_nodes():
    names = objects()
    assert all(NAMESPACE in name for name in names["vhosts"] + names["databases"])
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        for database in names["databases"]:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    api = os.environ["RABBIT_API_URI"]
    for vhost in names["vhosts"]:
        requests.delete(f"{api}/api/vhosts/{urllib.parse.quote(vhost, safe='')}", timeout=10)
    for user in names["users"]:
        requests.delete(f"{api}/api/users/{user}", timeout=10)
    shutil.rmtree(ROOT / "run" / NAMESPACE, ignore_errors=True)


def free_connections():
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        limit = int(conn.execute("SHOW max_connections").fetchone()[0])
        used = conn.execute("SELECT count(*) FROM pg_stat_activity").fetchone()[0]
    return limit - used


@pytest.fixture
def nodes():
    if free_connections() < CONNECTIONS:
        pytest.skip(
            f"three nodes need about {CONNECTIONS} PostgreSQL connections and fewer are free"
            " (is `make run` running? stop it, or raise max_connections)"
        )
    drop_nodes()
    process = subprocess.Popen(
        [sys.executable, "-m", "deploy.local.node", "--linked", ",".join(KELURAHAN)],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        drop_nodes()


def call(code, method, payload, role="operator"):
    done = python(
        "-m", "deploy.local.call", "--kelurahan", code, "--role", role, method, json.dumps(payload)
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_demo_plays_a_musrenbang_day_and_the_decisions_reach_the_kelurahan(nodes):
    started = time.monotonic()
    pengasinan, other = KELURAHAN
    demo = [
        "-m",
        "deploy.local.demo",
        *("--kelurahan", pengasinan, "--other", other),
        *("--proposals", "40", "--residents", "200"),
        *("--other-proposals", "6", "--other-residents", "50"),
        *("--wait", "90", "--timeout", "60"),
    ]
    done = python(*demo, timeout=300)
    print(done.stdout)  # with -s: what a developer sees
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert "The city's view" in done.stdout and "Where to look next" in done.stdout
    assert "still replicating" not in done.stdout, done.stdout
    assert re.search(r"the city ranking 2027, first 5 of \d+", done.stdout), done.stdout
    assert re.search(r"Kec\. Rawalumbu +40: verified", done.stdout), done.stdout  # count_by_status

    funded = call(pengasinan, "proposals.list_proposals", {"status": "funded"})
    assert funded["total"] >= 1, done.stdout
    proposal = call(pengasinan, "proposals.get_proposal", {"proposal_id": funded["items"][0]["id"]})
    decisions = [(d["level"], d["decision"]) for d in proposal["decisions"]]
    assert decisions == [("kecamatan", "accepted"), ("city", "funded")]
    assert proposal["decisions"][-1]["funding_source"] and proposal["decisions"][-1]["amount"]
    assert proposal["history"][-1]["actor"]["role"] == "bappeda"

    again = python(*demo, timeout=300)  # a second run finds everything done: no effect twice
    assert again.returncode == 0, f"{again.stdout}\n{again.stderr}"
    assert "40 there from a run before" in again.stdout, again.stdout
    assert call(pengasinan, "proposals.count_by_status", {})["total"] == 40
    print(f"three nodes and two demo runs in {time.monotonic() - started:.0f} s")
