"""Write the RabbitMQ definitions a broker loads at boot: the city's, or one kelurahan node's.

    python -m deploy.rabbitmq.make_definitions city --secrets /etc/rembug/rabbitmq \\
        --out /etc/rabbitmq/definitions.json
    python -m deploy.rabbitmq.make_definitions kelurahan 32.75.05.1002 --secrets ... --out ...

Passwords are never committed. For each user the script takes, in this order:
``RABBITMQ_PASSWORD_<USER>`` from the environment (the user name upper-cased,
every other character than a letter or digit made ``_``, e.g.
``RABBITMQ_PASSWORD_KELURAHAN_32_75_05_1002``), ``<secrets>/<user>.hash`` (a
hash in RabbitMQ's ``rabbit_password_hashing_sha256`` format, for a city that
keeps only hashes of the kelurahan passwords), or ``<secrets>/<user>.password``.
With ``--generate-missing`` a user without any gets a random password written
to ``<secrets>/<user>.password`` (mode 600); otherwise every missing one is
listed and nothing is written.

The city broker (vhost ``rembug-city``):

- topic exchanges ``replication.up`` (kelurahan to city, routing key
  ``<code>.<service>.<event type>``, messages carry ``user_id``, which
  RabbitMQ checks against the connection's user) and ``replication.down``
  (city to kelurahan, ``<code>.<service>.<event type>`` or
  ``<code>.<service>.control.<kind>``); a fanout dead-letter exchange ``replication.dlx``
  with the quorum queue ``replication.dead``;
- quorum queues ``city.ingest.<service>`` bound to ``replication.up`` with
  ``*.*.*.*.<service>.#`` (the code is four words), ``city.notify.proposals`` (notify's
  own copy of the proposals events, for the camat's and bappeda's notices), and ``kelurahan.<code>.<service>``
  bound to ``replication.down`` with ``<code>.<service>.#`` for each of the 56
  kelurahan and each service (names from :mod:`shared.replication`);
- a policy giving those queues the dead-letter exchange and a delivery limit;
- users ``city`` (everything on ``rembug-city``), ``admin`` (the operators'
  management user) and ``kelurahan-<code>`` for each code: configure nothing,
  write only ``replication.up`` and, there, only routing keys that start with
  its own code, read only its own ``kelurahan.<code>.*`` queues.

A kelurahan broker: vhost ``kelurahan-<code>``, the services' user ``rembug``
with every right on it, and ``admin``. The services declare their own
exchanges and queues.
"""

import argparse
import base64
import csv
import hashlib
import json
import os
import re
import secrets
import sys
from pathlib import Path

from services.notify.awaiting import QUEUE as NOTIFY_CITY_QUEUE
from shared import replication

ROOT = Path(__file__).resolve().parents[2]

WILAYAH = ROOT / "shared" / "data" / "bekasi_wilayah.csv"
RABBITMQ_VERSION = "3.10.0"
CITY_VHOST = "rembug-city"
SERVICES = ("proposals", "citizens", "budget", "notify")
UP, DOWN, DLX, DEAD = "replication.up", "replication.down", "replication.dlx", "replication.dead"
DELIVERY_LIMIT = 20
HASHING = "rabbit_password_hashing_sha256"
QUORUM = {"x-queue-type": "quorum"}


def kelurahan_codes(csv_path=WILAYAH):
    with open(csv_path, newline="") as f:
        return [row["kode"] for row in csv.DictReader(f) if row["level"] == "kelurahan"]


def kelurahan_vhost(code):
    return f"kelurahan-{code}"


def kelurahan_user(code):
    return f"kelurahan-{code}"


def down_queue(code, service):
    """The queue a kelurahan's service reads from the city (shared.replication)."""
    return replication.down_queue(code, service).name


def down_binding(code, service):
    return replication.down_queue(code, service).routing_key


def ingest_queue(service, name=None):
    return replication.ingest_queue(service, name).name


