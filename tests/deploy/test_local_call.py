"""``deploy.local.call``: a mistake or a node that is not there gets one line saying what to do."""

import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "test-call"  # run/test-call/<code>, vhosts test-call-kelurahan-<code>
CODE = "32.75.12.1004"
STATE = ROOT / "run" / NAMESPACE


def call(*args, **env):
    done = subprocess.run(
        [sys.executable, "-m", "deploy.local.call", "--kelurahan", CODE, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "REMBUG_NAMESPACE": NAMESPACE, **env},
    )
    return done.returncode, done.stdout, done.stderr.strip().splitlines()[-1]


@pytest.fixture(autouse=True)
def no_node():
    """No secrets of the node under run/, before and after each test."""
    shutil.rmtree(STATE, ignore_errors=True)
    yield
    shutil.rmtree(STATE, ignore_errors=True)


@pytest.fixture
def set_up_node():
    """The node's secrets as ``make run`` leaves them, and no vhost."""
    (STATE / CODE).mkdir(parents=True)
    (STATE / CODE / "auth_secret").write_text("s" * 64)


@pytest.fixture
def vhost(set_up_node):
    """The node's vhost, with no service running in it."""
    api, name = os.environ["RABBIT_API_URI"], quote(f"{NAMESPACE}-kelurahan-{CODE}", safe="")
    requests.put(f"{api}/api/vhosts/{name}", timeout=10).raise_for_status()
    requests.put(
        f"{api}/api/permissions/{name}/guest",
        json={"configure": ".*", "write": ".*", "read": ".*"},
        timeout=10,
    ).raise_for_status()
    yield
    requests.delete(f"{api}/api/vhosts/{name}", timeout=10)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [("{bad", "argument kwargs: not JSON"), ("[1]", "argument kwargs: not a JSON object")],
)
def test_arguments_that_are_not_a_json_object_are_a_usage_error(kwargs, error):
    code, _, last = call("proposals.submit", kwargs)
    assert code == 2 and error in last


def test_a_method_without_its_service_is_a_usage_error():
    code, _, last = call("status")
    assert code == 2 and "'status' is not service.method" in last


def test_a_node_never_set_up_here_says_how_to_start_it_and_leaves_nothing_behind():
    code, _, last = call("proposals.status")
    assert (code, last) == (
        1,
        f"no node of {CODE} is set up here: start it with make run KELURAHAN_CODE={CODE}",
    )
    assert not STATE.exists()


def test_a_node_without_its_vhost_says_so(set_up_node):
    code, _, last = call("proposals.status")
    assert (code, last) == (1, f"the broker has no vhost for {CODE}: start it with make run")


def test_a_broker_that_does_not_answer_is_named(set_up_node):
    code, _, last = call("proposals.status", AMQP_SERVER="pyamqp://guest:guest@127.0.0.1:9")
    assert code == 1 and last.startswith("cannot reach the broker at 127.0.0.1:9")


def test_a_service_not_running_on_the_node_says_so(vhost):
    code, _, last = call("proposals.status")
    assert (code, last) == (
        1,
        f"proposals does not run on the node of {CODE}: start it with make run",
    )
