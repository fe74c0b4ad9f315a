"""Start one process of a deployed node: a service, its relay, its replication, or the databases' set-up.

    python -m deploy.launch proposals                 # the service (nameko run)
    python -m deploy.launch proposals-relay           # its relay
    python -m deploy.launch proposals-replication     # its replication with the city
    python -m deploy.launch notify-awaiting           # city node: the camat's and bappeda's notices
    python -m deploy.launch databases                 # create the node's databases if missing
    python -m deploy.launch --env-dir /etc/rembug 32.75.05.1002:budget   # systemd's %i

The docker image's entrypoint and the systemd unit both run this. With
``<name>:`` before the target, ``<env-dir>/<name>.env`` is read first
(``KEY=VALUE`` lines; a variable already in the environment wins). It then
derives what differs per service from one node-wide environment file:

- ``DATABASE_URL``: ``postgresql://DATABASE_USER:DATABASE_PASSWORD@DATABASE_HOST:DATABASE_PORT/``
  ``rembug_<code with _>_<service>`` (the city's: ``rembug_32_75_<service>``);
- ``AMQP_URI`` unless set: ``pyamqp://AMQP_USER:AMQP_PASSWORD@AMQP_HOST:AMQP_PORT/AMQP_VHOST``,
  the vhost ``kelurahan-<code>`` (the city's ``rembug-city``);
- ``WEB_SERVER_ADDRESS`` unless set (the image sets ``0.0.0.0:8000``):
  ``HTTP_HOST`` and the service's port, 8001 proposals, 8002 citizens,
  8003 budget, 8004 notify (``HTTP_PORT_<SERVICE>`` to change one);
- ``REMBUG_SERVICE``, so every log line names the service.

Relays and replication log JSON lines through ``deploy/nameko.yaml``'s logging config too.
"""

import argparse
import logging.config
import os
import re
import sys
import urllib.parse
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
NAMEKO_CONFIG = ROOT / "deploy" / "nameko.yaml"
SERVICES = {
    "proposals": "services.proposals.service:ProposalsService",
    "citizens": "services.citizens.service:CitizensService",
    "budget": "services.budget.service:BudgetService",
    "notify": "services.notify.service:NotifyService",
}
HTTP_PORTS = {"proposals": 8001, "citizens": 8002, "budget": 8003, "notify": 8004}
CITY_CODE = "32.75"
CITY_VHOST = "rembug-city"
PLACEHOLDER = "CHANGE_ME"  # deploy/env/*.env: a secret not filled in yet
# eventlet's deprecation notice is printed (not logged) from the module that imports it
QUIET_WARNINGS = "ignore::DeprecationWarning,ignore::Warning:nameko.cli.commands"


def read_env_file(path):
    """``{KEY: VALUE}`` of an environment file: ``KEY=VALUE`` lines, ``#`` comments."""
    values = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip().removeprefix("export ").strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise SystemExit(f"{path}:{number}: not a KEY=VALUE line")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def node_code(env):
    return CITY_CODE if env.get("NODE_ROLE") == "city" else env.get("KELURAHAN_CODE", "")


def database_name(code, service):
    return f"rembug_{code.replace('.', '_')}_{service}"


def database_server(env):
    user = urllib.parse.quote(env.get("DATABASE_USER", "rembug"), safe="")
    password = env.get("DATABASE_PASSWORD")
    secret = f":{urllib.parse.quote(password, safe='')}" if password else ""
    host, port = env.get("DATABASE_HOST", "127.0.0.1"), env.get("DATABASE_PORT", "5432")
    return f"postgresql://{user}{secret}@{host}:{port}"


def server_variables(database_url, amqp_url):
    """The node file's variables that name these servers: the inverse of
    :func:`database_server` and :func:`amqp_uri` (the vhost stays the node's own)."""
    server, amqp = urllib.parse.urlsplit(database_url), urllib.parse.urlsplit(amqp_url)
    return {
        "DATABASE_HOST": server.hostname,
        "DATABASE_PORT": str(server.port or 5432),
        "DATABASE_USER": server.username or "postgres",
        "DATABASE_PASSWORD": server.password or "",
        "AMQP_HOST": amqp.hostname,
        "AMQP_PORT": str(amqp.port or 5672),
        "AMQP_USER": amqp.username or "guest",
        "AMQP_PASSWORD": amqp.password or "guest",
    }


