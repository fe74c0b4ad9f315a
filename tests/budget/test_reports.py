"""The budget reports over RPC: realisation, advances, Binwas per RW, CSV, as of any date."""

import csv
import io

from shared.errors import Forbidden
from tests import factories as f
from tests.budget.conftest import expense_payload
from tests.proposals.conftest import raises

OPERATOR, LURAH, BENDAHARA = f.operator(), f.lurah(), f.bendahara()
TRANSPORT, CONSUMPTION = "2027-binwas-transport", "2027-binwas-consumption"


def spend(budget, line_id, amount, day, activity_id=None):
    """An expense recorded, approved and paid on ``day``."""
    with budget(OPERATOR) as op:
        expense = op.record_expense(
            **expense_payload(line_id, amount, date=day, activity_id=activity_id)
        )
    with budget(LURAH) as lurah:
        lurah.approve_expense(expense_id=expense["expense_id"])
    with budget(BENDAHARA) as bendahara:
        bendahara.pay_expense(expense_id=expense["expense_id"], paid_on=day)


def advance(budget, person_id, amount, day, activity_id=None):
    with budget(OPERATOR) as op:
        return op.record_advance(
            person_id=person_id,
            line_id=CONSUMPTION,
            amount=amount,
            paid_on=day,
            description="Konsumsi kunjungan",
            activity_id=activity_id,
        )


def test_realisation_per_line_and_month_as_of_any_date(opened):
    spend(opened, TRANSPORT, 100_000, "2027-02-10")
    spend(opened, TRANSPORT, 250_000, "2027-03-15")
    advance(opened, "u-lurah", 40_000, "2027-03-20")
    with opened(LURAH) as lurah:
        march = lurah.realisation(fiscal_year=2027, as_of="2027-03-31")
        mid_march = lurah.realisation(fiscal_year=2027, as_of="2027-03-14")
        as_csv = lurah.realisation(fiscal_year=2027, as_of="2027-03-31", format="csv")
    lines = {line["id"]: line for line in march["lines"]}
    transport = lines[TRANSPORT]
    assert (transport["m02"], transport["m03"], transport["m04"]) == (100_000, 250_000, 0)
    assert transport["realised"] == 350_000 and transport["remaining"] == 1_650_000
    assert transport["percent"] == 17.5
    assert lines[CONSUMPTION]["m03"] == 40_000
    assert march["totals"] == {"allocated": 3_000_000, "realised": 390_000, "remaining": 2_610_000}
    assert {line["id"]: line["realised"] for line in mid_march["lines"]} == {
        CONSUMPTION: 0,
        TRANSPORT: 100_000,
    }
    rows = list(csv.DictReader(io.StringIO(as_csv)))
    assert {row["id"]: row["m03"] for row in rows} == {CONSUMPTION: "40000", TRANSPORT: "250000"}


def test_outstanding_advances_per_person_with_their_age(opened):
    first = advance(opened, "u-lurah", 300_000, "2027-01-10")
    advance(opened, "u-lurah", 50_000, "2027-02-01")
    advance(opened, "u-sekel", 75_000, "2027-02-05")
    with opened(BENDAHARA) as bendahara:
        bendahara.reimburse_advance(
            advance_id=first["advance_id"], number="PG-1", amount=300_000, paid_on="2027-02-20"
        )
    with opened(LURAH) as lurah:
        before = lurah.outstanding_advances(as_of="2027-02-10")
        after = lurah.outstanding_advances(as_of="2027-03-01")
    people = {p["person_id"]: p for p in before["people"]}
    assert people["u-lurah"]["outstanding"] == 350_000
    assert [a["age_days"] for a in people["u-lurah"]["advances"]] == [31, 9]
    assert before["total"] == 425_000
    assert {p["person_id"]: p["outstanding"] for p in after["people"]} == {
        "u-lurah": 50_000,
        "u-sekel": 75_000,
    }


def test_an_advance_owed_over_thirty_days_is_flagged_once(opened):
    owed = advance(opened, "u-lurah", 60_000, "2027-01-10")
    with opened(f.system()) as system:
        assert system.flag_overdue_advances(as_of="2027-02-09") == {"flagged": 0}
        assert system.flag_overdue_advances(as_of="2027-02-10") == {"flagged": 1}
        assert system.flag_overdue_advances(as_of="2027-03-10") == {"flagged": 0}
        overdue = [e for e in system.replay(after=0, limit=5000) if e["type"] == "advance.overdue"]
    assert [e["data"] for e in overdue] == [
        {
            "advance_id": owed["advance_id"],
            "person_id": "u-lurah",
            "outstanding": 60_000,
            "age_days": 31,
        }
    ]
    with opened(OPERATOR) as op, raises(Forbidden):
        op.flag_overdue_advances()


def test_binwas_cost_per_rw(opened):
    with opened(LURAH) as lurah:
        rw7 = lurah.plan_activity(
            kind="rw_visit", title="Kunjungan RW 07", planned_on="2027-02-01", rw=7
        )
        rw3 = lurah.plan_activity(
            kind="posyandu_visit", title="Posyandu Melati", planned_on="2027-02-03", rw=3
        )
        lurah.hold_activity(activity_id=rw7["activity_id"], held_on="2027-02-01")
    spend(opened, TRANSPORT, 120_000, "2027-02-01", rw7["activity_id"])
    advance(opened, "u-lurah", 80_000, "2027-02-01", rw7["activity_id"])
    spend(opened, TRANSPORT, 45_000, "2027-02-03", rw3["activity_id"])
    with opened(LURAH) as lurah:
        report = lurah.binwas_costs(fiscal_year=2027)
        as_csv = lurah.binwas_costs(fiscal_year=2027, format="csv")
    assert report["rws"] == [
        {"rw": 3, "activities": 1, "held": 0, "cost": 45_000},
        {"rw": 7, "activities": 1, "held": 1, "cost": 200_000},
    ]
    assert report["total"] == 245_000
    with opened(OPERATOR) as op:
        visit = op.get_activity(rw7["activity_id"])
        listed = op.list_activities(fiscal_year=2027, rw=7)
    assert visit["cost"] == 200_000 and visit["status"] == "held"
    assert [a["cost"] for a in listed["items"]] == [200_000]
    assert as_csv.splitlines()[0] == "rw,activities,held,cost"


def test_account_entries_carry_a_running_balance(opened):
    spend(opened, TRANSPORT, 100_000, "2027-02-10")
    spend(opened, TRANSPORT, 30_000, "2027-02-11")
    with opened(BENDAHARA) as bendahara:
        statement = bendahara.account_entries(account="asset.bank")
    assert [(e["debit"], e["credit"], e["balance"]) for e in statement["items"]] == [
        (10_000_000, 0, 10_000_000),
        (0, 100_000, 9_900_000),
        (0, 30_000, 9_870_000),
    ]


def test_reports_are_not_for_residents(opened):
    with opened(f.actor("warga")) as warga, raises(Forbidden):
        warga.realisation(fiscal_year=2027)
