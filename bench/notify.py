"""Notifications from event to the provider's receipt, against bare HTTP requests to the provider.

Subject: notify running in this process (nameko, eventlet) with one SMS
provider, the fake provider of the tests and make run (``deploy/local/fake_provider.py``, a
real HTTP server in a process of its own). A stand-in ``budget`` service owns a
log and answers ``replay``; the platform's relay (``python -m shared.relay
budget``, its own process as on a node) publishes it to ``budget.events``. Each
round appends N ``expense.recorded`` events to that log in one transaction;
each notifies the one registered lurah by SMS. The round ends when the provider
has accepted all N: notifications/s from the append to the last receipt (relay,
subscription, exactly-once tracking, recipients, rendering, the outbox,
claiming, sending, recording).

notify runs with ``max_workers`` 20, a node's default (``MAX_WORKERS``); its
subscriptions apply up to 100 waiting events per transaction, with a broker
window of three such batches whatever the workers.

A notify round ends when the provider answers ``GET /_stats?received=N`` (it
answers once it has N, so the script does not poll it). Meanwhile the script
looks every 100 ms at the subscription's position (one row, for when every
notification was created): watching costs the subject a little, the baseline
nothing.

Baseline: N bare HTTP POSTs of the same kind of body to the same provider, with
the same client (urllib3, one pool) and as many in flight at once as notify's
dispatcher (``NOTIFY_CONCURRENCY``, 16), each with its own idempotency key.
Subject and baseline take turns (ABBA).
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import eventlet
import urllib3
from nameko.runners import ServiceRunner
from nameko.standalone.rpc import ServiceRpcProxy
from psycopg.conninfo import conninfo_to_dict

from bench import alternate, benchmark, compare, fresh_database, log
from bench.nameko_rpc import rabbit_vhost

ROOT = Path(__file__).resolve().parents[1]
CONCURRENCY = 16
POLL = 0.1  # seconds between two looks at the subscription's position during a notify round
SECRET = "bench-secret-" + "x" * 32
MASTER_KEY = "cmVtYnVnLXRlc3RzLW9ubHktbWFzdGVyLWtleS0zMmI="  # 32 bytes, benchmarks only


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _url(conninfo):
    """A postgresql:// URL for a psycopg conninfo string (the services want URLs)."""
    parts = conninfo_to_dict(conninfo)
    user = parts.get("user", "postgres")
    host, port = parts.get("host", "127.0.0.1"), parts.get("port", "5432")
    return f"postgresql://{user}@{host}:{port}/{parts['dbname']}"


def _start_provider(port, log_path):
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "deploy.local.fake_provider",
            "--port",
            str(port),
            "--log",
            log_path,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout.readline().strip() == "ready"
    return process


@contextmanager
def _restored(name):
    """Put back the environment variable ``name`` (the services take their database from it)."""
    before = os.environ.get(name)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


