"""The city node: every kelurahan's proposals replicated up, the camat's decision flowing
down to the kelurahan that owns the proposal, the city's counts, lists and ranking. Real
brokers (a vhost per node), real databases, the real replication links in threads."""

import uuid
from contextlib import contextmanager
from urllib.parse import quote

import pytest
from nameko.standalone.rpc import ServiceRpcProxy

from services.proposals.service import MIGRATIONS, ProposalsService
from shared.auth import issue_token
from shared.errors import ValidationError
from tests import factories as f
from tests.city import city_node
from tests.conftest import AUTH_SECRET
from tests.platform.test_replication import api, schema_url, wait_until  # noqa: F401  (a fixture)
from tests.proposals.conftest import raises
from tests.proposals.forum import forwarded

JATIMAKMUR, PONDOKGEDE = "32.75.08.1003", "32.75.08"
BINA_MARGA = "Dinas Bina Marga dan Sumber Daya Air"


def _client(amqp_uri):
    @contextmanager
    def client(actor):
        context = {"authorization": issue_token(AUTH_SECRET, actor)}
        with ServiceRpcProxy("proposals", {"AMQP_URI": amqp_uri}, context_data=context) as proxy:
            yield proxy

    return client


def _start(container_factory, env, monkeypatch, back_to):
    """Start a proposals service with ``env``, then put the environment ``back_to``."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    container = container_factory(ProposalsService, {"AMQP_URI": env["AMQP_URI"]})
    container.start()
    for key, value in back_to.items():
        monkeypatch.setenv(key, value)
    return container


@pytest.fixture
def jatimakmur(container_factory, service_env, schema_url, monkeypatch):  # noqa: F811
    """A second kelurahan node (Jatimakmur, Kec. Pondok Gede) beside the test's Pengasinan:
    its own vhost and database; a client factory with ``.env``."""
    vhost = f"kelurahan-{uuid.uuid4().hex[:8]}"
    api("PUT", f"vhosts/{vhost}")
    api("PUT", f"permissions/{vhost}/guest", {"configure": ".*", "write": ".*", "read": ".*"})
    uri = service_env["AMQP_URI"].rsplit("/", 1)[0] + "/" + quote(vhost, safe="")
    env = {**service_env, "KELURAHAN_CODE": JATIMAKMUR, "AMQP_URI": uri}
    env["DATABASE_URL"] = schema_url()
    container = _start(container_factory, env, monkeypatch, service_env)
    client = _client(uri)
    client.env = env
    yield client
    container.stop()
    api("DELETE", f"vhosts/{quote(vhost, safe='')}")


@contextmanager
def running_city(container_factory, service_env, database_url, monkeypatch, more=()):
    """A client factory for the city node's proposals service, while Pengasinan (and the
    kelurahan of ``more``, their environments) replicate to it."""
    with city_node("proposals", service_env, database_url, MIGRATIONS, more) as (_, city_env):
        _start(container_factory, city_env, monkeypatch, service_env)
        yield _client(city_env["AMQP_URI"])


@pytest.fixture
def city(container_factory, service_env, schema_url, monkeypatch):  # noqa: F811
    """The city node with Pengasinan replicating to it."""
    with running_city(container_factory, service_env, schema_url(), monkeypatch) as client:
        yield client


@pytest.fixture
def city_of_two(container_factory, service_env, schema_url, monkeypatch, jatimakmur):  # noqa: F811
    """The city node with Pengasinan and Jatimakmur replicating to it."""
    with running_city(
        container_factory, service_env, schema_url(), monkeypatch, [jatimakmur.env]
    ) as client:
        yield client


def status_at(client, actor, pid):
    with client(actor) as rpc:
        items = rpc.list_proposals(kecamatan=f.RAWALUMBU)["items"]
    return next((p["status"] for p in items if p["id"] == pid), None)


def test_a_camats_decision_at_the_city_reaches_the_kelurahan_and_comes_back(proposals, city):
    (pid,) = forwarded(proposals)
    wait_until(lambda: status_at(city, f.camat(), pid) == "forwarded", 30, "the city's view")

    with city(f.camat()) as camat:
        decided = camat.decide(proposal_id=pid, level="kecamatan", decision="accepted")
    assert decided["status"] == "accepted_kecamatan"

    def at_kelurahan():
        with proposals(f.operator()) as op:
            return op.get_proposal(proposal_id=pid)

    wait_until(lambda: at_kelurahan()["status"] == "accepted_kecamatan", 30, "the kelurahan")
    history = [(h["type"], h["actor"]["role"]) for h in at_kelurahan()["history"]]
    assert history[-1] == ("proposal.decided", "camat")
    wait_until(
        lambda: status_at(city, f.bappeda(), pid) == "accepted_kecamatan", 30, "the round trip"
    )

    with city(f.camat("32.75.08")) as other_camat, pytest.raises(Exception) as refused:
        other_camat.decide(proposal_id=pid, level="kecamatan", decision="rejected", reason="x")
    assert "Forbidden" in str(refused.value)  # Pondok Gede's camat decides nothing in Rawalumbu


def _proposal(rw, sector="pekerjaan_umum", target_agency=BINA_MARGA):
    return f.proposal(rw=rw, rt=1, sector=sector, target_agency=target_agency)


def test_the_city_counts_lists_and_ranks_every_kelurahans_proposals(
    proposals, jatimakmur, city_of_two
):
    # Pengasinan: p_health scored 5, p_road 4 (forum ranks 1 and 2), p_waste only submitted
    p_health, p_road = forwarded(
        proposals,
        [(_proposal(7, "kesehatan", "Dinas Kesehatan"), 5), (_proposal(8), 4)],
    )
    with proposals(f.rt_chair(rw=9, rt=1)) as rt:
        rt.submit(**_proposal(9, "lingkungan_hidup", "Dinas Lingkungan Hidup"))
    # Jatimakmur: j_road ties p_road on 4.0 but is its forum's first; j_drain scored 3
    j_road, j_drain = forwarded(
        jatimakmur, [(_proposal(2), 4), (_proposal(3), 3)], kelurahan=JATIMAKMUR
    )

    def counted():
        with city_of_two(f.bappeda()) as rpc:
            return rpc.count_by_status()

    wait_until(lambda: counted()["forwarded"] == 4, 30, "both kelurahan at the city")
    with city_of_two(f.bappeda()) as rpc:
        counts = rpc.count_by_status()
        assert (counts["submitted"], counts["forwarded"], counts["total"]) == (1, 4, 5)
        assert rpc.count_by_status(kecamatan=PONDOKGEDE)["total"] == 2
        assert rpc.count_by_status(kelurahan=f.PENGASINAN)["total"] == 3
        assert rpc.count_by_status(kecamatan=f.RAWALUMBU, year=2027)["forwarded"] == 2
        assert rpc.count_by_status(year=2028)["total"] == 0

        assert rpc.list_proposals()["total"] == 5
        assert rpc.list_proposals(kecamatan=f.RAWALUMBU)["total"] == 3
        road_works = rpc.list_proposals(sector="pekerjaan_umum")
        assert {p["id"] for p in road_works["items"]} == {p_road, j_road, j_drain}
        for_bina_marga = rpc.list_proposals(target_agency=BINA_MARGA, kecamatan=PONDOKGEDE)
        assert [p["id"] for p in for_bina_marga["items"]] == [j_road, j_drain]

        ranking = rpc.city_ranking(year=2027)
        assert ranking["total"] == 4 and ranking["order"].startswith("score_total desc")
        assert [e["id"] for e in ranking["items"]] == [p_health, j_road, p_road, j_drain]
        places = ("city", "kecamatan", "sector", "target_agency")
        positions = {
            e["id"]: (*(e["position"][p] for p in places), e["forum_rank"])
            for e in ranking["items"]
        }
        # (city, kecamatan, sector, target agency, forum rank)
        assert positions == {
            p_health: (1, 1, 1, 1, 1),
            j_road: (2, 1, 1, 1, 1),
            p_road: (3, 2, 2, 2, 2),
            j_drain: (4, 2, 3, 3, 2),
        }
        first = ranking["items"][0]
        assert (first["kecamatan"], first["kelurahan"], first["sector"]) == (
            f.RAWALUMBU,
            f.PENGASINAN,
            "kesehatan",
        )
        assert first["score_total"] == 5.0 and first["status"] == "forwarded"

        def ids(**query):
            return [e["id"] for e in rpc.city_ranking(year=2027, **query)["items"]]

        assert ids(kecamatan=PONDOKGEDE) == [j_road, j_drain]
        assert ids(sector="pekerjaan_umum") == [j_road, p_road, j_drain]
        assert ids(target_agency="Dinas Kesehatan") == [p_health]
        assert ids(kelurahan=JATIMAKMUR, sector="kesehatan") == []
        assert ids(group_by="kecamatan") == [p_health, p_road, j_road, j_drain]
        assert ids(group_by="sector") == [p_health, j_road, p_road, j_drain]
        page = rpc.city_ranking(year=2027, limit=2, offset=1)
        assert [e["id"] for e in page["items"]] == [j_road, p_road] and page["total"] == 4
        past_the_end = rpc.city_ranking(year=2027, kecamatan=PONDOKGEDE, offset=5)
        assert past_the_end["items"] == [] and past_the_end["total"] == 2
        assert rpc.city_ranking(year=2028)["items"] == []

        with raises(ValidationError) as bad:
            rpc.city_ranking(kecamatan="32.75", group_by="rw", limit=0, status="submitted")
        assert set(bad.error.fields) == {"year", "kecamatan", "group_by", "limit", "status"}
        with raises(ValidationError) as bad:
            rpc.count_by_status(kelurahan="32.75.08", colour="red")
        assert set(bad.error.fields) == {"kelurahan", "colour"}

    # a decision changes the status the ranking shows, never the positions
    with city_of_two(f.camat(PONDOKGEDE)) as camat:
        camat.decide(proposal_id=j_drain, level="kecamatan", decision="rejected", reason="ganda")

    def j_drain_in_ranking():
        with city_of_two(f.bappeda()) as rpc:
            return rpc.city_ranking(year=2027, status="rejected")["items"]

    wait_until(lambda: j_drain_in_ranking(), 30, "the decision back at the city")
    (entry,) = j_drain_in_ranking()
    assert entry["id"] == j_drain and entry["position"]["city"] == 4
