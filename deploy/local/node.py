"""``make run``: set up and start the city node and two kelurahan nodes on the local servers.

Without ``--kelurahan``: the city node (vhost ``rembug-city``) and the nodes of
Pengasinan (32.75.05.1002) and Jatimakmur (32.75.08.1003), each service with
its relay and its replication link (the kelurahan publish up to the city as
their own broker users; the city's decisions come down). With ``--kelurahan
CODE``: that one kelurahan node alone, without a city.

For each node it creates the RabbitMQ vhost and the databases (one per
service), applies their migrations, then starts every process as a child
(with, for notify, a fake SMS gateway, a fake WhatsApp gateway and an SMTP
sink: development tools that keep what they are given under ``run/<code>/``
and send nothing to anyone; ``NOTIFY_PROVIDERS`` in the environment replaces
them), prints how to call them, and stays in the foreground: Ctrl-C stops
everything.
A child that dies is reported and stops all, so nothing runs half-up; if the
supervisor itself is killed, its children are stopped by the kernel. State (a
node's signing secret, logs) lives under ``run/<code>/`` (``run/32.75/`` for the
city).
"""

import argparse
import base64
import ctypes
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import psycopg

from deploy.local.fake_provider import TOKEN_VARIABLE
from shared import replication, wilayah
from shared.config import CITY_CODE
from shared.db import MIGRATIONS, Database, migrate

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {
    "proposals": {
        "class": "services.proposals.service:ProposalsService",
        "migrations": ROOT / "services" / "proposals" / "migrations",
    },
    "citizens": {
        "class": "services.citizens.service:CitizensService",
        "migrations": ROOT / "services" / "citizens" / "migrations",
    },
    "budget": {
        "class": "services.budget.service:BudgetService",
        "migrations": ROOT / "services" / "budget" / "migrations",
    },
    "notify": {
        "class": "services.notify.service:NotifyService",
        "migrations": ROOT / "services" / "notify" / "migrations",
    },
}
# Development stand-ins for the SMS/WhatsApp gateways and the mail server, one set per
# node on ports beside its services' (deploy/local/fake_provider.py, smtp_sink.py): they
# keep what notify sends in run/<code>/fake-<channel>.jsonl and send nothing anywhere.
FAKES = {"sms": 6, "whatsapp": 7, "email": 8}  # channel -> port offset in the node's ten
DEV_SENDER = "REMBUG-DEV"  # the SMS sender id of the fake gateway (at most 11 characters)
NOTIFY_DIGEST_SECONDS = "5"  # make run: the camat and bappeda hear a quiet group soon
PR_SET_PDEATHSIG = 1  # linux/prctl.h
DEFAULT_KELURAHAN = "32.75.05.1002"  # Pengasinan, Kec. Rawalumbu
DEMO_KELURAHAN = (DEFAULT_KELURAHAN, "32.75.08.1003")  # and Jatimakmur, Kec. Pondokgede
# A prefix for every node's vhost, databases and run/ directory, so that a test runs its
# nodes beside a developer's `make run` without touching theirs (none by default).
NAMESPACE = os.environ.get("REMBUG_NAMESPACE", "")
CITY_VHOST = f"{NAMESPACE}-rembug-city" if NAMESPACE else "rembug-city"
RABBIT_API = os.environ.get("RABBIT_API_URI", "http://guest:guest@127.0.0.1:15672")
AMQP_SERVER = os.environ.get("AMQP_SERVER", "pyamqp://guest:guest@127.0.0.1:5672")
PG_SERVER = os.environ.get("PG_SERVER", "postgresql://postgres@127.0.0.1:5432")
HTTP_PORT_BASE = int(os.environ.get("HTTP_PORT_BASE", "18000"))


def node_paths(code, create=True):
    """The node's directory of secrets and logs, ``run/<code>``."""
    state = ROOT / "run" / NAMESPACE / code
    if create:
        state.mkdir(parents=True, exist_ok=True)
    return state


def node_secret(state, name, make):
    """A secret of the node, made once with ``make()`` and kept in ``run/<code>/<name>``."""
    path = state / name
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(make())
    return path.read_text().strip()


def auth_secret(state):
    """The key that signs callers' tokens."""
    return node_secret(state, "auth_secret", lambda: secrets.token_urlsafe(48))


