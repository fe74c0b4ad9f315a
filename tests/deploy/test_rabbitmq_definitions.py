"""The brokers' definitions: generated without committed secrets, exactly the permissions of
the design, and loaded into the real RabbitMQ, where a kelurahan cannot act as another."""

import copy
import json
import os
import re
import time
import urllib.parse
import uuid

import amqp
import pytest
import requests

from deploy.rabbitmq import make_definitions as md
from shared import wilayah

CODES = wilayah.kelurahan_codes()
A, B = "32.75.05.1002", "32.75.08.1003"  # Pengasinan, Jatimakmur


def env_passwords(users):
    return {md.env_name(user): f"pw-{uuid.uuid4().hex}" for user in users}


@pytest.fixture(scope="module")
def city():
    passwords = env_passwords(md.city_users(CODES))
    hashes = md.user_hashes(md.city_users(CODES), None, environ=passwords)
    return md.city_definitions(hashes, CODES), passwords


def test_the_city_has_all_56_kelurahan_users_with_exactly_their_permissions(city):
    document, passwords = city
    assert len(CODES) == 56
    users = {u["name"]: u for u in document["users"]}
    assert set(users) == {"admin", "city", *(f"kelurahan-{code}" for code in CODES)}
    for user in users.values():
        assert user["hashing_algorithm"] == "rabbit_password_hashing_sha256"
        assert md.check_password(passwords[md.env_name(user["name"])], user["password_hash"])
        assert user["tags"] == (["administrator"] if user["name"] == "admin" else [])
    permissions = {p["user"]: p for p in document["permissions"]}
    assert len(permissions) == len(document["permissions"]) == 58
    assert {p["vhost"] for p in document["permissions"]} == {"rembug-city"}
    assert permissions["city"] | {"user": "x"} == {
        "user": "x",
        "vhost": "rembug-city",
        "configure": ".*",
        "write": ".*",
        "read": ".*",
    }
    topics = {t["user"]: t for t in document["topic_permissions"]}
    assert len(topics) == len(document["topic_permissions"]) == 56
    for code in CODES:
        user = f"kelurahan-{code}"
        assert permissions[user] == {
            "user": user,
            "vhost": "rembug-city",
            "configure": "^$",
            "write": r"^replication\.up$",
            "read": "^kelurahan\\." + code.replace(".", "\\.") + "\\.",
        }
        assert topics[user] == {
            "user": user,
            "vhost": "rembug-city",
            "exchange": "replication.up",
            "write": "^" + code.replace(".", "\\.") + "\\.",
            "read": "^$",
        }
        write = re.compile(topics[user]["write"])
        assert write.match(f"{code}.proposals.proposal.submitted")
        assert not any(write.match(f"{other}.proposals.x") for other in CODES if other != code)


def test_the_city_topology_is_the_designed_one(city):
    document, _ = city
    exchanges = {e["name"]: e["type"] for e in document["exchanges"]}
    assert exchanges == {
        "replication.up": "topic",
        "replication.down": "topic",
        "replication.dlx": "fanout",
    }
    queues = {q["name"]: q for q in document["queues"]}
    expected = {"replication.dead", "city.notify.proposals"}
    expected |= {f"city.ingest.{s}" for s in md.SERVICES}
    expected |= {f"kelurahan.{code}.{s}" for code in CODES for s in md.SERVICES}
    assert set(queues) == expected
    assert all(
        q["arguments"] == {"x-queue-type": "quorum"} and q["durable"] for q in queues.values()
    )
    bindings = {(b["source"], b["destination"], b["routing_key"]) for b in document["bindings"]}
    assert bindings == (
        {("replication.dlx", "replication.dead", "")}
        | {("replication.up", f"city.ingest.{s}", f"*.*.*.*.{s}.#") for s in md.SERVICES}
        | {("replication.up", "city.notify.proposals", "*.*.*.*.proposals.#")}
        | {
            ("replication.down", f"kelurahan.{c}.{s}", f"{c}.{s}.#")
            for c in CODES
            for s in md.SERVICES
        }
    )
    (policy,) = document["policies"]
    assert policy["definition"]["dead-letter-exchange"] == "replication.dlx"
    assert policy["definition"]["delivery-limit"] > 0
    pattern = re.compile(policy["pattern"])
    assert all(pattern.match(name) for name in expected - {"replication.dead"})
    assert not pattern.match("replication.dead")


def test_secrets_come_from_files_or_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as refused:
        md.main(["kelurahan", A, "--secrets", str(tmp_path / "none")])
    assert "no password for admin" in str(refused.value)
    (tmp_path / "admin.password").write_text("from-a-file\n")
    (tmp_path / "rembug.hash").write_text(md.password_hash("hashed-elsewhere") + "\n")
    out = tmp_path / "kelurahan.json"
    md.main(["kelurahan", A, "--secrets", str(tmp_path), "--out", str(out)])
    assert out.stat().st_mode & 0o077 == 0
    document = json.loads(out.read_text())
    users = {u["name"]: u["password_hash"] for u in document["users"]}
    assert md.check_password("from-a-file", users["admin"])
    assert md.check_password("hashed-elsewhere", users["rembug"])
    assert document["vhosts"] == [{"name": f"kelurahan-{A}"}]
    assert {(p["user"], p["vhost"]) for p in document["permissions"]} == {
        ("admin", f"kelurahan-{A}"),
        ("rembug", f"kelurahan-{A}"),
    }
    generated = tmp_path / "gen"
    md.main(["city", "--secrets", str(generated), "--generate-missing", "--out", "-"])
    assert len(json.loads(capsys.readouterr().out)["users"]) == 58
    assert len(list(generated.glob("*.password"))) == 58
    assert all(p.stat().st_mode & 0o077 == 0 for p in generated.iterdir())


