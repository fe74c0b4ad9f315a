"""A running proposals service on the test's vhost and schema, and callers for it."""

from contextlib import contextmanager

import pytest
from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ServiceRpcProxy

from services.proposals.service import ProposalsService
from shared.auth import issue_token
from shared.errors import from_remote
from tests.conftest import AUTH_SECRET


@pytest.fixture
def proposals(start_service, rabbit_config):
    """Start the service; returns a function that opens a client acting as an actor."""
    container = start_service(ProposalsService)

    @contextmanager
    def client(actor=None):
        context = {"authorization": issue_token(AUTH_SECRET, actor)} if actor else {}
        with ServiceRpcProxy(
            "proposals", {"AMQP_URI": rabbit_config["AMQP_URI"]}, context_data=context
        ) as proxy:
            yield proxy

    client.container = container
    return client


@contextmanager
def raises(error_type):
    """Expect a typed remote error; yields a holder whose ``.error`` is the typed error."""

    class Holder:
        error = None

    holder = Holder()
    try:
        yield holder
    except RemoteError as remote:
        holder.error = from_remote(remote)
        assert isinstance(holder.error, error_type), f"{remote.exc_type}: {remote.value}"
    else:
        raise AssertionError(f"expected {error_type.__name__}")
