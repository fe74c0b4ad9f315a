"""Measure the resident memory of a whole kelurahan node on the local servers.

    .venv/bin/python -m deploy.measure_memory [--kelurahan 32.75.12.1003] [--proposals 300]

Starts the node as deployed (``deploy/launch.py``: the four services, their
relays and their replication links, from the node's env file filled in for the
local PostgreSQL and RabbitMQ; the links go to a city vhost of their own,
``memory-rembug-city``, as the kelurahan's own broker user), waits until every service is ready, submits some proposals so
that the workers, pools and caches are warm, and prints each process's RSS
and PSS (proportional set size: shared pages split between the processes that
share them, so PSS adds up) from ``/proc``, then PostgreSQL's and RabbitMQ's.
The local PostgreSQL and RabbitMQ also serve whatever else runs on this
machine: their figures are the whole servers', an upper bound for the node.
The node's vhosts, its broker user and its databases are dropped afterwards.
"""

import argparse
import base64
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", module="nameko")  # eventlet's notice, when nameko imports it

import psycopg  # noqa: E402
import requests  # noqa: E402
from nameko.standalone.rpc import ClusterRpcProxy  # noqa: E402

from deploy import launch  # noqa: E402
from deploy.local import node as local_node  # noqa: E402
from shared import replication  # noqa: E402
from shared.actor import Actor  # noqa: E402
from shared.auth import issue_token  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CODE = "32.75.12.1003"  # Jatimelati: a node nobody runs here by default
MIB = 1024 * 1024
DATABASE_SERVER = os.environ.get("PG_SERVER", "postgresql://postgres@127.0.0.1:5432")
AMQP_SERVER = os.environ.get("AMQP_SERVER", "pyamqp://guest:guest@127.0.0.1:5672")
CITY_VHOST = "memory-rembug-city"  # the links' city: a vhost of its own, dropped afterwards


def memory_of(pid):
    """``(rss, pss)`` in bytes of one process, from /proc (0, 0 if it is gone)."""
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except OSError:
        return 0, 0
    fields = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in rollup[1:]}
    return fields.get("Rss", 0), fields.get("Pss", 0)


def pids_named(name):
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "comm").read_text().strip() == name:
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def node_env(code, city_amqp_uri):
    env = launch.read_env_file(ROOT / "deploy" / "env" / f"{code}.env")
    env = {key: value.replace(launch.PLACEHOLDER, "unused") for key, value in env.items()}
    return (
        env
        | launch.server_variables(DATABASE_SERVER, AMQP_SERVER)
        | {
            "CITY_AMQP_URI": city_amqp_uri,
            "AUTH_SECRET": base64.b64encode(os.urandom(36)).decode(),
            "PII_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
            "HTTP_HOST": "127.0.0.1",
            **{f"HTTP_PORT_{s.upper()}": str(19000 + i) for i, s in enumerate(launch.SERVICES)},
        }
    )


def drop(code):
    with psycopg.connect(f"{DATABASE_SERVER}/postgres", autocommit=True) as conn:
        for service in launch.SERVICES:
            name = launch.database_name(code, service)
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    api = local_node.RABBIT_API
    for path in (f"vhosts/kelurahan-{code}", f"vhosts/{CITY_VHOST}", f"users/kelurahan-{code}"):
        requests.delete(f"{api}/api/{path}", timeout=10)


def link_to_a_city(code, state):
    """A city vhost with the replication topology, and the kelurahan's user on it
    (its password kept in ``state``): returns the node's ``CITY_AMQP_URI``."""
    local_node.ensure_vhost(CITY_VHOST)
    city = f"{AMQP_SERVER}/{urllib.parse.quote(CITY_VHOST, safe='')}"
    replication.declare_topology(city, [code], list(launch.SERVICES))
    return local_node.ensure_city_link(code, state, CITY_VHOST)


