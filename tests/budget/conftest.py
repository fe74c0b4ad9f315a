"""A running budget service on the test's vhost and schema, and callers for it."""

from contextlib import contextmanager

import pytest
from nameko.standalone.rpc import ServiceRpcProxy

from services.budget.service import BudgetService
from shared.auth import issue_token
from tests import factories as f
from tests.conftest import AUTH_SECRET

YEAR = 2027


@pytest.fixture
def budget(start_service, rabbit_config):
    """Start the service; returns a function that opens a client acting as an actor."""
    container = start_service(BudgetService)

    @contextmanager
    def client(actor=None):
        context = {"authorization": issue_token(AUTH_SECRET, actor)} if actor else {}
        with ServiceRpcProxy(
            "budget", {"AMQP_URI": rabbit_config["AMQP_URI"]}, context_data=context
        ) as proxy:
            yield proxy

    client.container = container
    return client


@pytest.fixture
def opened(budget):
    """The budget service with fiscal year 2027 open, funded, and two lines planned."""
    with budget(f.lurah()) as rpc:
        rpc.open_fiscal_year(year=YEAR)
        rpc.plan_line(**line_payload("binwas", "expense.transport", 2_000_000))
        rpc.plan_line(**line_payload("binwas", "expense.consumption", 1_000_000))
    with budget(f.bendahara()) as rpc:
        rpc.post_transaction(
            date=f"{YEAR}-01-05",
            description="Alokasi operasional triwulan I",
            entries=[
                {"account": "asset.bank", "debit": 10_000_000},
                {"account": "source.apbd", "credit": 10_000_000},
            ],
        )
    return budget


def line_payload(activity, category, allocated, year=YEAR):
    return {
        "fiscal_year": year,
        "activity": activity,
        "activity_name": "Pembinaan dan pengawasan wilayah",
        "category": category,
        "source": "source.apbd",
        "allocated": allocated,
    }


def expense_payload(line_id="2027-binwas-transport", amount=150_000, **overrides):
    return {
        "line_id": line_id,
        "amount": amount,
        "date": "2027-02-10",
        "description": "Transport kunjungan RW 07",
        "receipt": {"number": "KW-001", "date": "2027-02-10", "file": "files/kw-001.jpg"},
        **overrides,
    }
