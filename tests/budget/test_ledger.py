"""The budget ledger over RPC, against the real RabbitMQ and PostgreSQL."""

import uuid

from shared.errors import Conflict, Forbidden, NotFound, ValidationError
from tests import factories as f
from tests.budget.conftest import YEAR, expense_payload, line_payload
from tests.proposals.conftest import raises

TRANSPORT = "2027-binwas-transport"
OPERATOR, LURAH, BENDAHARA = f.operator(), f.lurah(), f.bendahara()


def trial_balance(budget, as_of=f"{YEAR}-12-31"):
    with budget(LURAH) as rpc:
        report = rpc.trial_balance(as_of=as_of)
    return {row["account"]: row["balance"] for row in report["accounts"]}, report["totals"]


def test_expense_is_recorded_approved_and_paid_by_three_people(opened):
    with opened(OPERATOR) as op:
        expense = op.record_expense(**expense_payload())
    assert expense["status"] == "awaiting_approval"
    with opened(LURAH) as lurah:
        assert lurah.get_line(TRANSPORT)["committed"] == 150_000
        assert lurah.approve_expense(expense_id=expense["expense_id"])["status"] == "approved"
    with opened(BENDAHARA) as bendahara:
        paid = bendahara.pay_expense(expense_id=expense["expense_id"], paid_on="2027-02-11")
    assert paid["status"] == "paid"
    assert [h["type"] for h in paid["history"]] == [
        "expense.recorded",
        "expense.approved",
        "expense.paid",
    ]
    balances, totals = trial_balance(opened)
    assert balances["expense.transport"] == 150_000
    assert balances["asset.bank"] == 10_000_000 - 150_000
    assert totals["debit"] == totals["credit"]


def test_nobody_approves_or_pays_their_own_expense(opened):
    with opened(LURAH) as lurah:
        own = lurah.record_expense(**expense_payload())
        with raises(Forbidden) as refused:
            lurah.approve_expense(expense_id=own["expense_id"])
    assert "recorded themselves" in refused.error.message

    with opened(BENDAHARA) as bendahara:
        recorded = bendahara.record_expense(**expense_payload())
    with opened(LURAH) as lurah:
        lurah.approve_expense(expense_id=recorded["expense_id"])
    with opened(BENDAHARA) as bendahara, raises(Forbidden):
        bendahara.pay_expense(expense_id=recorded["expense_id"], paid_on="2027-02-11")
    with opened(OPERATOR) as op, raises(Forbidden):
        op.approve_expense(expense_id=recorded["expense_id"])


def test_an_expense_beyond_its_line_is_refused_with_the_excess_unless_overridden(opened):
    with opened(OPERATOR) as op:
        op.record_expense(**expense_payload(amount=1_900_000))
        with raises(Conflict) as refused:
            op.record_expense(**expense_payload(amount=250_000))
        assert "by Rp 150.000" in refused.error.message
        with raises(Forbidden):
            op.record_expense(**expense_payload(amount=250_000, override_reason="darurat"))
    with opened(LURAH) as lurah:
        over = lurah.record_expense(
            **expense_payload(amount=250_000, override_reason="Kunjungan darurat banjir")
        )
        line = lurah.get_line(TRANSPORT)
    assert over["status"] == "awaiting_approval"
    assert line["committed"] == 2_150_000 and line["remaining"] == -150_000
    assert [(h["type"], h.get("note")) for h in line["history"][-2:]] == [
        ("line.committed", "Kunjungan darurat banjir"),
        ("line.threshold_crossed", None),
    ]


def test_a_rejected_expense_gives_its_amount_back_to_the_line(opened):
    with opened(OPERATOR) as op:
        expense = op.record_expense(**expense_payload(amount=500_000))
    with opened(LURAH) as lurah:
        rejected = lurah.reject_expense(expense_id=expense["expense_id"], reason="tanpa SPT")
        assert rejected["status"] == "rejected"
        assert lurah.get_line(TRANSPORT)["committed"] == 0
        with raises(Conflict):
            lurah.approve_expense(expense_id=expense["expense_id"])


def test_an_advance_is_owed_until_reimbursed_and_never_paid_twice(opened):
    with opened(OPERATOR) as op:
        advance = op.record_advance(
            person_id=LURAH.user_id,
            line_id="2027-binwas-consumption",
            amount=300_000,
            paid_on="2027-03-01",
            description="Konsumsi rapat koordinasi RW",
        )
    assert advance["status"] == "outstanding" and advance["outstanding"] == 300_000
    balances, _ = trial_balance(opened)
    assert balances[f"payable.{LURAH.user_id}"] == 300_000

    with opened(BENDAHARA) as bendahara:
        partly = bendahara.reimburse_advance(
            advance_id=advance["advance_id"], number="PG-01", amount=100_000, paid_on="2027-03-05"
        )
        assert partly["outstanding"] == 200_000
        with raises(Conflict) as twice:
            bendahara.reimburse_advance(
                advance_id=advance["advance_id"],
                number="PG-01",
                amount=100_000,
                paid_on="2027-03-06",
            )
        assert "cannot be paid twice" in twice.error.message
        with raises(Conflict) as beyond:
            bendahara.reimburse_advance(
                advance_id=advance["advance_id"],
                number="PG-02",
                amount=250_000,
                paid_on="2027-03-06",
            )
        assert "by Rp 50.000" in beyond.error.message
        done = bendahara.reimburse_advance(
            advance_id=advance["advance_id"], number="PG-02", amount=200_000, paid_on="2027-03-07"
        )
    assert done["status"] == "reimbursed" and done["outstanding"] == 0
    balances, totals = trial_balance(opened)
    assert balances[f"payable.{LURAH.user_id}"] == 0
    assert balances["expense.consumption"] == 300_000
    assert totals["debit"] == totals["credit"]


