"""The city monograph from what a kelurahan's citizens service replicates: counts per
kecamatan and kelurahan, and nothing that identifies anyone."""

import threading
import uuid
from urllib.parse import quote

from services.citizens import city
from services.citizens.service import MIGRATIONS
from shared import config as configmod
from shared import replication
from shared.db import MIGRATIONS as PLATFORM_MIGRATIONS
from shared.db import Database, migrate
from tests import factories as f
from tests.citizens import people
from tests.platform.test_replication import (  # noqa: F401  (schema_url is a fixture)
    NIK_SHAPED,
    CityBroker,
    api,
    schema_url,
    wait_until,
)


def test_the_city_monograph_counts_every_kelurahan_from_pseudonymous_parts(
    citizens,
    service_env,
    schema_url,  # noqa: F811
):
    vhost = f"city-{uuid.uuid4().hex[:8]}"
    api("PUT", f"vhosts/{vhost}")
    api("PUT", f"permissions/{vhost}/guest", {"configure": ".*", "write": ".*", "read": ".*"})
    city_uri = service_env["AMQP_URI"].rsplit("/", 1)[0] + "/" + quote(vhost, safe="")
    broker = CityBroker({"vhost": vhost, "AMQP_URI": city_uri})
    city_url = schema_url()
    city_db = Database(city_url)
    migrate(city_db, PLATFORM_MIGRATIONS, MIGRATIONS)
    city_env = {**service_env, "NODE_ROLE": "city", "KELURAHAN_CODE": "32.75"}
    city_env |= {"AMQP_URI": city_uri, "DATABASE_URL": city_url}
    stop = threading.Event()
    links = [
        threading.Thread(
            target=replication.run_kelurahan_link,
            args=(
                configmod.load("citizens", service_env),
                broker.add_kelurahan(f.PENGASINAN),
                stop,
            ),
        ),
        threading.Thread(
            target=replication.run_city_link, args=(configmod.load("citizens", city_env), stop)
        ),
    ]
    for link in links:
        link.start()
    try:
        payloads = [people.person(rw=7, sex="P"), people.person(rw=8, sex="L")]
        payloads.append(people.person(rw=8, sex="L"))
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

        wait_until(lambda: (pengasinan() or {}).get("population") == 2, 30, "the city's count")
        counted = pengasinan()
        assert counted["kelurahan"] == f.PENGASINAN and counted["by_sex"] == {"L": 1, "P": 1}
        assert counted["vulnerable"] == {"disability.physical": 1}
        assert city.monograph(city_db, "32.75.08")["population"] == 0

        with city_db.read() as conn:
            stored = [r["t"] for r in conn.execute("SELECT data::text AS t FROM replica_events")]
            rows = [str(r) for r in conn.execute("SELECT * FROM city_residents")]
        for text in stored + rows:
            assert not NIK_SHAPED.search(text) and "personal" not in text
            assert not any(p["name"] in text for p in payloads)
    finally:
        stop.set()
        for link in links:
            link.join(15)
        city_db.close()
        broker.remove_users()
        api("DELETE", f"vhosts/{quote(vhost, safe='')}")