def start(code, env, log_dir):
    env_file = log_dir / f"{code}.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    clean = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "AMQP_URI")}

    def launch_target(target):
        log = (log_dir / f"{target}.log").open("ab")
        return subprocess.Popen(
            [sys.executable, "-m", "deploy.launch", "--env-dir", str(log_dir), f"{code}:{target}"],
            cwd=ROOT,
            env=clean,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    if launch_target("databases").wait(60) != 0:
        sys.exit(f"could not create the databases: see {log_dir}/databases.log")
    return {
        target: launch_target(target)
        for service in launch.SERVICES
        for target in (service, f"{service}-relay", f"{service}-replication")
    }


def wait_ready(env, children, log_dir, timeout=90):
    deadline = time.monotonic() + timeout
    for service in launch.SERVICES:
        url = f"http://127.0.0.1:{env[f'HTTP_PORT_{service.upper()}']}/ready"
        while True:
            dead = [name for name, child in children.items() if child.poll() is not None]
            if dead:
                sys.exit(f"{', '.join(dead)} exited: see {log_dir}")
            try:
                if requests.get(url, timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                sys.exit(f"{service} not ready after {timeout} s: see {log_dir}")
            time.sleep(0.3)


def warm_up(code, env, count):
    """Submit ``count`` proposals and read them back: workers, pools and caches in use."""
    if not count:
        return
    token = issue_token(env["AUTH_SECRET"], Actor("u-ketua-rt", "ketua_rt", code, rw=7, rt=3))
    config = {"AMQP_URI": launch.amqp_uri(env)}
    with ClusterRpcProxy(config, context_data={"authorization": token}, timeout=30) as rpc:
        for n in range(count):
            rpc.proposals.submit(
                year=2027,
                title=f"Perbaikan saluran air RT 03 nomor {n}",
                problem="Saluran tersumbat, banjir saat hujan",
                idea="Normalisasi saluran 150 m",
                sector="pekerjaan_umum",
                target_agency="Dinas Bina Marga dan Sumber Daya Air",
                proposer={"level": "rt", "rw": 7, "rt": 3},
                location={"rw": 7, "rt": 3},
                volume=150,
                unit="m",
                estimated_cost=120_000_000,
            )
        rpc.proposals.list_proposals(per_page=100)


def rabbit_memory():
    api = urllib.parse.urlsplit(local_node.RABBIT_API)
    base = f"{api.scheme}://{api.hostname}:{api.port or 15672}/api"
    auth = (api.username or "guest", api.password or "guest")
    nodes = requests.get(f"{base}/nodes", auth=auth, timeout=10).json()
    return sum(n.get("mem_used", 0) for n in nodes)


def report(children):
    rows, totals = [], {"rss": 0, "pss": 0}
    for name, child in children.items():
        rss, pss = memory_of(child.pid)
        rows.append((name, rss, pss))
        totals["rss"] += rss
        totals["pss"] += pss
    print(f"\n{'process':<24}{'RSS MiB':>10}{'PSS MiB':>10}")
    for name, rss, pss in rows:
        print(f"{name:<24}{rss / MIB:>10.1f}{pss / MIB:>10.1f}")
    print(f"{'node processes':<24}{totals['rss'] / MIB:>10.1f}{totals['pss'] / MIB:>10.1f}")
    servers = {}
    for label, comm in (("postgresql", "postgres"), ("rabbitmq (beam.smp)", "beam.smp")):
        pairs = [memory_of(pid) for pid in pids_named(comm)]
        servers[label] = (sum(r for r, _ in pairs), sum(p for _, p in pairs), len(pairs))
    for label, (rss, pss, n) in servers.items():
        print(f"{label:<24}{rss / MIB:>10.1f}{pss / MIB:>10.1f}   ({n} processes, whole server)")
    print(f"{'rabbitmq mem_used':<24}{rabbit_memory() / MIB:>10.1f}   (the broker's own account)")
    whole = totals["pss"] + sum(pss for _, pss, _ in servers.values())
    print(f"{'node total (PSS)':<24}{whole / MIB:>10.1f}   of a 2048 MiB budget")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kelurahan", default=DEFAULT_CODE)
    parser.add_argument("--proposals", type=int, default=300, help="submitted to warm up")
    parser.add_argument("--keep", action="store_true", help="keep the vhost and databases")
    args = parser.parse_args(argv)
    code = args.kelurahan
    drop(code)
    local_node.ensure_vhost(f"kelurahan-{code}")
    log_dir = ROOT / "run" / "measure-memory" / code
    log_dir.mkdir(parents=True, exist_ok=True)
    env = node_env(code, link_to_a_city(code, log_dir))
    children = start(code, env, log_dir)
    try:
        wait_ready(env, children, log_dir)
        started = time.monotonic()
        warm_up(code, env, args.proposals)
        print(
            f"node {code} ready; {args.proposals} proposals submitted in "
            f"{time.monotonic() - started:.1f} s"
        )
        time.sleep(2)  # the relays and the links publish them
        report(children)
    finally:
        for child in children.values():
            child.send_signal(signal.SIGTERM)
        for child in children.values():
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
        if not args.keep:
            drop(code)


if __name__ == "__main__":
    main()