@benchmark("notify", eventlet=True)
def notify(quick):
    """Notifications/s from event to provider receipt vs bare HTTP POSTs to that provider."""
    from services.notify.service import NotifyService
    from shared.actor import Actor
    from shared.auth import Auth, issue_token
    from shared.db import Database
    from shared.envelope import Event
    from shared.repository import EventStoreProvider
    from shared.service import EventSourcedService

    count, rounds = (200, 2) if quick else (2_000, 4)
    tmp = Path(tempfile.mkdtemp(prefix="rembug-bench-notify-"))
    port = _free_port()
    provider = _start_provider(port, str(tmp / "receipts.jsonl"))
    url = f"http://127.0.0.1:{port}"
    http = urllib3.PoolManager(maxsize=CONCURRENCY, block=True, retries=False)

    def received(at_least=0):
        """The provider's count of messages, once it is at least ``at_least``."""
        reply = http.request("GET", f"{url}/_stats?received={at_least}", timeout=120)
        return json.loads(reply.data)["received"]

    (tmp / "migrations").mkdir()
    clock = tmp / "clock"
    clock.write_text("2026-03-02T10:00:00+07:00")

    class Budget(EventSourcedService):  # a stand-in: the budget service's log and replay
        name = "budget"
        repo = EventStoreProvider("budget", tmp / "migrations", {})
        auth = Auth("budget")

    try:
        with (
            fresh_database("notify") as notify_url,
            fresh_database("notify_source") as source_url,
            rabbit_vhost("notify") as amqp_uri,
            _restored("DATABASE_URL"),
        ):
            os.environ.update(
                {
                    "KELURAHAN_CODE": "32.75.05.1002",
                    "AMQP_URI": amqp_uri,
                    "AUTH_SECRET": SECRET,
                    "PII_MASTER_KEY": MASTER_KEY,
                    # SMS go only from 08:00 to 20:00 WIB: the run happens at 10:00 WIB
                    "NOTIFY_CLOCK": f"file:{clock}",
                    "NOTIFY_CONCURRENCY": str(CONCURRENCY),
                    "NOTIFY_POLL_SECONDS": "0.05",
                    "NOTIFY_PROVIDERS": json.dumps(
                        [
                            {
                                "name": "fake-sms",
                                "channel": "sms",
                                "kind": "http",
                                "url": f"{url}/messages",
                                "sender": "REMBUG",
                                "rate": 100_000,
                            }
                        ]
                    ),
                }
            )
            config = {"AMQP_URI": amqp_uri, "max_workers": 20}
            os.environ["DATABASE_URL"] = _url(source_url)
            source_runner = ServiceRunner(config)
            source_runner.add_service(Budget)
            source_runner.start()
            os.environ["DATABASE_URL"] = _url(notify_url)
            runner = ServiceRunner(config)
            runner.add_service(NotifyService)
            runner.start()
            store = next(
                d
                for d in next(iter(source_runner.containers)).dependencies
                if d.attr_name == "repo"
            ).store
            token = issue_token(SECRET, Actor("u-op", "operator", "32.75.05.1002"))
            with ServiceRpcProxy("notify", config, context_data={"authorization": token}) as rpc:
                rpc.register_contact(
                    user_id="u-lurah", role="lurah", phone="081234500001", channels=["sms"]
                )
            counter, stages = [0], []
            db = Database(_url(notify_url), size=1)

            def applied():
                """The subscription's position in the budget log: its notifications commit
                with it, so position N means the first N events' notifications exist (one
                row to read, where counting the notifications would scan a growing table
                while the round runs)."""
                with db.read() as conn:
                    row = conn.execute(
                        "SELECT max(position) AS p FROM consumer_positions WHERE source LIKE '%/budget'"
                    ).fetchone()
                return row["p"] or 0

            def expense(n):
                return Event(
                    "expense.recorded",
                    f"expense-{n}",
                    {
                        "expense_id": f"e{n}",
                        "line_id": "l1",
                        "amount": 1000 + n,
                        "description": f"Belanja nomor {n}",
                        "status": "awaiting_approval",
                    },
                )

            relay = subprocess.Popen(
                [sys.executable, "-m", "shared.relay", "budget"],
                cwd=ROOT,
                env={**os.environ, "DATABASE_URL": _url(source_url)},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

            def run_notify():
                start = received()
                first = counter[0]
                counter[0] += count
                began = time.perf_counter()

                def all_created():
                    while applied() < first + count:
                        eventlet.sleep(POLL)
                    return time.perf_counter() - began

                watcher = eventlet.spawn(all_created)
                batch = [expense(n) for n in range(first, first + count)]
                store.append_many([(e.stream, None, [e]) for e in batch])  # the relay publishes
                if received(start + count) < start + count:
                    raise RuntimeError(f"the provider did not receive {count} in time")
                stages.append((watcher.wait(), time.perf_counter() - began))
                return count

            body = {
                "channel": "sms",
                "to": "+6281234500001",
                "sender": "REMBUG",
                "text": "Rembug: Pengeluaran Rp 1.000 (Belanja nomor 1) menunggu persetujuan Anda."
                " Balas BERHENTI utk berhenti.",
            }

            def post(_):
                key = str(uuid.uuid4())
                response = http.request(
                    "POST",
                    f"{url}/messages",
                    body=json.dumps({**body, "reference": key}).encode(),
                    headers={"Content-Type": "application/json", "Idempotency-Key": key},
                )
                assert response.status == 200

            pool = eventlet.GreenPool(CONCURRENCY)

            def run_bare():
                for _ in pool.imap(post, range(count)):
                    pass
                return count

            run_notify()  # warm up both
            run_bare()
            notify_rate, bare_rate = alternate(rounds, run_notify, run_bare)
            runner.stop()
            source_runner.stop()
            relay.terminate()
            relay.wait(10)
    finally:
        provider.kill()
        provider.wait()
    log(f"notify: {rounds} x {count} notifications, taking turns with bare HTTP POSTs")
    for created, done in stages:
        log(f"notify: all {count} created after {created:.2f} s, received after {done:.2f} s")
    compare(
        "notify",
        notify_rate,
        "notifications/s",
        bare_rate,
        f"bare_http_posts_{CONCURRENCY}_in_flight",
        target=0.5,
    )
