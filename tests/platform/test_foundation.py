"""Config, auth, migrations, safe errors and psycopg under eventlet, against the real servers."""

import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import eventlet
import pytest
from nameko.exceptions import IncorrectSignature, RemoteError
from nameko.standalone.rpc import ServiceRpcProxy

from shared import auth, config
from shared.actor import Actor
from shared.auth import Auth
from shared.db import Database, MigrationChanged, connect, migrate
from shared.errors import ConfigError, Conflict, Forbidden, Unauthenticated, from_remote
from shared.repository import EventStoreProvider
from shared.rpc import rpc
from shared.service import EventSourcedService
from tests.conftest import AUTH_SECRET
from tests.platform.test_relay import management

ROOT = Path(__file__).resolve().parents[2]
LURAH = Actor("u-lurah", "lurah", "32.75.05.1002")


class Probe(EventSourcedService):
    name = "probe"
    repo = EventStoreProvider("probe", migrations=ROOT / "tests" / "platform", event_schemas={})
    auth = Auth("probe")

    @rpc
    def sleep(self, seconds):
        with self.repo.db.connection() as conn:
            conn.execute("SELECT pg_sleep(%s)", [seconds])
        return seconds

    @rpc
    def whoami(self):
        return self.auth.actor.as_dict()

    @rpc
    def refuse(self):
        raise Conflict("proposal is rejected; only a submitted proposal can be verified")

    @rpc
    def unencodable(self):
        return {"when": object()}

    @rpc
    def crash(self):
        raise RuntimeError("SELECT * FROM residents WHERE nik = '3275054101900001'")


@pytest.fixture
def probe(start_service, rabbit_config):
    start_service(Probe)
    return rabbit_config


def reply_connections(vhost):
    """The names of the probe's reply connections the broker lists."""
    return [
        c["name"]
        for c in management(f"vhosts/{quote(vhost, safe='')}/connections")
        if c.get("client_properties", {}).get("connection_name") == "rembug-rpc-replies probe"
    ]


def wait_for_reply_connections(vhost, other_than=()):
    """The names of the probe's reply connections, once the broker lists one not in
    ``other_than`` (the management API lists a connection at its next statistics tick)."""
    deadline = time.monotonic() + 8
    while True:
        names = reply_connections(vhost)
        if set(names) - set(other_than):
            return names
        assert time.monotonic() < deadline, "no new connection for the replies"
        time.sleep(0.2)


def proxy(rabbit_config, actor=None):
    context = {"authorization": auth.issue_token(AUTH_SECRET, actor)} if actor else {}
    return ServiceRpcProxy(
        "probe", {"AMQP_URI": rabbit_config["AMQP_URI"]}, context_data=context, timeout=30
    )


def test_ten_concurrent_slow_queries_overlap_inside_one_service(probe):
    proxies = [proxy(probe) for _ in range(10)]  # a standalone proxy serves one caller at a time
    callers = [p.start() for p in proxies]
    try:
        for caller in callers:
            caller.sleep(0)  # open the service's pool connections before timing
        started = time.monotonic()
        results = list(eventlet.GreenPool(10).imap(lambda caller: caller.sleep(0.5), callers))
        elapsed = time.monotonic() - started
    finally:
        for p in proxies:
            p.stop()
    assert results == [0.5] * 10
    assert elapsed < 0.9, f"10 x pg_sleep(0.5) took {elapsed:.2f} s: psycopg blocked the hub"


def test_typed_errors_reach_the_caller_and_others_are_hidden(probe):
    with proxy(probe) as p:
        with pytest.raises(RemoteError) as refused:
            p.refuse()
        assert isinstance(from_remote(refused.value), Conflict)
        assert "only a submitted proposal" in refused.value.value
        with pytest.raises(RemoteError) as crashed:
            p.crash()
    assert crashed.value.exc_type == "InternalError"
    assert "3275054101900001" not in str(crashed.value)
    assert "reference" in crashed.value.value


def test_arguments_that_do_not_fit_the_method_are_refused(probe):
    with proxy(probe) as p:
        for call in (lambda: p.sleep(), lambda: p.sleep(0, 1), lambda: p.whoami(extra=1)):
            with pytest.raises(IncorrectSignature):
                call()
        assert p.sleep(seconds=0) == 0  # by name, too


def test_a_result_that_cannot_be_encoded_reaches_the_caller_as_an_error(probe):
    with proxy(probe) as p:
        with pytest.raises(RemoteError) as unencodable:
            p.unencodable()
        assert unencodable.value.exc_type == "UnserializableValueError"
        assert p.status()["database"] == "ok"  # the service answers on


def test_replies_go_out_again_after_the_broker_closed_their_connection(probe):
    with proxy(probe) as p:
        assert p.status()["database"] == "ok"
        names = wait_for_reply_connections(probe["vhost"])
        for name in names:
            management(f"connections/{quote(name, safe='')}", method="DELETE")
        assert [p.status()["database"] for _ in range(3)] == ["ok"] * 3
    wait_for_reply_connections(probe["vhost"], other_than=names)  # a new one carried them


