"""Every kelurahan's budget at the city: realisation and outstanding advances, replicated."""

from services.budget import city
from services.budget.service import MIGRATIONS
from tests import factories as f
from tests.budget.conftest import expense_payload
from tests.city import city_node
from tests.platform.test_replication import schema_url, wait_until  # noqa: F401  (a fixture)


def test_the_city_sees_each_kelurahans_realisation_and_advances(opened, service_env, schema_url):  # noqa: F811
    with city_node("budget", service_env, schema_url(), MIGRATIONS) as (city_db, _):
        with opened(f.operator()) as op:
            expense = op.record_expense(**expense_payload(amount=400_000))
            advance = op.record_advance(
                person_id="u-lurah",
                line_id="2027-binwas-consumption",
                amount=250_000,
                paid_on="2027-03-01",
                description="Konsumsi rapat",
            )
        with opened(f.lurah()) as lurah:
            lurah.approve_expense(expense_id=expense["expense_id"])
        with opened(f.bendahara()) as bendahara:
            bendahara.pay_expense(expense_id=expense["expense_id"], paid_on="2027-03-02")
            bendahara.reimburse_advance(
                advance_id=advance["advance_id"], number="PG-1", amount=50_000, paid_on="2027-03-05"
            )

        def pengasinan():
            rows = city.realisation(city_db, 2027, "2027-03-31")["kelurahan"]
            return rows[0] if rows else {}

        wait_until(lambda: pengasinan().get("advances_outstanding") == 200_000, 30, "the city")
        assert pengasinan() == {
            "kelurahan": f.PENGASINAN,
            "name": "Pengasinan",
            "allocated": 3_000_000,
            "realised": 650_000,
            "advances_outstanding": 200_000,
            "advances_count": 1,
            "oldest_advance_days": 30,
        }
