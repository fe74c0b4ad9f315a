"""The budget domain without broker or database: balance, limits, separation of duties."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.budget.domain import (
    Advance,
    BudgetLine,
    Expense,
    Transaction,
    balanced,
    rupiah,
)
from services.budget.schemas import EVENT_SCHEMAS
from shared.domain import meta_for
from shared.errors import Conflict, Forbidden, ValidationError
from tests import factories as f

META = meta_for(f.operator())
ACCOUNTS = ("asset.cash", "asset.bank", "source.apbd", "expense.transport", "payable.u-1")


def line(allocated=1_000_000):
    return BudgetLine.plan(
        f.lurah(),
        {
            "fiscal_year": 2027,
            "activity": "binwas",
            "activity_name": "Pembinaan wilayah",
            "category": "expense.transport",
            "source": "source.apbd",
            "allocated": allocated,
        },
        META,
    )


def assert_events_fit_their_schemas(*aggregates):
    for aggregate in aggregates:
        for type_, data, _ in aggregate.pending:
            assert EVENT_SCHEMAS[type_]().validate(data) == {}, type_


entries = st.lists(
    st.fixed_dictionaries(
        {
            "account": st.sampled_from(ACCOUNTS),
            "debit": st.integers(-5, 10**6),
            "credit": st.integers(-5, 10**6),
        }
    ),
    max_size=6,
)


@given(entries)
def test_a_transaction_balances_or_is_refused(candidate):
    try:
        checked = balanced(candidate)
    except ValidationError:
        return
    assert len(checked) >= 2
    assert sum(e["debit"] for e in checked) == sum(e["credit"] for e in checked)
    assert all((e["debit"] > 0) != (e["credit"] > 0) for e in checked)
    assert all(isinstance(e["debit"], int) and isinstance(e["credit"], int) for e in checked)


def test_floats_are_never_money():
    with pytest.raises(ValidationError):
        balanced(
            [{"account": "asset.cash", "debit": 10.0}, {"account": "asset.bank", "credit": 10.0}]
        )


def test_a_line_refuses_the_excess_and_says_by_how_much():
    budget_line = line(1_000_000)
    budget_line.commit(
        f.operator(), {"kind": "expense", "id": "e1"}, 950_000, "2027-03-01", None, META
    )
    with pytest.raises(Conflict) as refused:
        budget_line.commit(
            f.operator(), {"kind": "expense", "id": "e2"}, 100_000, "2027-03-02", None, META
        )
    assert "by Rp 50.000" in str(refused.value)


def test_a_line_records_crossing_ninety_and_then_a_hundred_percent():
    budget_line = line(1_000_000)
    budget_line.pending = []
    budget_line.commit(
        f.operator(), {"kind": "expense", "id": "e1"}, 900_000, "2027-03-01", None, META
    )
    budget_line.commit(
        f.lurah(), {"kind": "expense", "id": "e2"}, 200_000, "2027-03-02", "banjir", META
    )
    crossings = [d["level"] for t, d, _ in budget_line.pending if t == "line.threshold_crossed"]
    assert crossings == ["near", "over"]
    assert_events_fit_their_schemas(budget_line)


def test_an_expense_passes_three_different_hands():
    budget_line = line()
    expense = Expense.create(
        "00000000-0000-4000-8000-000000000001",
        f.operator(),
        budget_line,
        {
            "amount": 100_000,
            "date": "2027-02-01",
            "description": "Transport",
            "receipt": {"number": "1", "date": "2027-02-01", "file": "files/1.jpg"},
        },
        None,
        META,
    )
    expense.approve(f.lurah(), "", meta_for(f.lurah()))
    with pytest.raises(Forbidden):
        expense.pay(f.bendahara(f.lurah().user_id), "t", "asset.bank", "2027-02-02", None, META)
    posting = expense.pay(
        f.bendahara(),
        "00000000-0000-4000-8000-000000000002",
        "asset.bank",
        "2027-02-02",
        None,
        META,
    )
    assert expense.status == "paid"
    assert_events_fit_their_schemas(budget_line, expense, posting)


def test_an_advance_is_reimbursed_once_per_number_and_flagged_overdue_once():
    advance, posting = Advance.create(
        "00000000-0000-4000-8000-000000000003",
        f.operator(),
        line(),
        "00000000-0000-4000-8000-000000000004",
        {
            "person_id": "u-lurah",
            "amount": 300_000,
            "paid_on": "2027-01-10",
            "description": "Konsumsi rapat",
        },
        None,
        META,
    )
    assert posting.data["entries"][1] == {
        "account": "payable.u-lurah",
        "credit": 300_000,
        "debit": 0,
    }
    assert advance.flag_overdue("2027-02-09", META) is False  # 30 days: not yet
    assert advance.flag_overdue("2027-02-10", META) is True
    assert advance.flag_overdue("2027-02-11", META) is False  # once only
    reimbursement = {"number": "PG-1", "amount": 100_000, "account": "asset.cash"}
    advance.reimburse(
        f.bendahara(),
        "00000000-0000-4000-8000-000000000005",
        {**reimbursement, "paid_on": "2027-02-12"},
        META,
    )
    with pytest.raises(Conflict):
        advance.reimburse(f.bendahara(), "t", {**reimbursement, "paid_on": "2027-02-13"}, META)
    with pytest.raises(Forbidden):
        advance.reimburse(
            f.bendahara("u-lurah"),
            "t",
            {**reimbursement, "number": "PG-2", "paid_on": "2027-02-13"},
            META,
        )
    assert_events_fit_their_schemas(advance, posting)


def test_a_posting_event_fits_its_schema():
    posting = Transaction.post(
        "00000000-0000-4000-8000-000000000006",
        f.bendahara(),
        {
            "date": "2027-01-05",
            "description": "Alokasi",
            "entries": [
                {"account": "asset.bank", "debit": 5},
                {"account": "source.apbd", "credit": 5},
            ],
        },
        META,
    )
    assert_events_fit_their_schemas(posting)


def test_rupiah_is_written_the_indonesian_way():
    assert rupiah(1_250_000) == "Rp 1.250.000"
    assert rupiah(-5_000) == "-Rp 5.000"