def amqp_uri(env):
    user = urllib.parse.quote(env.get("AMQP_USER", "rembug"), safe="")
    password = urllib.parse.quote(env.get("AMQP_PASSWORD", ""), safe="")
    host, port = env.get("AMQP_HOST", "127.0.0.1"), env.get("AMQP_PORT", "5672")
    default_vhost = CITY_VHOST if env.get("NODE_ROLE") == "city" else f"kelurahan-{node_code(env)}"
    vhost = urllib.parse.quote(env.get("AMQP_VHOST", default_vhost), safe="")
    return f"pyamqp://{user}:{password}@{host}:{port}/{vhost}"


def service_environment(env, service):
    """The environment of ``service``'s processes, derived from the node's (see the module doc)."""
    env = dict(env)
    code = node_code(env)
    env.setdefault("PYTHONPATH", str(ROOT))
    env.setdefault("PYTHONWARNINGS", QUIET_WARNINGS)
    env["REMBUG_SERVICE"] = service
    env.setdefault("AMQP_URI", amqp_uri(env))
    env["DATABASE_URL"] = (
        f"{env.get('DATABASE_SERVER') or database_server(env)}/{database_name(code, service)}"
    )
    port = env.get(f"HTTP_PORT_{service.upper()}", HTTP_PORTS[service])
    env.setdefault("WEB_SERVER_ADDRESS", f"{env.get('HTTP_HOST', '127.0.0.1')}:{port}")
    return env


def create_databases(env, services=SERVICES):
    """Create each service's database if it does not exist (the services migrate them)."""
    server = env.get("DATABASE_SERVER") or database_server(env)
    code = node_code(env)
    with psycopg.connect(f"{server}/postgres", autocommit=True, connect_timeout=10) as conn:
        for service in services:
            name = database_name(code, service)
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{name}"')
            print(f"{name}: {'present' if exists else 'created'}", flush=True)


def configure_logging():
    """The logging of ``deploy/nameko.yaml`` (JSON lines, redacted) for a process without nameko."""
    import yaml
    from nameko.cli.main import setup_yaml_parser

    setup_yaml_parser()
    with NAMEKO_CONFIG.open() as f:
        config = yaml.safe_load(f)
    logging.config.dictConfig(config["LOGGING"])


def run_service(env, service):
    nameko = Path(sys.executable).with_name("nameko")
    command = [str(nameko), "run", "--config", str(NAMEKO_CONFIG), SERVICES[service]]
    os.chdir(ROOT)
    os.execve(command[0], command, env)


def run_relay(env, service):
    os.environ.clear()
    os.environ.update(env)
    configure_logging()
    from shared import relay

    relay.main([service])


def run_replication(env, service):
    """The service's replication with the city (``python -m shared.replication <service>``)."""
    os.environ.clear()
    os.environ.update(env)
    configure_logging()
    from shared import replication

    replication.main([service])


def run_awaiting(env, service):
    """Notify's notices to the camat and bappeda, on the city node only
    (``python -m services.notify.awaiting``)."""
    os.environ.clear()
    os.environ.update(env)
    configure_logging()
    from services.notify import awaiting

    awaiting.main()


RUNNERS = {
    "": run_service,
    "-relay": run_relay,
    "-replication": run_replication,
    "notify-awaiting": run_awaiting,
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-file", help="read this environment file first")
    parser.add_argument("--env-dir", default="/etc/rembug", help="where <name>.env files are")
    parser.add_argument(
        "target", help="<service>[-relay|-replication], notify-awaiting or databases; <name>: first"
    )
    args = parser.parse_args(argv)
    name, _, target = args.target.rpartition(":")
    env_file = args.env_file or (Path(args.env_dir) / f"{name}.env" if name else None)
    env = {**(read_env_file(env_file) if env_file else {}), **os.environ}
    unset = sorted(key for key, value in env.items() if PLACEHOLDER in value)
    if unset:
        sys.exit(f"replace {PLACEHOLDER} in {env_file or 'the environment'}: {', '.join(unset)}")
    if target == "databases":
        create_databases(env)
        return
    service, _, kind = target.partition("-")
    runner = RUNNERS.get(target) or RUNNERS.get(f"-{kind}" if kind else "")
    if service not in SERVICES or runner is None:
        parser.error(
            f"unknown target {target!r}: <service>, <service>-relay, <service>-replication, "
            f"notify-awaiting or databases, the services being {', '.join(SERVICES)}"
        )
    runner(service_environment(env, service), service)


if __name__ == "__main__":
    main()
