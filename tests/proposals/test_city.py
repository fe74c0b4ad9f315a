"""The city node: every kelurahan's proposals replicated up, the camat's decision flowing
down to the kelurahan that owns the proposal. Two brokers (vhosts), two databases, the
real replication links in threads."""

from contextlib import contextmanager

import pytest
from nameko.standalone.rpc import ServiceRpcProxy

from services.proposals.service import MIGRATIONS, ProposalsService
from shared.auth import issue_token
from tests import factories as f
from tests.city import city_node
from tests.conftest import AUTH_SECRET
from tests.platform.test_replication import schema_url, wait_until  # noqa: F401  (a fixture)

FORUM = "32.75.05.1002-2027"


@pytest.fixture
def city(container_factory, service_env, schema_url, monkeypatch):  # noqa: F811
    """A client factory for the city node's proposals service, while both nodes replicate."""
    with city_node("proposals", service_env, schema_url(), MIGRATIONS) as (_, city_env):
        for key, value in city_env.items():
            monkeypatch.setenv(key, value)
        container_factory(ProposalsService, {"AMQP_URI": city_env["AMQP_URI"]}).start()
        for key, value in service_env.items():  # the kelurahan's environment again
            monkeypatch.setenv(key, value)

        @contextmanager
        def client(actor):
            context = {"authorization": issue_token(AUTH_SECRET, actor)}
            config = {"AMQP_URI": city_env["AMQP_URI"]}
            with ServiceRpcProxy("proposals", config, context_data=context) as proxy:
                yield proxy

        yield client


def forwarded(proposals):
    """A proposal taken through the kelurahan forum and forwarded to the kecamatan."""
    with proposals(f.rt_chair()) as rt:
        pid = rt.submit(**f.proposal())["id"]
    with proposals(f.operator()) as op:
        op.schedule_forum(year=2027, date="2027-01-19", theme="Musrenbang 2027", place="Aula")
        op.set_criteria(forum_id=FORUM)
        op.verify(proposal_id=pid, note="lokasi dicek")
        criteria = ("urgency", "reach", "cost_effectiveness", "readiness", "rpjmd_alignment")
        op.score(proposal_id=pid, scores=dict.fromkeys(criteria, 4))
        op.record_forum(
            forum_id=FORUM,
            held_on="2027-01-19",
            attendance=87,
            berita_acara="files/ba-musrenbang-2027.pdf",
            delegates=[{"delegate_id": "d-1", "rw": 7, "role": "ketua RW"}],
        )
        op.rank_forum(forum_id=FORUM)
        op.forward(proposal_id=pid, rank=1, forum_id=FORUM)
    return pid


def status_at(client, actor, pid):
    with client(actor) as rpc:
        items = rpc.list_proposals(kecamatan=f.RAWALUMBU)["items"]
    return next((p["status"] for p in items if p["id"] == pid), None)


def test_a_camats_decision_at_the_city_reaches_the_kelurahan_and_comes_back(proposals, city):
    pid = forwarded(proposals)
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