def pii_master_key(state):
    """The key that wraps every resident's data key: lose it and personal data is gone."""
    return node_secret(state, "pii_master_key", lambda: base64.b64encode(os.urandom(32)).decode())


def vhost_name(code):
    prefix = f"{NAMESPACE}-" if NAMESPACE else ""
    return CITY_VHOST if code == CITY_CODE else f"{prefix}kelurahan-{code}"


def node_label(code):
    return "the city" if code == CITY_CODE else f"Kelurahan {wilayah.name_of(code)}"


def database_name(code, service):
    prefix = f"{NAMESPACE}_" if NAMESPACE else ""
    return f"rembug_{prefix}{code.replace('.', '_')}_{service}"


def _management_put(path, body):
    api = urllib.parse.urlparse(RABBIT_API)
    base = f"{api.scheme}://{api.hostname}:{api.port or 15672}/api"
    auth = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    auth.add_password(None, base, api.username or "guest", api.password or "guest")
    opener = urllib.request.build_opener(urllib.request.HTTPBasicAuthHandler(auth))
    request = urllib.request.Request(
        f"{base}/{path}",
        data=json.dumps(body).encode(),
        method="PUT",
        headers={"content-type": "application/json"},
    )
    opener.open(request, timeout=10).close()


def ensure_vhost(vhost):
    """Create the vhost and give the broker user full rights on it (idempotent)."""
    user = urllib.parse.urlparse(RABBIT_API).username or "guest"
    quoted = urllib.parse.quote(vhost, safe="")
    _management_put(f"vhosts/{quoted}", {})
    _management_put(
        f"permissions/{quoted}/{user}", {"configure": ".*", "write": ".*", "read": ".*"}
    )


def ensure_city_link(code, state, city_vhost=CITY_VHOST):
    """The kelurahan's own user on the city vhost, with the rights of the deployed
    definitions (publish up under its code only, read its own queues); returns its
    ``CITY_AMQP_URI``."""
    user = replication.kelurahan_user(code)
    password = node_secret(state, "city_password", lambda: secrets.token_urlsafe(24))
    vhost = urllib.parse.quote(city_vhost, safe="")
    granted, topic = replication.kelurahan_permissions(code)
    _management_put(f"users/{user}", {"password": password, "tags": ""})
    _management_put(f"permissions/{vhost}/{user}", granted)
    _management_put(f"topic-permissions/{vhost}/{user}", topic)
    server = urllib.parse.urlsplit(AMQP_SERVER)
    return f"{server.scheme}://{user}:{password}@{server.hostname}:{server.port or 5672}/{vhost}"


def ensure_database(name):
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    return f"{PG_SERVER}/{name}"


def http_port(code, service):
    """The port of a service's /health, /ready and /metrics: fixed per node and service,
    so that nodes of several kelurahan run side by side (the city after the 56)."""
    codes = wilayah.kelurahan_codes()
    node_index = codes.index(code) if code in codes else len(codes)
    return HTTP_PORT_BASE + 10 * node_index + 1 + list(SERVICES).index(service)


def fake_port(code, channel):
    """The port of a node's fake provider of ``channel`` (beside its services' ports)."""
    return http_port(code, "proposals") - 1 + FAKES[channel]


def fake_provider_name(channel):
    return f"{channel}-dev"


def fake_callback_token(state):
    """The fake gateways' bearer token for notify's delivery-report hook."""
    return node_secret(state, "fake_provider_token", lambda: secrets.token_urlsafe(24))


def notify_providers(code, state):
    """``NOTIFY_PROVIDERS`` for the node's fake SMS and WhatsApp gateways and mail sink."""
    http = [
        {
            "name": fake_provider_name(channel),
            "channel": channel,
            "kind": "http",
            "url": f"http://127.0.0.1:{fake_port(code, channel)}/messages",
            "token": "development-only",
            **({"sender": DEV_SENDER} if channel == "sms" else {}),
            "rate": 200,
            "timeout": 5,
            "callback_token": fake_callback_token(state),
        }
        for channel in ("sms", "whatsapp")
    ]
    mail = {
        "name": fake_provider_name("email"),
        "channel": "email",
        "kind": "smtp",
        "host": "127.0.0.1",
        "port": fake_port(code, "email"),
        "sender": f"rembug@{code.replace('.', '-')}.rembug.test",
        "rate": 200,
    }
    return json.dumps([*http, mail])


