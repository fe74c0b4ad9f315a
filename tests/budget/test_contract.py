"""Every event type the budget service publishes fits the generated AsyncAPI contract."""

from jsonschema import Draft7Validator

from services.budget.schemas import EVENT_SCHEMAS
from shared import asyncapi
from tests import factories as f
from tests.budget.conftest import expense_payload

OPERATOR, LURAH, BENDAHARA = f.operator(), f.lurah(), f.bendahara()


def drive_every_event_type(budget):
    """Touch every budget event type at least once; ``budget`` is the ``opened`` fixture."""
    with budget(BENDAHARA) as bendahara:
        bendahara.open_account(code="asset.bank_bjb", name="Rekening Bank BJB")
    with budget(LURAH) as lurah:
        lurah.revise_line(line_id="2027-binwas-transport", allocated=1_000_000, reason="revisi")
        activity = lurah.plan_activity(
            kind="proposal_site",
            title="Tinjau lokasi saluran RW 07",
            planned_on="2027-03-02",
            rw=7,
            proposal_id="00000000-0000-4000-8000-00000000000a",
            line_id="2027-binwas-transport",
        )
        lurah.hold_activity(activity_id=activity["activity_id"], held_on="2027-03-02", notes="ok")
        other = lurah.plan_activity(
            kind="rw_visit", title="Kunjungan RW 02", planned_on="2027-04-01"
        )
        lurah.cancel_activity(activity_id=other["activity_id"], reason="hujan")
    with budget(OPERATOR) as op:
        paid = op.record_expense(
            **expense_payload(amount=950_000, activity_id=activity["activity_id"])
        )
        refused = op.record_expense(**expense_payload("2027-binwas-consumption", 10_000))
        advance = op.record_advance(
            person_id=LURAH.user_id,
            line_id="2027-binwas-consumption",
            amount=200_000,
            paid_on="2027-03-02",
            description="Konsumsi tinjau lokasi",
            activity_id=activity["activity_id"],
        )
    with budget(LURAH) as lurah:
        lurah.approve_expense(expense_id=paid["expense_id"])
        lurah.reject_expense(expense_id=refused["expense_id"], reason="dobel")
    with budget(BENDAHARA) as bendahara:
        bendahara.pay_expense(expense_id=paid["expense_id"], paid_on="2027-03-03")
        bendahara.reimburse_advance(
            advance_id=advance["advance_id"], number="PG-1", amount=50_000, paid_on="2027-03-04"
        )
        bendahara.post_transaction(
            date="2027-03-05",
            description="Konsumsi rapat, dibayar tunai",
            line_id="2027-binwas-consumption",
            entries=[
                {"account": "expense.consumption", "debit": 25_000},
                {"account": "asset.cash", "credit": 25_000},
            ],
        )
    with budget(f.system()) as system:
        system.flag_overdue_advances(as_of="2027-05-01")
    with budget(LURAH) as lurah:
        lurah.close_fiscal_year(year=2027, reason="tutup buku")


def test_every_budget_event_type_fits_the_contract(opened):
    drive_every_event_type(opened)
    with opened(f.system()) as system:
        published = system.replay(after=0, limit=5000)
    assert {e["type"] for e in published} == set(EVENT_SCHEMAS)
    messages = asyncapi.document()["components"]["messages"]
    for cloudevent in published:
        payload = messages[cloudevent["type"]]["payload"]
        problems = [e.message for e in Draft7Validator(payload).iter_errors(cloudevent)]
        assert not problems, (cloudevent["type"], problems)
