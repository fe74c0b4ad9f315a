"""What an ops team installs: env files for every kelurahan, compose files, the image, the
systemd unit, and the launcher they all run, started for real against the local servers."""

import base64
import configparser
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import psycopg
import pytest
import requests
import yaml

from deploy import launch
from deploy.env import make_env
from deploy.local import node as local_node
from shared import config as configmod
from shared import wilayah
from shared.pii import parse_master_key

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CODES = wilayah.kelurahan_codes()
SECRET_KEYS = ("DATABASE_PASSWORD", "AMQP_PASSWORD", "AUTH_SECRET", "PII_MASTER_KEY")
FILLED = {
    "DATABASE_PASSWORD": "db-password",
    "AMQP_PASSWORD": "amqp-password",
    "AUTH_SECRET": "s" * 48,
    "PII_MASTER_KEY": base64.b64encode(bytes(range(32))).decode(),
}


def filled(env):
    return {
        key: FILLED.get(key, value.replace("CHANGE_ME", "filled")) for key, value in env.items()
    }


# -- environment files ----------------------------------------------------------------------------


def test_there_is_an_env_file_for_every_kelurahan_and_the_city_and_they_are_current(tmp_path):
    present = {p.stem for p in (DEPLOY / "env").glob("*.env")}
    assert present == {*CODES, "city"}
    make_env.main(tmp_path)
    for path in tmp_path.glob("*.env"):
        assert (DEPLOY / "env" / path.name).read_text() == path.read_text(), (
            f"{path.name} is stale: run python -m deploy.env.make_env"
        )


@pytest.mark.parametrize("name", [*CODES, "city"])
def test_an_env_file_holds_no_secret_and_filled_in_it_configures_every_service(name):
    env = launch.read_env_file(DEPLOY / "env" / f"{name}.env")
    for key, value in env.items():
        if key in SECRET_KEYS or re.search("PASSWORD|SECRET|KEY$", key):
            assert value == "CHANGE_ME", f"{name}.env: {key} must be a placeholder"
        if "://" in value:
            assert ":CHANGE_ME@" in value or "@" not in value, f"{name}.env: {key}"
    if name == "city":
        assert env["NODE_ROLE"] == "city" and "KELURAHAN_CODE" not in env
    else:
        assert env["KELURAHAN_CODE"] == name and env["NODE_ROLE"] == "kelurahan"
    code = name if name != "city" else "32.75"
    ports = set()
    for service in launch.SERVICES:
        derived = launch.service_environment(filled(env), service)
        loaded = configmod.load(service, derived)  # what the service checks at start
        assert loaded.kelurahan_code == code
        assert loaded.database_url.endswith(f"/rembug_{code.replace('.', '_')}_{service}")
        vhost = "rembug-city" if name == "city" else f"kelurahan-{name}"
        assert urllib.parse.unquote(urllib.parse.urlsplit(loaded.amqp_uri).path[1:]) == vhost
        assert derived["REMBUG_SERVICE"] == service
        ports.add(derived["WEB_SERVER_ADDRESS"])
        parse_master_key(derived["PII_MASTER_KEY"])
    assert len(ports) == len(launch.SERVICES)


def test_the_launcher_refuses_placeholders_naming_each(tmp_path, monkeypatch):
    for key in SECRET_KEYS:
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(SystemExit) as refused:
        launch.main(["--env-dir", str(DEPLOY / "env"), f"{CODES[0]}:proposals"])
    message = str(refused.value)
    assert all(key in message for key in SECRET_KEYS)


# -- compose, image, systemd ----------------------------------------------------------------------


def compose(profile):
    return yaml.safe_load((DEPLOY / "docker" / f"compose.{profile}.yml").read_text())


@pytest.mark.parametrize("profile", ["kelurahan", "city"])
def test_compose_files_parse_and_reference_what_exists(profile):
    document = compose(profile)
    services = document["services"]
    expected = {"postgres", "rabbitmq", "setup"}
    expected |= {
        s for name in launch.SERVICES for s in (name, f"{name}-relay", f"{name}-replication")
    }
    if profile == "city":
        expected.add("notify-awaiting")
    assert set(services) == expected
    host_ports = []
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / "docker" / source).resolve().exists(), f"{name}: {source}"
            else:
                assert source.startswith("/etc/rembug/") or source in document["volumes"]
        host_ports += [p.rsplit(":", 1)[0] for p in service.get("ports", [])]
        if name in ("postgres", "rabbitmq"):
            continue
        build = service["build"]
        assert (DEPLOY / "docker" / build["context"] / build["dockerfile"]).resolve().is_file()
        env_file = service["env_file"]
        assert env_file.startswith("/etc/rembug/") and env_file.endswith(".env")
        (target,) = service["command"]
        if target == "databases":
            assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
            continue
        service_name, _, kind = target.partition("-")
        assert service_name in launch.SERVICES and kind in ("", "relay", "replication", "awaiting")
        assert target == name
        assert service["depends_on"]["setup"]["condition"] == "service_completed_successfully"
        assert service["environment"] == {"DATABASE_HOST": "postgres", "AMQP_HOST": "rabbitmq"}
        if not kind:
            probe = service["healthcheck"]["test"]
            assert probe[:4] == ["CMD", "python", "-m", "deploy.probe"]
            assert probe[4] == "http://127.0.0.1:8000/ready"
            assert service["ports"] == [f"127.0.0.1:{launch.HTTP_PORTS[name]}:8000"]
    assert len(host_ports) == len(set(host_ports))
    conf = f"../rabbitmq/{profile}.conf:/etc/rabbitmq/rabbitmq.conf:ro"
    assert conf in services["rabbitmq"]["volumes"]


