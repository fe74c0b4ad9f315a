"""A kelurahan node for notify tests: its sources, notify, a fake SMS provider, SMTP.

The sources (``proposals``, ``citizens``, ``budget``) are either stand-ins that
own a log and answer ``replay``, each in a schema of its own, as in
``tests/platform/test_subscriber.py`` (the tests append the events the real
services would store and publish them to ``<source>.events`` as the relay
would), or the real services with their relays (:meth:`Node.service`), driven
through their RPC API.
The SMS/WhatsApp providers are real HTTP servers (:mod:`deploy.local.fake_provider`)
and email goes to a real SMTP server (:mod:`deploy.local.smtp_sink`), each in
a process of its own that a test can kill and start again. Notify's clock is a
file (``NOTIFY_CLOCK=file:...``), set to 10:00 WIB unless a test moves it.
"""

import json
import socket
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
import requests
from kombu import Connection
from nameko.standalone.events import get_event_exchange
from nameko.standalone.rpc import ServiceRpcProxy
from nameko.testing.utils import get_extension

from services.notify.service import NotifyService
from shared.auth import Auth, issue_token
from shared.envelope import Event
from shared.health import http_address
from shared.relay import Relay
from shared.repository import EventStoreProvider
from shared.service import EventSourcedService
from shared.subscriber import Subscription
from tests.conftest import AUTH_SECRET, drop_schema