def ingest_binding(service):
    """``*.*.*.*.<service>.#``: a kelurahan code is four words (``32.75.05.1002``)."""
    return replication.ingest_queue(service).routing_key


# -- passwords ----------------------------------------------------------------------------------


def password_hash(password, salt=None):
    """RabbitMQ's ``rabbit_password_hashing_sha256``: base64(salt + sha256(salt + password)),
    with a 4-byte random salt."""
    salt = os.urandom(4) if salt is None else salt
    digest = hashlib.sha256(salt + password.encode()).digest()
    return base64.b64encode(salt + digest).decode()


def check_password(password, hashed):
    raw = base64.b64decode(hashed)
    return password_hash(password, raw[:4]) == hashed


def env_name(user):
    return "RABBITMQ_PASSWORD_" + re.sub(r"[^A-Za-z0-9]", "_", user).upper()


class MissingSecrets(Exception):
    pass


def user_hashes(users, secrets_dir, environ=None, generate_missing=False):
    """``{user: hash}`` from the environment or the secrets directory (see the module doc)."""
    environ = os.environ if environ is None else environ
    secrets_dir = Path(secrets_dir) if secrets_dir else None
    hashes, missing = {}, []
    for user in users:
        hash_file = secrets_dir / f"{user}.hash" if secrets_dir else None
        password_file = secrets_dir / f"{user}.password" if secrets_dir else None
        if environ.get(env_name(user)):
            hashes[user] = password_hash(environ[env_name(user)])
        elif hash_file and hash_file.exists():
            hashes[user] = hash_file.read_text().strip()
        elif password_file and password_file.exists():
            hashes[user] = password_hash(password_file.read_text().strip())
        elif generate_missing and secrets_dir:
            secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            password = secrets.token_urlsafe(24)
            password_file.touch(mode=0o600)
            password_file.write_text(password + "\n")
            hashes[user] = password_hash(password)
        else:
            missing.append(user)
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise MissingSecrets(
            f"no password for {shown}: set {env_name(missing[0])}, write "
            f"<secrets>/{missing[0]}.password or .hash, or pass --generate-missing"
        )
    return hashes


# -- definitions ----------------------------------------------------------------------------------


def _user(name, hashed, tags=()):
    return {"name": name, "password_hash": hashed, "hashing_algorithm": HASHING, "tags": list(tags)}


def _permission(user, vhost, configure, write, read):
    return {"user": user, "vhost": vhost, "configure": configure, "write": write, "read": read}


def _exchange(name, vhost, type_):
    return {
        "name": name,
        "vhost": vhost,
        "type": type_,
        "durable": True,
        "auto_delete": False,
        "internal": False,
        "arguments": {},
    }


def _queue(name, vhost):
    return {
        "name": name,
        "vhost": vhost,
        "durable": True,
        "auto_delete": False,
        "arguments": dict(QUORUM),
    }


def _binding(source, vhost, queue, routing_key):
    return {
        "source": source,
        "vhost": vhost,
        "destination": queue,
        "destination_type": "queue",
        "routing_key": routing_key,
        "arguments": {},
    }


def _document(users, vhosts, permissions, **rest):
    return {
        "rabbit_version": RABBITMQ_VERSION,
        "rabbitmq_version": RABBITMQ_VERSION,
        "users": users,
        "vhosts": [{"name": v} for v in vhosts],
        "permissions": permissions,
        "topic_permissions": rest.get("topic_permissions", []),
        "parameters": [],
        "global_parameters": [],
        "policies": rest.get("policies", []),
        "queues": rest.get("queues", []),
        "exchanges": rest.get("exchanges", []),
        "bindings": rest.get("bindings", []),
    }


def city_users(codes):
    return ["admin", "city", *(kelurahan_user(code) for code in codes)]