def test_a_retried_command_takes_effect_once(opened):
    command_id = str(uuid.uuid4())
    with opened(OPERATOR) as op:
        one = op.record_expense(**expense_payload(), command_id=command_id)
        two = op.record_expense(**expense_payload(), command_id=command_id)
        assert one["expense_id"] == two["expense_id"]
    with opened(LURAH) as lurah:
        assert lurah.get_line(TRANSPORT)["committed"] == 150_000


def test_bad_input_is_a_typed_error_and_writes_nothing(opened):
    with opened(f.system()) as system:
        before = len(system.replay(after=0, limit=5000))
    bad = [
        ("record_expense", expense_payload(amount=-5), ValidationError),
        ("record_expense", expense_payload(amount=0), ValidationError),
        ("record_expense", expense_payload(amount=1500.5), ValidationError),
        ("record_expense", expense_payload(amount="150000"), ValidationError),
        ("record_expense", expense_payload(line_id="2027-binwas-fuel"), NotFound),
        ("record_expense", expense_payload(date="2028-01-02"), Conflict),
        ("record_expense", expense_payload(date="2026-12-31"), Conflict),
        (
            "post_transaction",
            {
                "date": "2027-04-01",
                "description": "Tidak seimbang",
                "entries": [
                    {"account": "asset.cash", "debit": 100_000},
                    {"account": "asset.bank", "credit": 90_000},
                ],
            },
            ValidationError,
        ),
        (
            "post_transaction",
            {
                "date": "2027-04-01",
                "description": "Akun tidak dikenal",
                "entries": [
                    {"account": "asset.brankas", "debit": 100_000},
                    {"account": "asset.bank", "credit": 100_000},
                ],
            },
            ValidationError,
        ),
    ]
    with opened(BENDAHARA) as bendahara:
        for command, payload, error in bad:
            with raises(error):
                getattr(bendahara, command)(**payload)
    with opened(f.system()) as system:
        assert len(system.replay(after=0, limit=5000)) == before


def test_an_expense_dated_outside_its_lines_year_is_refused(opened):
    with opened(LURAH) as lurah:
        lurah.open_fiscal_year(year=2028)
    with opened(OPERATOR) as op, raises(ValidationError) as refused:
        op.record_expense(**expense_payload(date="2028-01-03"))
    assert "outside fiscal year 2027" in refused.error.message


def test_a_closed_year_takes_no_more_postings(opened):
    with opened(LURAH) as lurah:
        closed = lurah.close_fiscal_year(year=YEAR, reason="tutup buku 2027")
    assert closed["status"] == "closed"
    with opened(OPERATOR) as op, raises(Conflict) as refused:
        op.record_expense(**expense_payload())
    assert "is closed" in refused.error.message
    with opened(f.system()) as system:
        before = len(system.replay(after=0, limit=5000))
    with opened(BENDAHARA) as bendahara, raises(Conflict) as refused:
        bendahara.post_transaction(
            date="2027-12-30",
            description="Setoran sisa kas",
            entries=[
                {"account": "source.apbd", "debit": 5_000},
                {"account": "asset.bank", "credit": 5_000},
            ],
        )
    assert refused.error.message.startswith("fiscal year 2027 is closed")
    with opened(f.system()) as system:
        assert len(system.replay(after=0, limit=5000)) == before


def test_a_line_is_planned_once_and_revised_not_below_its_commitments(opened):
    with opened(LURAH) as lurah, raises(Conflict):
        lurah.plan_line(**line_payload("binwas", "expense.transport", 5_000_000))
    with opened(OPERATOR) as op:
        op.record_expense(**expense_payload(amount=800_000))
    with opened(LURAH) as lurah:
        with raises(Conflict) as refused:
            lurah.revise_line(line_id=TRANSPORT, allocated=500_000, reason="pemotongan")
        assert "Rp 300.000 short" in refused.error.message
        revised = lurah.revise_line(line_id=TRANSPORT, allocated=3_000_000, reason="tambahan")
    assert revised["allocated"] == 3_000_000 and revised["remaining"] == 2_200_000


def test_who_was_paid_stays_on_the_node(opened):
    with opened(OPERATOR) as op:
        expense = op.record_expense(**expense_payload(payee="Warung Bu Sari"))
        assert op.get_expense(expense["expense_id"])["payee"] == "Warung Bu Sari"
    with opened(f.system()) as system:
        published = system.replay(after=0, limit=5000)
    assert "Warung Bu Sari" not in str(published)