ROOT = Path(__file__).resolve().parents[2]
KELURAHAN = "32.75.05.1002"
DAYTIME = "2026-03-02T10:00:00+07:00"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, timeout=10.0, what="the condition"):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Server:
    """A server process of its own (fake provider or SMTP), killable and restartable."""

    def __init__(self, module, port, log_path):
        self.module, self.port, self.log_path = module, port, log_path
        self.process = None

    def start(self, *args):
        """Start the process (``args``: more of its command-line options, kept for a
        restart)."""
        self.args = args or getattr(self, "args", ())
        command = [sys.executable, "-m", self.module, "--port", str(self.port)]
        self.process = subprocess.Popen(
            [*command, "--log", self.log_path, *self.args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.process.stdout.readline().strip() == "ready"
        return self

    def kill(self):
        """A real outage: the process is gone, the port refuses connections."""
        self.process.kill()
        self.process.wait(5)

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.kill()


class FakeProvider(Server):
    def __init__(self, name, channel, tmp_path):
        super().__init__("deploy.local.fake_provider", free_port(), str(tmp_path / f"{name}.jsonl"))
        self.name, self.channel = name, channel
        self.url = f"http://127.0.0.1:{self.port}"

    def settings(self, priority=1, rate=500):
        return {
            "name": self.name,
            "channel": self.channel,
            "kind": "http",
            "url": f"{self.url}/messages",
            "token": "test-token",
            "sender": "REMBUG" if self.channel == "sms" else None,
            "priority": priority,
            "rate": rate,
            "timeout": 2,
            "callback_token": f"callback-{self.name}",
        }

    def mode(self, mode, delay=0.0):
        requests.post(f"{self.url}/_mode", json={"mode": mode, "delay": delay}, timeout=5)

    def receipts(self):
        """What it accepted, from its file (works while it is down, too)."""
        path = Path(self.log_path)
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def stats(self):
        return requests.get(f"{self.url}/_stats", timeout=5).json()


class SmtpServer(Server):
    def __init__(self, tmp_path):
        super().__init__("deploy.local.smtp_sink", free_port(), str(tmp_path / "smtp.jsonl"))

    def settings(self, priority=1):
        return {
            "name": "smtp-local",
            "channel": "email",
            "kind": "smtp",
            "host": "127.0.0.1",
            "port": self.port,
            "sender": "rembug@pengasinan.bekasikota.go.id",
            "priority": priority,
        }

    def messages(self):
        path = Path(self.log_path)
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def source_service(name, migrations):
    """A stand-in for another service: it owns a log and answers ``replay``."""

    return type(
        f"StandIn_{name}",
        (EventSourcedService,),
        {
            "name": name,
            "repo": EventStoreProvider(name, migrations, {}),
            "auth": Auth(name),
        },
    )


class Source:
    """A running stand-in: append events to its log and publish them as the relay would."""

    def __init__(self, name, container, amqp):
        self.name = name
        self.container = container
        self.store = get_extension(container, EventStoreProvider).store
        self.exchange = get_event_exchange(name, container.config)
        self.amqp = amqp
        self.exchange(amqp.default_channel).declare()

    def append(self, type_, stream, data, actor=None):
        event = Event(
            type=type_, stream=stream, data=data, actor=actor or {"id": "u-op", "role": "operator"}
        )
        return self.store.append(stream, None, [event]).events[0]

    def publish(self, *events):
        producer = self.amqp.Producer()
        for event in events:
            producer.publish(
                event.to_cloudevent(),
                exchange=self.exchange,
                routing_key=event.type,
                serializer="json",
                delivery_mode=2,
            )

    def emit(self, type_, stream, data, actor=None):
        """Append and publish one event; returns it."""
        event = self.append(type_, stream, data, actor)
        self.publish(event)
        return event


class RealService:
    """A real service of the node (its own schema) with its relay running in a thread."""

    def __init__(self, name, container, database_url, config):
        self.name, self.container, self.config = name, container, config
        self.database_url = database_url
        self.relay = Relay(database_url, config["AMQP_URI"], name, f"/kelurahan/{KELURAHAN}/{name}")
        self.stop_event = threading.Event()
        self.thread = threading.Thread(
            target=self.relay.run_forever, args=(self.stop_event,), daemon=True
        )
        self.thread.start()

    @contextmanager
    def __call__(self, actor):
        """A client of the service acting as ``actor``."""
        context = {"authorization": issue_token(AUTH_SECRET, actor)}
        with ServiceRpcProxy(self.name, self.config, context_data=context) as proxy:
            yield proxy

    def head(self):
        """The last sequence of the service's log."""
        return get_extension(self.container, EventStoreProvider).store.head()

    def stop(self):
        self.stop_event.set()
        self.thread.join(10)


def query(database_url, sql, params=()):
    """Rows of ``sql`` as dicts."""
    with psycopg.connect(database_url) as conn:
        cursor = conn.execute(sql, params)
        columns = [c.name for c in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def new_schema(server_database_url):
    schema = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(server_database_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return schema, f"{server_database_url}?options=-csearch_path%3D{schema}"


class Node:
    def __init__(self, request, tmp_path, monkeypatch, container_factory, rabbit_config, env):
        self.tmp_path = tmp_path
        self.monkeypatch = monkeypatch
        self.container_factory = container_factory
        self.config = {"AMQP_URI": rabbit_config["AMQP_URI"]}
        self.env = env
        self.server_database_url = request.getfixturevalue("server_database_url")
        self.notify_url = env["DATABASE_URL"]
        self.schemas = []
        self.servers = []
        self.sources = {}
        self.amqp = Connection(self.config["AMQP_URI"])
        self.clock_path = tmp_path / "clock"
        self.set_clock(DAYTIME)
        self.sms = self.server(FakeProvider("sms-primary", "sms", tmp_path))
        self.sms_backup = self.server(FakeProvider("sms-backup", "sms", tmp_path))
        self.whatsapp = self.server(FakeProvider("wa", "whatsapp", tmp_path))
        self.smtp = self.server(SmtpServer(tmp_path))
        self.notify_env = {
            "NOTIFY_PROVIDERS": json.dumps(
                [
                    self.sms.settings(priority=1),
                    self.sms_backup.settings(priority=2),
                    self.whatsapp.settings(),
                    self.smtp.settings(),
                ]
            ),
            "NOTIFY_CLOCK": f"file:{self.clock_path}",
            "NOTIFY_BACKOFF_SECONDS": "0.2",
            "NOTIFY_COOLDOWN_SECONDS": "0.5",
            "NOTIFY_LEASE_SECONDS": "3",
            "NOTIFY_POLL_SECONDS": "0.05",
        }
        for key, value in {**env, **self.notify_env}.items():
            monkeypatch.setenv(key, value)
        self.notify = None

    def server(self, server):
        self.servers.append(server)
        return server.start()

    def set_clock(self, iso):
        self.clock_path.write_text(iso)

    def source(self, name):
        """Start the stand-in ``name`` (in a schema of its own)."""
        if name not in self.sources:
            schema, url = new_schema(self.server_database_url)
            self.schemas.append(schema)
            migrations = self.tmp_path / f"migrations-{name}"
            migrations.mkdir()
            self.monkeypatch.setenv("DATABASE_URL", url)
            container = self.container_factory(source_service(name, migrations), self.config)
            container.start()
            self.monkeypatch.setenv("DATABASE_URL", self.notify_url)
            self.sources[name] = Source(name, container, self.amqp)
        return self.sources[name]

    def service(self, service_cls):
        """Start the real service ``service_cls`` (in a schema of its own) and its relay;
        returns a :class:`RealService`, also the source notify follows by that name."""
        schema, url = new_schema(self.server_database_url)
        self.schemas.append(schema)
        self.monkeypatch.setenv("DATABASE_URL", url)
        container = self.container_factory(service_cls, self.config)
        container.start()
        self.monkeypatch.setenv("DATABASE_URL", self.notify_url)
        service = RealService(service_cls.name, container, url, self.config)
        self.sources[service.name] = service
        return service

    def caught_up(self, name):
        """Whether notify has applied every event the real service ``name`` has stored."""
        head = self.sources[name].head()
        rows = self.query(
            "SELECT position FROM consumer_positions WHERE source = %s",
            [f"/kelurahan/{KELURAHAN}/{name}"],
        )
        return bool(rows) and min(r["position"] for r in rows) >= head

    def start_notify(self, **env):
        for key, value in env.items():
            self.monkeypatch.setenv(key, value)
        self.monkeypatch.setenv("DATABASE_URL", self.notify_url)
        self.notify = self.container_factory(NotifyService, self.config)
        self.notify.start()
        host, port = http_address(self.notify)  # a free local port, as the platform picks
        self.web_url = f"http://{host}:{port}"
        for subscription in self.notify.extensions:
            if (
                isinstance(subscription, Subscription)
                and subscription.source_service in self.sources
            ):
                wait_until(lambda s=subscription: not s.behind, what="notify to catch up")
        return self.notify

    @contextmanager
    def rpc(self, actor):
        context = {"authorization": issue_token(AUTH_SECRET, actor)} if actor else {}
        with ServiceRpcProxy("notify", self.config, context_data=context) as proxy:
            yield proxy

    def query(self, sql, params=()):
        return query(self.notify_url, sql, params)

    def notifications(self, **where):
        clause = " AND ".join(f"{k} = %s" for k in where) or "true"
        return self.query(
            f"SELECT * FROM notifications WHERE {clause} ORDER BY created_at, user_id",
            list(where.values()),
        )

    def close(self):
        for source in self.sources.values():
            if isinstance(source, RealService):
                source.stop()
        for server in self.servers:
            server.stop()
        self.amqp.release()
        for schema in self.schemas:
            drop_schema(self.server_database_url, schema)


@pytest.fixture
def node(request, tmp_path, monkeypatch, container_factory, rabbit_config, service_env):
    node = Node(request, tmp_path, monkeypatch, container_factory, rabbit_config, service_env)
    yield node
    node.close()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    """The fake servers are on loopback: never through an HTTP proxy of the environment."""
    for key in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