def city_definitions(hashes, codes):
    """The city broker's definitions; ``hashes`` has every user of :func:`city_users`."""
    vhost = CITY_VHOST
    users = [_user("admin", hashes["admin"], ["administrator"]), _user("city", hashes["city"])]
    permissions = [
        _permission("admin", vhost, ".*", ".*", ".*"),
        _permission("city", vhost, ".*", ".*", ".*"),
    ]
    topic_permissions = []
    for code in codes:
        user = kelurahan_user(code)
        users.append(_user(user, hashes[user]))
        granted, topic = replication.kelurahan_permissions(code)
        permissions.append({"user": user, "vhost": vhost, **granted})
        topic_permissions.append({"user": user, "vhost": vhost, **topic})
    queues = [_queue(DEAD, vhost)]
    queues += [_queue(ingest_queue(s), vhost) for s in SERVICES]
    queues.append(_queue(NOTIFY_CITY_QUEUE, vhost))
    queues += [_queue(down_queue(code, s), vhost) for code in codes for s in SERVICES]
    bindings = [_binding(DLX, vhost, DEAD, "")]
    bindings += [_binding(UP, vhost, ingest_queue(s), ingest_binding(s)) for s in SERVICES]
    bindings.append(_binding(UP, vhost, NOTIFY_CITY_QUEUE, ingest_binding("proposals")))
    bindings += [
        _binding(DOWN, vhost, down_queue(code, s), down_binding(code, s))
        for code in codes
        for s in SERVICES
    ]
    policies = [
        {
            "vhost": vhost,
            "name": "replication-dead-letters",
            "pattern": r"^(city\.|kelurahan\.).*",
            "apply-to": "queues",
            "priority": 10,
            "definition": {"dead-letter-exchange": DLX, "delivery-limit": DELIVERY_LIMIT},
        }
    ]
    exchanges = [
        _exchange(UP, vhost, "topic"),
        _exchange(DOWN, vhost, "topic"),
        _exchange(DLX, vhost, "fanout"),
    ]
    return _document(
        users,
        [vhost],
        permissions,
        topic_permissions=topic_permissions,
        policies=policies,
        queues=queues,
        exchanges=exchanges,
        bindings=bindings,
    )


def kelurahan_users():
    return ["admin", "rembug"]


def kelurahan_definitions(hashes, code):
    """A kelurahan broker's definitions: its vhost, the services' user and the operators'."""
    vhost = kelurahan_vhost(code)
    users = [_user("admin", hashes["admin"], ["administrator"]), _user("rembug", hashes["rembug"])]
    permissions = [
        _permission("admin", vhost, ".*", ".*", ".*"),
        _permission("rembug", vhost, ".*", ".*", ".*"),
    ]
    return _document(users, [vhost], permissions)


def write(document, out):
    text = json.dumps(document, indent=2) + "\n"
    if out in (None, "-"):
        sys.stdout.write(text)
        return
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("node", choices=["city", "kelurahan"])
    parser.add_argument("code", nargs="?", help="the kelurahan's code (kelurahan only)")
    parser.add_argument("--secrets", default=os.environ.get("REMBUG_RABBIT_SECRETS"))
    parser.add_argument("--generate-missing", action="store_true")
    parser.add_argument("--out", default="-", help="file to write (mode 600); - for stdout")
    args = parser.parse_args(argv)
    codes = kelurahan_codes()
    if args.node == "kelurahan" and args.code not in codes:
        parser.error(f"give a kelurahan code of {WILAYAH.name}, not {args.code!r}")
    users = city_users(codes) if args.node == "city" else kelurahan_users()
    try:
        hashes = user_hashes(users, args.secrets, generate_missing=args.generate_missing)
    except MissingSecrets as missing:
        sys.exit(str(missing))
    if args.node == "city":
        document = city_definitions(hashes, codes)
    else:
        document = kelurahan_definitions(hashes, args.code)
    write(document, args.out)


if __name__ == "__main__":
    main()