def notify_environment(code, state):
    """Notify's settings on a make-run node: the fake providers (unless the developer
    gives NOTIFY_PROVIDERS), and short city digests."""
    return {
        "NOTIFY_PROVIDERS": os.environ.get("NOTIFY_PROVIDERS") or notify_providers(code, state),
        "NOTIFY_DIGEST_SECONDS": os.environ.get("NOTIFY_DIGEST_SECONDS", NOTIFY_DIGEST_SECONDS),
    }


def service_environment(code, service, state, city_uri=None):
    vhost = urllib.parse.quote(vhost_name(code), safe="")
    return {
        **os.environ,
        "KELURAHAN_CODE": code,
        "NODE_ROLE": "city" if code == CITY_CODE else "kelurahan",
        **({"CITY_AMQP_URI": city_uri} if city_uri else {}),
        "AMQP_URI": f"{AMQP_SERVER}/{vhost}",
        "DATABASE_URL": f"{PG_SERVER}/{database_name(code, service)}",
        "AUTH_SECRET": auth_secret(state),
        "PII_MASTER_KEY": pii_master_key(state),
        "WEB_SERVER_ADDRESS": f"127.0.0.1:{http_port(code, service)}",
        **(notify_environment(code, state) if service == "notify" else {}),
        "PYTHONPATH": str(ROOT),
        # eventlet's notice, in every log (it warns from the module that imports it)
        "PYTHONWARNINGS": "ignore::DeprecationWarning,ignore::Warning:nameko.cli.commands",
    }


def set_up(code, linked=False):
    """Broker and database objects of the node; returns each service's environment.
    ``linked``: a kelurahan replicating to the local city node."""
    state = node_paths(code)
    ensure_vhost(vhost_name(code))
    city_uri = ensure_city_link(code, state) if linked and code != CITY_CODE else None
    environments = {}
    for service, spec in SERVICES.items():
        url = ensure_database(database_name(code, service))
        db = Database(url, size=1)
        applied = migrate(db, MIGRATIONS, spec["migrations"])
        db.close()
        print(f"  {service}: database ready ({len(applied)} migrations applied now)")
        environments[service] = service_environment(code, service, state, city_uri)
    return state, environments


def die_with_parent():
    """In a child, before exec: have Linux send SIGTERM when the supervisor dies, however."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def fake_commands(code, state, environments):
    """The node's fake SMS and WhatsApp gateways (reporting deliveries to notify by their
    own message ids) and its mail sink."""
    notify = environments["notify"]["WEB_SERVER_ADDRESS"]
    commands = {}
    for channel in ("sms", "whatsapp"):
        reports = f"http://{notify}/notify/providers/{fake_provider_name(channel)}/reports"
        commands[f"fake-{channel}"] = [
            *(sys.executable, "-m", "deploy.local.fake_provider"),
            *("--port", str(fake_port(code, channel))),
            *("--log", str(state / f"fake-{channel}.jsonl")),
            f"--report-to={reports}",  # the token goes in the environment (start): not in ps
        ]
    commands["fake-email"] = [
        *(sys.executable, "-m", "deploy.local.smtp_sink"),
        *("--port", str(fake_port(code, "email"))),
        *("--log", str(state / "fake-email.jsonl")),
    ]
    return commands


def start(state, environments, label, linked=False):
    """Start every service, its relay and (``linked``) its replication link, and the fake
    providers; returns the child processes by name (``<label>/<process>``)."""
    bin_dir = Path(sys.executable).parent
    children = {}
    if "notify" in environments and not os.environ.get("NOTIFY_PROVIDERS"):
        for name, command in fake_commands(label, state, environments).items():
            log = (state / f"{name}.log").open("ab")
            children[f"{label}/{name}"] = subprocess.Popen(
                command,
                cwd=ROOT,
                env={**environments["notify"], TOKEN_VARIABLE: fake_callback_token(state)},
                stdout=log,
                stderr=log,
                preexec_fn=die_with_parent,
            )
    for service, env in environments.items():
        commands = {
            service: [
                str(bin_dir / "nameko"),
                "run",
                "--config",
                str(ROOT / "deploy" / "nameko.yaml"),
                SERVICES[service]["class"],
            ],
            f"{service}-relay": [sys.executable, "-m", "shared.relay", service],
        }
        if linked:
            commands[f"{service}-replication"] = [
                sys.executable,
                "-m",
                "shared.replication",
                service,
            ]
        if linked and service == "notify" and label == CITY_CODE:
            # notify's own copy of the kelurahan's proposals events, for the camat and bappeda
            commands["notify-city"] = [sys.executable, "-m", "services.notify.awaiting"]
        for name, command in commands.items():
            log = (state / f"{name}.log").open("ab")
            children[f"{label}/{name}"] = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=log, preexec_fn=die_with_parent
            )
    return children


def print_usage(code, state, environments):
    env = environments["proposals"]
    health = "".join(
        f"\n    {service:<10} http://{e['WEB_SERVER_ADDRESS']}/health  /ready  /metrics"
        for service, e in environments.items()
    )
    fakes = ""
    if not os.environ.get("NOTIFY_PROVIDERS"):
        fakes = (
            "\n  fake notification providers (development only: no SMS, WhatsApp or email"
            " leaves this machine):"
            + "".join(
                f"\n    {channel:<10} 127.0.0.1:{fake_port(code, channel)}"
                f" -> {state}/fake-{channel}.jsonl"
                for channel in FAKES
            )
        )
    print(f"""
