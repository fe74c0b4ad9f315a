"""``make run``'s node: set up from nothing, serve RPC, relay, stop cleanly on Ctrl-C."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import requests
from kombu import Connection, Exchange, Queue

from deploy.local import node
from tests import factories as f

ROOT = Path(__file__).resolve().parents[2]
CODE = "32.75.12.1004"  # Jatimurni: a node neither make run nor the demo test runs


def run(*args, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        **kwargs,
    )


def call(method, payload, role="operator", **identity):
    extra = [item for key, value in identity.items() for item in (f"--{key}", str(value))]
    done = run(
        "deploy.local.call",
        "--kelurahan",
        CODE,
        "--role",
        role,
        *extra,
        method,
        json.dumps(payload),
    )
    return done.returncode, done.stdout, done.stderr


def drop_node():
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        for service in node.SERVICES:
            conn.execute(
                f'DROP DATABASE IF EXISTS "{node.database_name(CODE, service)}" WITH (FORCE)'
            )
    api = os.environ["RABBIT_API_URI"]
    requests.delete(f"{api}/api/vhosts/{node.vhost_name(CODE)}", timeout=10)
    for kept in node.node_paths(CODE).glob("fake-*.jsonl"):  # what the fake providers took
        kept.unlink()


@pytest.fixture
def local_node():
    drop_node()
    process = subprocess.Popen(
        [sys.executable, "-m", "deploy.local.node", "--kelurahan", CODE],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        waiting = list(node.SERVICES)
        while waiting and time.monotonic() < deadline:
            code, out, _ = call(f"{waiting[0]}.status", {})
            if code == 0:
                waiting.pop(0)
                continue
            assert process.poll() is None, process.stdout.read()
            time.sleep(1)
        if waiting:
            pytest.fail(f"{', '.join(waiting)} did not answer within 60 s")
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        drop_node()


def test_node_serves_rpc_relays_events_and_stops_on_ctrl_c(local_node):
    amqp = node.service_environment(CODE, "proposals", node.node_paths(CODE))["AMQP_URI"]
    with Connection(amqp) as conn:
        queue = Queue("watcher", Exchange("proposals.events", type="topic", durable=True), "#")
        queue(conn.default_channel).declare()
        payload = f.proposal(proposer={"level": "rt", "rw": 7, "rt": 3})
        code, out, err = call("proposals.submit", payload, role="ketua_rt", rw=7, rt=3)
        assert code == 0, err
        proposal_id = json.loads(out)["id"]

        code, _, err = call("proposals.submit", {"year": 2027}, role="ketua_rt", rw=7, rt=3)
        assert code == 1 and err.splitlines()[-1].startswith("ValidationError:")

        message = None
        deadline = time.monotonic() + 10
        while message is None and time.monotonic() < deadline:
            message = queue(conn.default_channel).get(no_ack=True)
            time.sleep(0.1)
    assert message is not None, "the relay did not publish the submitted proposal"
    event = json.loads(message.body)
    assert event["type"] == "proposal.submitted"
    assert event["subject"] == f"proposal-{proposal_id}"
    assert event["source"] == f"/kelurahan/{CODE}/proposals"

    local_node.send_signal(signal.SIGINT)
    assert local_node.wait(30) == 0


def test_the_budget_takes_the_lurahs_advance(local_node):
    code, out, err = call("budget.open_fiscal_year", {"year": 2027}, role="lurah")
    assert code == 0, err
    line = {
        "fiscal_year": 2027,
        "activity": "binwas",
        "activity_name": "Pembinaan dan pengawasan",
        "category": "expense.transport",
        "source": "source.apbd",
        "allocated": 2_000_000,
    }
    assert call("budget.plan_line", line, role="lurah")[0] == 0
    advance = {
        "person_id": "u-lurah",
        "line_id": "2027-binwas-transport",
        "amount": 150_000,
        "paid_on": "2027-02-03",
        "description": "Transport kunjungan RW 04",
    }
    code, out, err = call("budget.record_advance", advance, role="operator")
    assert code == 0, err
    assert json.loads(out)["outstanding"] == 150_000


def test_services_stop_when_the_supervisor_is_killed(local_node):
    children = subprocess.run(
        ["pgrep", "-P", str(local_node.pid)], capture_output=True, text=True
    ).stdout.split()
    # each service and its relay, and notify's fake SMS and WhatsApp gateways and mail sink
    assert len(children) == 2 * len(node.SERVICES) + len(node.FAKES)
    local_node.kill()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in children):
        time.sleep(0.2)
    alive = [pid for pid in children if Path(f"/proc/{pid}").exists()]
    assert not alive, f"children outlived their supervisor: {alive}"


def test_each_service_is_ready_on_its_own_printed_port(local_node):
    urls = {}
    for service in node.SERVICES:
        port = node.http_port(CODE, service)
        assert port not in urls.values()
        urls[service] = f"http://127.0.0.1:{port}"
        ready = requests.get(f"{urls[service]}/ready", timeout=10)
        assert ready.status_code == 200, ready.text
        assert ready.json()["service"] == service
        scrape = requests.get(f"{urls[service]}/metrics", timeout=10).text
        assert f'rembug_events_stored_total{{service="{service}",kelurahan="{CODE}"}}' in scrape
    local_node.send_signal(signal.SIGINT)
    printed, _ = local_node.communicate(timeout=30)
    for url in urls.values():
        assert f"{url}/health" in printed, printed


def test_notify_delivers_to_the_nodes_fake_whatsapp_gateway(local_node):
    """make run's notify sends to the fake gateway beside it (nothing leaves the machine),
    which reports the delivery back by its own message id."""
    contact = {
        "user_id": "u-rt-7-3",
        "role": "ketua_rt",
        "rw": 7,
        "rt": 3,
        "phone": "081200000073",  # generated: the fake gateway only writes it to a file
        "channels": ["whatsapp", "in_app"],
        "whatsapp_opt_in": True,
    }
    assert call("notify.register_contact", contact)[0] == 0
    payload = f.proposal(proposer={"level": "rt", "rw": 7, "rt": 3})
    code, _, err = call("proposals.submit", payload, role="ketua_rt", user="u-rt-7-3", rw=7, rt=3)
    assert code == 0, err
    received = node.node_paths(CODE) / "fake-whatsapp.jsonl"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (received.exists() and received.read_text()):
        time.sleep(0.5)
    [receipt] = [json.loads(line) for line in received.read_text().splitlines()]
    assert receipt["body"]["template"] == "rembug_usulan_diterima_v1"
    assert receipt["body"]["to"] == "+6281200000073"
    while time.monotonic() < deadline:
        code, out, _ = call("notify.list_notifications", {"user_id": "u-rt-7-3"}, role="lurah")
        [told] = json.loads(out)["items"]
        if told["state"] == "delivered":
            break
        time.sleep(0.5)
    assert (told["channel"], told["provider"], told["state"]) == (
        "whatsapp",
        "whatsapp-dev",
        "delivered",
    )
    token = node.fake_callback_token(node.node_paths(CODE))  # the report carried it
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            assert token not in cmdline.read_text(), "the token is on a command line (ps)"
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue  # a process that ended meanwhile