def test_a_stopped_service_leaves_no_reply_connection_open(start_service, rabbit_config):
    container = start_service(Probe)
    proxies = [proxy(rabbit_config) for _ in range(3)]
    callers = [p.start() for p in proxies]
    try:
        pool = eventlet.GreenPool(3)
        assert list(pool.imap(lambda caller: caller.sleep(0.2), callers)) == [0.2] * 3
        wait_for_reply_connections(rabbit_config["vhost"])  # idle ones, to be closed
        replies = [pool.spawn(caller.sleep, 1) for caller in callers]
        eventlet.sleep(0.5)  # the calls are running: their replies go out after the stop began
        container.stop()
        assert [reply.wait() for reply in replies] == [1, 1, 1]
    finally:
        for p in proxies:
            p.stop()
    deadline = time.monotonic() + 10
    while reply_connections(rabbit_config["vhost"]):
        assert time.monotonic() < deadline, "a reply connection outlived its service"
        time.sleep(0.2)


def test_calls_need_a_valid_token(probe):
    with proxy(probe, LURAH) as p:
        assert p.whoami() == {"id": "u-lurah", "role": "lurah"}
    with proxy(probe) as p, pytest.raises(RemoteError) as missing:
        p.whoami()
    assert isinstance(from_remote(missing.value), Unauthenticated)
    forged = auth.issue_token("another-secret-" + "y" * 32, LURAH)
    with (
        ServiceRpcProxy(
            "probe", {"AMQP_URI": probe["AMQP_URI"]}, context_data={"authorization": forged}
        ) as p,
        pytest.raises(RemoteError) as bad,
    ):
        p.whoami()
    assert bad.value.exc_type == "Unauthenticated"


def test_replay_needs_the_system_role_and_status_needs_nothing(probe):
    with proxy(probe, LURAH) as p, pytest.raises(RemoteError) as refused:
        p.replay(0, 10)
    assert isinstance(from_remote(refused.value), Forbidden)
    with proxy(probe, Actor("relay", "system", "32.75")) as p:
        assert p.replay(0, 10) == []
        status = p.status()
    assert status["database"] == "ok"
    assert status["node"] == "kelurahan/32.75.05.1002"
    assert status["version"]


def test_expired_token_is_refused():
    token = auth.issue_token(AUTH_SECRET, LURAH, ttl=-1)
    with pytest.raises(Unauthenticated, match="expired"):
        auth.verify_token(AUTH_SECRET, token)


def test_config_lists_every_problem_at_once():
    with pytest.raises(ConfigError) as bad:
        config.load(
            "proposals",
            {"KELURAHAN_CODE": "32.75.07.1001", "AMQP_URI": "http://x", "NODE_ROLE": "kelurahan"},
        )
    message = str(bad.value)
    for name in ("KELURAHAN_CODE", "AMQP_URI", "AUTH_SECRET"):
        assert name in message
    good = config.load("proposals", {"KELURAHAN_CODE": "32.75.05.1002", "AUTH_SECRET": AUTH_SECRET})
    assert good.source == "/kelurahan/32.75.05.1002/proposals"
    city = config.load("proposals", {"NODE_ROLE": "city", "AUTH_SECRET": AUTH_SECRET})
    assert city.node == "city/32.75"


MIGRATE = """
import sys
from shared.db import Database, MigrationChanged, connect, migrate
print(len(migrate(Database(sys.argv[1]))))
"""


def test_concurrent_migrations_wait_for_each_other(database_url):
    """Two processes migrating one empty database at once: no race, each file applied once."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATE, database_url],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outputs]
    applied = sorted(int(out) for out, _ in outputs)
    assert applied[0] == 0 and applied[1] >= 1
    db = Database(database_url)
    assert migrate(db) == []
    db.close()


def test_a_migration_edited_after_it_was_applied_stops_the_start(database_url, tmp_path):
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "001_things.sql").write_text("CREATE TABLE things (id int);")
    db = Database(database_url)
    try:
        assert migrate(db, folder) == [
            "tmp_path/migrations/001_things.sql".replace("tmp_path", tmp_path.name)
        ]
        assert migrate(db, folder) == []
        (folder / "001_things.sql").write_text("CREATE TABLE things (id bigint);")
        with pytest.raises(MigrationChanged, match="new migration file"):
            migrate(db, folder)
    finally:
        db.close()


def test_waiting_for_notifications_ends_at_its_timeout_under_eventlet(database_url):
    """psycopg's wait limit holds on eventlet's hub (the relay polls with it)."""
    conn = connect(database_url, autocommit=True)
    try:
        conn.execute("LISTEN nothing_will_come")
        started = time.monotonic()
        with eventlet.Timeout(5):
            assert list(conn.notifies(timeout=0.3)) == []
        assert 0.25 < time.monotonic() - started < 2
        assert conn.execute("SELECT 1 AS one").fetchone()["one"] == 1  # still usable
    finally:
        conn.close()