# -- loaded into the real broker ------------------------------------------------------------------


def renamed(document, vhost, prefix):
    """The definitions with their vhost and user names made unique to this test."""
    document = copy.deepcopy(document)
    for user in document["users"]:
        user["name"] = prefix + user["name"]
    for item in document["permissions"] + document["topic_permissions"]:
        item["user"] = prefix + item["user"]
    document["vhosts"] = [{"name": vhost}]
    for key in ("permissions", "topic_permissions", "policies", "queues", "exchanges", "bindings"):
        for item in document[key]:
            item["vhost"] = vhost
    return document


@pytest.fixture
def city_broker(city):
    document, passwords = city
    api = os.environ["RABBIT_API_URI"]
    suffix = uuid.uuid4().hex[:8]
    vhost, prefix = f"rembug-city-{suffix}", f"t{suffix}-"
    loaded = renamed(document, vhost, prefix)
    response = requests.post(f"{api}/api/definitions", json=loaded, timeout=60)
    assert response.status_code in (201, 204), response.text
    amqp_url = urllib.parse.urlsplit(os.environ["AMQP_URI"])

    def connect(user):
        conn = amqp.Connection(
            f"{amqp_url.hostname}:{amqp_url.port or 5672}",
            userid=prefix + user,
            password=passwords[md.env_name(user)],
            virtual_host=vhost,
            confirm_publish=True,
            connect_timeout=10,
        )
        conn.connect()
        return conn

    connect.vhost, connect.prefix, connect.api = vhost, prefix, api
    try:
        yield connect
    finally:
        requests.delete(f"{api}/api/vhosts/{urllib.parse.quote(vhost, safe='')}", timeout=30)
        names = [u["name"] for u in loaded["users"]]
        requests.post(f"{api}/api/users/bulk-delete", json={"users": names}, timeout=30)


def message(user_id, body=b"{}"):
    return amqp.Message(body, user_id=user_id, content_type="application/json", delivery_mode=2)


def refused(conn, action, error):
    """``action(channel)`` on a fresh channel is refused by the broker with ``error``."""
    channel = conn.channel()
    with pytest.raises(error):
        action(channel)
        channel.basic_qos(0, 1, False)  # a round trip: an asynchronous refusal arrives first


def test_a_kelurahan_publishes_as_itself_only_and_reads_only_its_own_queue(city_broker):
    me, other = city_broker.prefix + f"kelurahan-{A}", city_broker.prefix + f"kelurahan-{B}"
    with city_broker(f"kelurahan-{A}") as conn:
        channel = conn.channel()
        channel.basic_publish(
            message(me), exchange="replication.up", routing_key=f"{A}.proposals.proposal.submitted"
        )
        refused(
            conn,
            lambda ch: ch.basic_publish(
                message(me), exchange="replication.up", routing_key=f"{B}.proposals.x"
            ),
            amqp.exceptions.AccessRefused,
        )
        refused(
            conn,
            lambda ch: ch.basic_publish(
                message(other), exchange="replication.up", routing_key=f"{A}.proposals.x"
            ),
            amqp.exceptions.PreconditionFailed,
        )
        refused(
            conn,
            lambda ch: ch.basic_publish(
                message(me), exchange="replication.down", routing_key=f"{B}.proposals.x"
            ),
            amqp.exceptions.AccessRefused,
        )
        refused(
            conn, lambda ch: ch.basic_get(f"kelurahan.{B}.proposals"), amqp.exceptions.AccessRefused
        )
        refused(
            conn, lambda ch: ch.basic_get("city.ingest.proposals"), amqp.exceptions.AccessRefused
        )
        refused(
            conn, lambda ch: ch.queue_declare("mine", durable=True), amqp.exceptions.AccessRefused
        )
        assert conn.channel().basic_get(f"kelurahan.{A}.proposals") is None  # allowed, and empty

    with city_broker("city") as conn:
        channel = conn.channel()
        received = channel.basic_get("city.ingest.proposals", no_ack=True)
        assert received is not None and received.properties["user_id"] == me
        assert received.delivery_info["routing_key"] == f"{A}.proposals.proposal.submitted"
        assert channel.basic_get("city.ingest.proposals", no_ack=True) is None  # nothing else
        channel.basic_publish(
            message(city_broker.prefix + "city"),
            exchange="replication.down",
            routing_key=f"{A}.proposals.proposal.decided",
        )

    with city_broker(f"kelurahan-{A}") as conn:
        channel = conn.channel()
        down = channel.basic_get(f"kelurahan.{A}.proposals")
        assert down is not None and down.delivery_info["routing_key"].startswith(f"{A}.")
        channel.basic_reject(down.delivery_tag, requeue=False)  # dead-lettered, not lost

    with city_broker("city") as conn:
        channel = conn.channel()
        assert channel.basic_get(f"kelurahan.{B}.proposals", no_ack=True) is None
        assert channel.basic_get("replication.dead", no_ack=True) is not None


def test_the_loaded_queues_are_quorum_queues_under_the_dead_letter_policy(city_broker):
    vhost = urllib.parse.quote(city_broker.vhost, safe="")
    deadline = time.monotonic() + 30
    while True:  # the management API shows a queue's policy once its stats are emitted
        queues = requests.get(f"{city_broker.api}/api/queues/{vhost}", timeout=30).json()
        if all("policy" in q for q in queues) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(queues) == 2 + len(md.SERVICES) + 56 * len(md.SERVICES)  # dead, notify's copy
    for queue in queues:
        assert queue["type"] == "quorum"
        if queue["name"] != "replication.dead":
            assert queue["policy"] == "replication-dead-letters", queue["name"]
            definition = queue["effective_policy_definition"]
            assert definition["dead-letter-exchange"] == "replication.dlx"
