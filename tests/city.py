"""A city broker (a vhost of its own) and database beside a test's kelurahan node, with
both replication links running in threads."""

import threading
import uuid
from contextlib import contextmanager
from urllib.parse import quote

from shared import config as configmod
from shared import replication
from shared.db import MIGRATIONS, Database, migrate
from tests import factories as f
from tests.platform.test_replication import CityBroker, api


@contextmanager
def city_node(service, service_env, database_url, migrations, more_kelurahan=()):
    """Yield ``(city_db, city_env)`` while the kelurahan of ``service_env`` (Pengasinan)
    replicates ``service`` to a city whose database is ``database_url`` (a fresh schema).
    ``more_kelurahan``: the environments of further kelurahan nodes (Jatimakmur, each
    with its own vhost and database) that replicate to the city too."""
    vhost = f"city-{uuid.uuid4().hex[:8]}"
    api("PUT", f"vhosts/{vhost}")
    api("PUT", f"permissions/{vhost}/guest", {"configure": ".*", "write": ".*", "read": ".*"})
    city_uri = service_env["AMQP_URI"].rsplit("/", 1)[0] + "/" + quote(vhost, safe="")
    codes = [f.PENGASINAN, *(env["KELURAHAN_CODE"] for env in more_kelurahan)]
    broker = CityBroker({"vhost": vhost, "AMQP_URI": city_uri}, codes, [service])
    city_db = Database(database_url)
    migrate(city_db, MIGRATIONS, migrations)
    city_env = {**service_env, "NODE_ROLE": "city", "KELURAHAN_CODE": configmod.CITY_CODE}
    city_env |= {"AMQP_URI": city_uri, "DATABASE_URL": database_url}
    stop = threading.Event()
    kelurahan = configmod.load(service, service_env)
    links = [
        threading.Thread(
            target=replication.run_kelurahan_link,
            args=(kelurahan, broker.add_kelurahan(f.PENGASINAN), stop),
        ),
        threading.Thread(
            target=replication.run_city_link, args=(configmod.load(service, city_env), stop)
        ),
    ]
    for env in more_kelurahan:
        other = configmod.load(service, env)
        uri = broker.add_kelurahan(other.kelurahan_code)
        links.append(
            threading.Thread(target=replication.run_kelurahan_link, args=(other, uri, stop))
        )
    for link in links:
        link.start()
    try:
        yield city_db, city_env
    finally:
        stop.set()
        for link in links:
            link.join(15)
        city_db.close()
        broker.remove_users()
        api("DELETE", f"vhosts/{quote(vhost, safe='')}")
