"""``make run``: set up and start one kelurahan node on the local servers.

Creates the node's RabbitMQ vhost and its databases (one per service), applies
their migrations, then starts every service and its relay as child processes,
prints how to call them, and stays in the foreground: Ctrl-C stops the node.
A child that dies is reported and stops the node, so nothing runs half-up;
if the supervisor itself is killed, its children are stopped by the kernel.
State (the node's signing secret, logs) lives under ``run/<kelurahan code>/``.
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

from shared import wilayah
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
}
PR_SET_PDEATHSIG = 1  # linux/prctl.h
DEFAULT_KELURAHAN = "32.75.05.1002"  # Pengasinan, Kec. Rawalumbu
RABBIT_API = os.environ.get("RABBIT_API_URI", "http://guest:guest@127.0.0.1:15672")
AMQP_SERVER = os.environ.get("AMQP_SERVER", "pyamqp://guest:guest@127.0.0.1:5672")
PG_SERVER = os.environ.get("PG_SERVER", "postgresql://postgres@127.0.0.1:5432")
HTTP_PORT_BASE = int(os.environ.get("HTTP_PORT_BASE", "18000"))


def node_paths(code):
    state = ROOT / "run" / code
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
    return f"kelurahan-{code}"


def database_name(code, service):
    return f"rembug_{code.replace('.', '_')}_{service}"


def ensure_vhost(vhost):
    """Create the vhost and give the broker user full rights on it (idempotent)."""
    api = urllib.parse.urlparse(RABBIT_API)
    base = f"{api.scheme}://{api.hostname}:{api.port or 15672}/api"
    user = api.username or "guest"
    auth = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    auth.add_password(None, base, user, api.password or "guest")
    opener = urllib.request.build_opener(urllib.request.HTTPBasicAuthHandler(auth))
    quoted = urllib.parse.quote(vhost, safe="")

    def put(path, body):
        request = urllib.request.Request(
            f"{base}/{path}",
            data=json.dumps(body).encode(),
            method="PUT",
            headers={"content-type": "application/json"},
        )
        opener.open(request, timeout=10).close()

    put(f"vhosts/{quoted}", {})
    put(f"permissions/{quoted}/{user}", {"configure": ".*", "write": ".*", "read": ".*"})


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


def service_environment(code, service, state):
    vhost = urllib.parse.quote(vhost_name(code), safe="")
    return {
        **os.environ,
        "KELURAHAN_CODE": code,
        "NODE_ROLE": "kelurahan",
        "AMQP_URI": f"{AMQP_SERVER}/{vhost}",
        "DATABASE_URL": f"{PG_SERVER}/{database_name(code, service)}",
        "AUTH_SECRET": auth_secret(state),
        "PII_MASTER_KEY": pii_master_key(state),
        "WEB_SERVER_ADDRESS": f"127.0.0.1:{http_port(code, service)}",
        "PYTHONPATH": str(ROOT),
        # eventlet's notice, in every log (it warns from the module that imports it)
        "PYTHONWARNINGS": "ignore::DeprecationWarning,ignore::Warning:nameko.cli.commands",
    }


def set_up(code):
    """Broker and database objects of the node; returns each service's environment."""
    state = node_paths(code)
    ensure_vhost(vhost_name(code))
    environments = {}
    for service, spec in SERVICES.items():
        url = ensure_database(database_name(code, service))
        db = Database(url, size=1)
        applied = migrate(db, MIGRATIONS, spec["migrations"])
        db.close()
        print(f"  {service}: database ready ({len(applied)} migrations applied now)")
        environments[service] = service_environment(code, service, state)
    return state, environments


def die_with_parent():
    """In a child, before exec: have Linux send SIGTERM when the supervisor dies, however."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start(state, environments):
    """Start every service and its relay; returns the child processes by name."""
    bin_dir = Path(sys.executable).parent
    children = {}
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
        for name, command in commands.items():
            log = (state / f"{name}.log").open("ab")
            children[name] = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=log, preexec_fn=die_with_parent
            )
    return children


def print_usage(code, state, environments):
    env = environments["proposals"]
    health = "".join(
        f"\n    {service:<10} http://{e['WEB_SERVER_ADDRESS']}/health  /ready  /metrics"
        for service, e in environments.items()
    )
    print(f"""
rembug node for Kelurahan {wilayah.name_of(code)} ({code}) is running.
  broker:  {env["AMQP_URI"]}
  logs:    {state}/*.log (JSON lines)
  health, readiness, metrics:{health}

Call it (another terminal):
  .venv/bin/python -m deploy.local.token --kelurahan {code} --role operator   # prints a token
  .venv/bin/python -m deploy.local.call proposals.status
  .venv/bin/python -m deploy.local.call --role operator proposals.list_proposals '{{}}'
Ctrl-C stops the node.""")


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
    parser.add_argument("--kelurahan", default=os.environ.get("KELURAHAN_CODE", DEFAULT_KELURAHAN))
    parser.add_argument("--setup-only", action="store_true", help="create objects, start nothing")
    args = parser.parse_args(argv)
    if not wilayah.is_kelurahan(args.kelurahan):
        sys.exit(f"{args.kelurahan!r} is not a kelurahan code of Kota Bekasi (see shared/data)")
    print(f"setting up node {args.kelurahan} ({wilayah.name_of(args.kelurahan)})")
    state, environments = set_up(args.kelurahan)
    if args.setup_only:
        return
    children = start(state, environments)
    print_usage(args.kelurahan, state, environments)
    supervise(children)


if __name__ == "__main__":
    main()