rembug node for {node_label(code)} ({code}) is running.
  broker:  {env["AMQP_URI"]}
  logs:    {state}/*.log (JSON lines)
  health, readiness, metrics:{health}{fakes}""")


def print_calls(code):
    camat = "--kelurahan 32.75 --role camat --scope 32.75.05"
    print(f"""
Call the nodes (another terminal):
  .venv/bin/python -m deploy.local.token --kelurahan {code} --role operator   # prints a token
  .venv/bin/python -m deploy.local.call --kelurahan {code} proposals.status
  .venv/bin/python -m deploy.local.call --kelurahan {code} --role operator proposals.list_proposals '{{}}'
  .venv/bin/python -m deploy.local.call {camat} proposals.list_proposals '{{"kecamatan": "32.75.05"}}'
Ctrl-C stops everything.""")


def supervise(children):
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while not stopping:
        for name, child in children.items():
            if child.poll() is not None:
                print(f"{name} exited with code {child.returncode}: see its log; stopping the node")
                stopping = True
        time.sleep(0.5)
    for child in children.values():
        if child.poll() is None:
            child.terminate()
    for child in children.values():
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--kelurahan",
        default=os.environ.get("KELURAHAN_CODE"),
        help="run this one kelurahan node alone (default: the city and two)",
    )
    parser.add_argument(
        "--linked",
        default=",".join(DEMO_KELURAHAN),
        help="the kelurahan run with the city, comma-separated (default: %(default)s)",
    )
    parser.add_argument("--setup-only", action="store_true", help="create objects, start nothing")
    args = parser.parse_args(argv)
    linked_codes = tuple(args.linked.split(","))
    if not all(map(wilayah.is_kelurahan, linked_codes)):
        sys.exit(f"--linked {args.linked!r}: give kelurahan codes of Kota Bekasi, comma-separated")
    if args.kelurahan and not wilayah.is_kelurahan(args.kelurahan):
        sys.exit(f"{args.kelurahan!r} is not a kelurahan code of Kota Bekasi (see shared/data)")
    codes = [args.kelurahan] if args.kelurahan else [CITY_CODE, *linked_codes]
    linked = not args.kelurahan
    if linked:
        ensure_vhost(CITY_VHOST)
        city_amqp = f"{AMQP_SERVER}/{urllib.parse.quote(CITY_VHOST, safe='')}"
        replication.declare_topology(city_amqp, linked_codes, list(SERVICES))
    nodes = {}
    for code in codes:
        print(f"setting up the node of {node_label(code)} ({code})")
        nodes[code] = set_up(code, linked)
    if args.setup_only:
        return
    children = {}
    for code, (state, environments) in nodes.items():
        children |= start(state, environments, code, linked)
    for code, (state, environments) in nodes.items():
        print_usage(code, state, environments)
    print_calls(codes[-1])
    supervise(children)


if __name__ == "__main__":
    main()
