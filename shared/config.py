"""Configuration from the environment, validated once at start.

:func:`load` reads every variable a service needs and raises one
:class:`~shared.errors.ConfigError` that lists each missing or bad value with
what to put there, so an operator fixes them all in one go.
"""

import os
from dataclasses import dataclass

from shared import wilayah
from shared.errors import ConfigError

DEFAULTS = {
    "NODE_ROLE": "kelurahan",
    "AMQP_URI": "pyamqp://guest:guest@127.0.0.1:5672/",
    "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/postgres",
}
CITY_CODE = "32.75"
MIN_SECRET_LENGTH = 32


@dataclass(frozen=True)
class Config:
    """A node's settings. ``kelurahan_code`` is ``32.75`` on the city node."""

    service: str
    node_role: str
    kelurahan_code: str
    amqp_uri: str
    database_url: str
    auth_secret: str

    @property
    def node(self):
        """The node's path in event sources: ``kelurahan/32.75.05.1002`` or ``city/32.75``."""
        return f"{self.node_role}/{self.kelurahan_code}"

    @property
    def source(self):
        """This service's CloudEvents ``source``: ``/kelurahan/32.75.05.1002/proposals``."""
        return f"/{self.node}/{self.service}"


def load(service, environ=None):
    """Read and validate the configuration of ``service`` from ``environ`` (default: os.environ)."""
    env = dict(DEFAULTS, **(os.environ if environ is None else environ))
    problems = []
    role = env["NODE_ROLE"]
    if role not in ("kelurahan", "city"):
        problems.append(f"NODE_ROLE must be 'kelurahan' or 'city', not {role!r}")
    code = env.get("KELURAHAN_CODE", CITY_CODE if role == "city" else "")
    if role == "kelurahan" and not wilayah.is_kelurahan(code):
        problems.append(
            "KELURAHAN_CODE must be a kelurahan code of Kota Bekasi such as 32.75.05.1002 "
            f"(see shared/data/bekasi_wilayah.csv), not {code!r}"
        )
    if not env["AMQP_URI"].startswith(("amqp://", "pyamqp://", "amqps://")):
        problems.append("AMQP_URI must be an AMQP URL such as pyamqp://user:pass@host:5672/vhost")
    if not env["DATABASE_URL"].startswith(("postgresql://", "postgres://")):
        problems.append("DATABASE_URL must be a PostgreSQL URL such as postgresql://user@host/db")
    secret = env.get("AUTH_SECRET", "")
    if len(secret) < MIN_SECRET_LENGTH:
        problems.append(
            f"AUTH_SECRET must be set to a random string of at least {MIN_SECRET_LENGTH} "
            "characters (the key that signs callers' tokens)"
        )
    if problems:
        raise ConfigError(f"{service}: bad configuration:\n- " + "\n- ".join(problems))
    return Config(
        service=service,
        node_role=role,
        kelurahan_code=code,
        amqp_uri=env["AMQP_URI"],
        database_url=env["DATABASE_URL"],
        auth_secret=secret,
    )
