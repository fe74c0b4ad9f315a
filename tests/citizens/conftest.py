"""A running citizens service on the test's vhost and schema, and callers for it."""

from contextlib import contextmanager
from types import SimpleNamespace

import pytest
from nameko.standalone.rpc import ServiceRpcProxy

from services.citizens.service import CitizensService
from shared.auth import issue_token
from shared.repository import EventStoreProvider, Repository
from tests import factories as f
from tests.conftest import AUTH_SECRET
from tests.proposals.conftest import raises as raises  # re-exported for the citizens tests


@pytest.fixture
def citizens(start_service, rabbit_config):
    """Start the service; returns a function that opens a client acting as an actor."""
    container = start_service(CitizensService)

    @contextmanager
    def client(actor=None):
        context = {"authorization": issue_token(AUTH_SECRET, actor)} if actor else {}
        with ServiceRpcProxy(
            "citizens", {"AMQP_URI": rabbit_config["AMQP_URI"]}, context_data=context
        ) as proxy:
            yield proxy

    client.container = container
    client.provider = next(d for d in container.dependencies if isinstance(d, EventStoreProvider))
    return client


def repository(citizens):
    """The service's own Repository (sealing and projection included), outside a call:
    for facts an RPC cannot fake, such as a request raised 25 hours ago."""
    worker_ctx = SimpleNamespace(call_id_stack=[], call_id=None)
    return Repository(citizens.provider, worker_ctx)


def pamor(rw=7):
    return f.actor("pamor", f"u-pamor-{rw}", rw=rw)


def warga():
    return f.actor("warga", "u-warga", rw=7, rt=3)
