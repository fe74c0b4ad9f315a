"""The city monograph from what a kelurahan's citizens service replicates: counts per
kecamatan and kelurahan, and nothing that identifies anyone."""

from services.citizens import city
from services.citizens.service import MIGRATIONS
from tests import factories as f
from tests.citizens import people
from tests.city import city_node
from tests.platform.test_replication import (  # noqa: F401  (schema_url is a fixture)
    NIK_SHAPED,
    schema_url,
    wait_until,
)


def test_the_city_monograph_counts_every_kelurahan_from_pseudonymous_parts(
    citizens,
    service_env,
    schema_url,  # noqa: F811
):
    with city_node("citizens", service_env, schema_url(), MIGRATIONS) as (city_db, _):
        payloads = [people.person(rw=7, sex="P", age=30), people.person(rw=8, sex="L", age=40)]
        payloads.append(people.person(rw=8, sex="L", age=50))
        with citizens(f.operator()) as op:
            residents = [op.register(**p) for p in payloads]
            op.record_disability(
                resident_id=residents[0]["id"],
                categories=["physical"],
                consent={"given_by": "self", "date": "2026-03-02", "reference": "form-3"},
                source="posyandu",
            )
            op.record_death(resident_id=residents[2]["id"], date="2026-04-01")

        def pengasinan():
            (kecamatan,) = city.monograph(city_db)["kecamatan"] or [None]
            return kecamatan and kecamatan["kelurahan"][0]

        expected = {
            "kelurahan": f.PENGASINAN,
            "name": "Pengasinan",
            "population": 2,  # three registered, one died
            "by_sex": {"L": 1, "P": 1},
            "vulnerable": {"disability.physical": 1},
        }
        wait_until(lambda: pengasinan() == expected, 30, "the city's count")
        assert city.monograph(city_db, "32.75.08")["population"] == 0

        with city_db.read() as conn:
            stored = [r["t"] for r in conn.execute("SELECT data::text AS t FROM replica_events")]
            rows = [str(r) for r in conn.execute("SELECT * FROM city_residents")]
        for text in stored + rows:
            assert not NIK_SHAPED.search(text) and "personal" not in text
            assert not any(p["name"] in text for p in payloads)