def test_the_image_copies_what_exists_and_runs_the_launcher():
    dockerfile = (DEPLOY / "docker" / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (\S+)", dockerfile, re.M):
        assert (ROOT / source).exists(), source
    assert 'ENTRYPOINT ["python", "-m", "deploy.launch"]' in dockerfile
    assert "WEB_SERVER_ADDRESS=0.0.0.0:8000" in dockerfile
    ignored = (DEPLOY / "docker" / "Dockerfile.dockerignore").read_text().split()
    assert "deploy/env/" in ignored and "deploy/rabbitmq/secrets/" in ignored


def test_the_systemd_unit_runs_the_launcher_for_its_instance():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(DEPLOY / "systemd" / "rembug@.service")
    service = unit["Service"]
    assert service["ExecStart"].endswith("-m deploy.launch --env-dir /etc/rembug %i")
    assert service["Restart"] == "on-failure" and service["User"] == "rembug"
    assert unit["Install"]["WantedBy"] == "rembug.target"
    assert unit["Unit"]["PartOf"] == "rembug.target"
    assert (DEPLOY / "systemd" / "rembug.target").is_file()


# -- the launcher, for real -----------------------------------------------------------------------

CODE = CODES[-1]  # Jatimurni: a node no other test runs


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def drop_node(server):
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        for service in launch.SERVICES:
            conn.execute(
                f'DROP DATABASE IF EXISTS "{launch.database_name(CODE, service)}" WITH (FORCE)'
            )
    api = os.environ["RABBIT_API_URI"]
    requests.delete(f"{api}/api/vhosts/kelurahan-{CODE}", timeout=10)


@pytest.fixture
def node_env(tmp_path):
    """The node's env file as an ops team fills it in, for the local servers."""
    server = urllib.parse.urlsplit(os.environ["DATABASE_URL"])
    drop_node(f"{server.scheme}://{server.netloc}")
    local_node.ensure_vhost(f"kelurahan-{CODE}")
    env = filled(launch.read_env_file(DEPLOY / "env" / f"{CODE}.env"))
    env |= launch.server_variables(os.environ["DATABASE_URL"], os.environ["AMQP_URI"])
    env["HTTP_PORT_PROPOSALS"] = str(free_port())
    path = tmp_path / f"{CODE}.env"
    path.write_text("".join(f"{key}={value}\n" for key, value in env.items()))
    yield path, env
    drop_node(f"{server.scheme}://{server.netloc}")


def run_launcher(env_dir, target, log):
    clean = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "AMQP_URI")}
    return subprocess.Popen(
        [sys.executable, "-m", "deploy.launch", "--env-dir", str(env_dir), f"{CODE}:{target}"],
        cwd=ROOT,
        env=clean,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def test_the_launcher_sets_up_and_runs_a_service_and_its_relay(node_env, tmp_path):
    path, env = node_env
    log_path = tmp_path / "node.log"
    with log_path.open("ab") as log:
        assert run_launcher(path.parent, "databases", log).wait(60) == 0
        service = run_launcher(path.parent, "proposals", log)
        relay = run_launcher(path.parent, "proposals-relay", log)
    try:
        url = f"http://127.0.0.1:{env['HTTP_PORT_PROPOSALS']}"
        deadline = time.monotonic() + 60
        while True:
            assert service.poll() is None and relay.poll() is None, log_path.read_text()[-3000:]
            try:
                if requests.get(f"{url}/ready", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.3)
        text = requests.get(f"{url}/metrics", timeout=10).text
        assert f'rembug_relay_lag_events{{service="proposals",kelurahan="{CODE}"' in text
        deadline = time.monotonic() + 20
        while "connected to the broker" not in log_path.read_text():
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.3)
    finally:
        for process in (service, relay):
            process.send_signal(signal.SIGTERM)
        assert service.wait(30) == 0 and relay.wait(30) == 0
    lines = log_path.read_text().splitlines()
    created = [line for line in lines if line.startswith("rembug_")]
    assert len(created) == len(launch.SERVICES)  # what `databases` printed
    logged = [json.loads(line) for line in lines if not line.startswith("rembug_")]
    assert {line["logger"] for line in logged} >= {"shared.relay", "nameko.runners"}
    assert all(line["kelurahan"] == CODE and line["service"] == "proposals" for line in logged)
