"""A service started as deployed (``nameko run --config deploy/nameko.yaml``) logs JSON lines
with its kelurahan, its name and, inside a worker, the call id; no NIK-shaped number gets out."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
NIK_SHAPED = re.compile(r"(?<!\d)\d{16}(?!\d)")
# eventlet's deprecation notice, printed (not logged) when nameko imports it: as deployed
QUIET_EVENTLET = "ignore::Warning:nameko.cli.commands"
HOSTILE_FIELD = "3275054101900001"  # a NIK-shaped key: the error message names it

CLIENT = """
import json, sys
from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ClusterRpcProxy
from shared.auth import issue_token
from tests import factories as f

token = issue_token(sys.argv[2], f.operator())
with ClusterRpcProxy({"AMQP_URI": sys.argv[1]}, context_data={"authorization": token}) as rpc:
    for call in (lambda: rpc.proposals.get_proposal(**{sys.argv[3]: 1}), rpc.proposals.replay):
        try:
            call()
        except RemoteError as error:
            print(error.exc_type)
"""


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def deployed_service(service_env, tmp_path):
    port = free_port()
    env = {
        **os.environ,
        **service_env,
        "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}",
        "PYTHONPATH": str(ROOT),
        "PYTHONWARNINGS": QUIET_EVENTLET,
    }
    env.pop("LOG_FORMAT", None)
    log_path = tmp_path / "proposals.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "nameko"),
                "run",
                "--config",
                str(ROOT / "deploy" / "nameko.yaml"),
                "services.proposals.service:ProposalsService",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log_path.read_text()[-3000:]
            try:
                if requests.get(f"http://127.0.0.1:{port}/ready", timeout=5).ok:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.2)
        yield process, log_path
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()


def test_every_line_is_json_with_kelurahan_service_and_call_id_and_no_nik(
    deployed_service, service_env
):
    process, log_path = deployed_service
    client = subprocess.run(
        [sys.executable, "-c", CLIENT, service_env["AMQP_URI"], service_env["AUTH_SECRET"]]
        + [HOSTILE_FIELD],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert client.stdout.split() == ["ValidationError", "Forbidden"], client.stderr
    process.send_signal(signal.SIGTERM)
    assert process.wait(20) == 0

    text = log_path.read_text()
    lines = [json.loads(line) for line in text.splitlines()]  # every line is one JSON object
    assert lines
    for line in lines:
        assert {"time", "level", "logger", "message"} <= line.keys()
        assert line["kelurahan"] == "32.75.05.1002" and line["service"] == "proposals"
    in_workers = [line for line in lines if "call_id" in line]
    calls = {line["call_id"].rsplit(".", 1)[0] for line in in_workers}
    assert {"proposals.get_proposal", "proposals.replay"} <= calls, in_workers
    assert any("health, readiness and metrics on http://127.0.0.1:" in x["message"] for x in lines)
    assert HOSTILE_FIELD not in text and not NIK_SHAPED.search(text)
    assert any("[redacted]" in line["message"] for line in in_workers)
