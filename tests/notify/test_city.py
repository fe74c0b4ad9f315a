"""Notify on the city node: the camat hears how many of a kelurahan's proposals await the
kecamatan Musrenbang, bappeda how many a kecamatan accepted await the city; the
decisions flow down and the proposer and RW chair hear them with the reason.

Two brokers (vhosts), the real replication links in threads, the real proposals
service on both nodes, notify on both, notify's city ingest in a thread."""

import threading
import time
from contextlib import contextmanager

import pytest
from nameko.standalone.rpc import ServiceRpcProxy

from services.notify import awaiting
from services.notify.service import NotifyService
from services.proposals.service import MIGRATIONS, ProposalsService
from shared import config as configmod
from shared.auth import issue_token
from shared.relay import Relay
from tests import factories as f
from tests.city import city_node
from tests.conftest import AUTH_SECRET
from tests.notify.conftest import new_schema, query, wait_until

FORUM = "32.75.05.1002-2027"
CRITERIA = ("urgency", "reach", "cost_effectiveness", "readiness", "rpjmd_alignment")
CAMAT, OTHER_CAMAT, BAPPEDA = f.camat(), f.actor("camat", "u-camat-08", "32.75.08"), f.bappeda()


class City:
    """The city node's proposals and notify, notify's ingest, and the city's local relay."""

    def __init__(self, node, city_env):
        self.node, self.env = node, city_env
        self.config = {"AMQP_URI": city_env["AMQP_URI"]}
        schema, self.notify_url = new_schema(node.server_database_url)
        node.schemas.append(schema)
        self.stop = threading.Event()
        self.threads = []

    def start(self):
        env = {**self.env, "NOTIFY_CLOCK": "system", "NOTIFY_DIGEST_SECONDS": "2"}
        for key, value in env.items():
            self.node.monkeypatch.setenv(key, value)
        self.node.container_factory(ProposalsService, self.config).start()
        self.node.monkeypatch.setenv("DATABASE_URL", self.notify_url)
        self.notify = self.node.container_factory(NotifyService, self.config)
        self.notify.start()  # migrates notify's city database
        notify_cfg = configmod.load("notify", {**env, "DATABASE_URL": self.notify_url})
        local_relay = Relay(
            self.env["DATABASE_URL"], self.env["AMQP_URI"], "proposals", "/city/32.75/proposals"
        )
        for target, args in ((awaiting.run, (notify_cfg,)), (local_relay.run_forever, ())):
            thread = threading.Thread(target=target, args=(*args, self.stop), daemon=True)
            thread.start()
            self.threads.append(thread)
        for key, value in {**self.node.env, **self.node.notify_env}.items():
            self.node.monkeypatch.setenv(key, value)  # the kelurahan's environment again

    @contextmanager
    def rpc(self, service, actor):
        context = {"authorization": issue_token(AUTH_SECRET, actor)}
        with ServiceRpcProxy(service, self.config, context_data=context) as proxy:
            yield proxy

    def notifications(self, user_id):
        """What the city's notify created for ``user_id``."""
        return query(
            self.notify_url,
            "SELECT * FROM notifications WHERE user_id = %s ORDER BY created_at",
            (user_id,),
        )

    def close(self):
        self.stop.set()
        for thread in self.threads:
            thread.join(15)


@pytest.fixture
def nodes(node, service_env):
    """Pengasinan (proposals, notify) and the city (proposals, notify), linked."""
    proposals = node.service(ProposalsService)
    node.start_notify()
    kelurahan_env = {**service_env, "DATABASE_URL": proposals.database_url}
    schema, city_url = new_schema(node.server_database_url)
    node.schemas.append(schema)
    with city_node("proposals", kelurahan_env, city_url, MIGRATIONS) as (_, city_env):
        city = City(node, city_env)
        city.start()
        try:
            yield proposals, city
        finally:
            city.close()


def forward(proposals, count):
    """``count`` proposals of RW 7 submitted, verified, scored and forwarded."""
    ids = []
    with proposals(f.rt_chair(7, 3)) as rt:
        for n in range(count):
            ids.append(
                rt.submit(**f.proposal(title=f"Perbaikan saluran RT 03 bagian {n + 1}"))["id"]
            )
    with proposals(f.operator()) as op:
        op.schedule_forum(year=2027, date="2027-01-19", theme="Musrenbang 2027", place="Aula")
        op.set_criteria(forum_id=FORUM)
        for rank, pid in enumerate(ids, 1):
            op.verify(proposal_id=pid, note="")
            op.score(proposal_id=pid, scores=dict.fromkeys(CRITERIA, 4))
            op.forward(proposal_id=pid, rank=rank, forum_id=FORUM)
    return ids


def test_camat_and_bappeda_hear_what_awaits_them_and_the_proposer_hears_the_decisions(node, nodes):
    proposals, city = nodes
    for actor in (CAMAT, OTHER_CAMAT, BAPPEDA):
        with city.rpc("notify", actor) as notify:
            contact = notify.register_contact()  # role and place from the token
        assert contact["kelurahan"] == actor.kelurahan
    with node.rpc(f.operator()) as notify:
        notify.register_contact(user_id="u-rt-7-3", role="ketua_rt", rw=7, rt=3)
        notify.register_contact(user_id="u-rw-7", role="ketua_rw", rw=7)

    ids = forward(proposals, 3)
    [told] = wait_until(lambda: city.notifications(CAMAT.user_id), 60, "the camat's notice")
    assert told["event_type"] == "city.awaiting_kecamatan"
    assert told["content"]["in_app"]["body"] == (
        "3 usulan baru dari Kelurahan Pengasinan diteruskan ke Musrenbang Kecamatan Rawalumbu "
        "RKPD 2027; 3 usulan kelurahan ini menunggu keputusan kecamatan."
    )
    assert city.notifications(OTHER_CAMAT.user_id) == []  # Pondok Gede's camat: not his
    assert city.notifications(BAPPEDA.user_id) == []  # nothing accepted yet

    with city.rpc("proposals", CAMAT) as camat:
        for pid in ids[:2]:
            camat.decide(proposal_id=pid, level="kecamatan", decision="accepted")
        camat.decide(
            proposal_id=ids[2],
            level="kecamatan",
            decision="rejected",
            reason="Digabung dengan program drainase kecamatan",
        )
    [heard] = wait_until(lambda: city.notifications(BAPPEDA.user_id), 60, "bappeda's notice")
    assert heard["content"]["in_app"]["body"] == (
        "2 usulan dari Kecamatan Rawalumbu diterima Musrenbang Kecamatan RKPD 2027; "
        "2 usulan kecamatan ini menunggu keputusan Musrenbang Kota."
    )

    # down at the kelurahan: the proposer and the RW chair hear each decision with its reason
    def decisions():
        return node.notifications(event_type="proposal.decided")

    wait_until(lambda: len(decisions()) == 6, 60, "the decisions at the kelurahan")
    rejected = [r for r in decisions() if "ditolak" in r["content"]["in_app"]["body"]]
    assert sorted(r["user_id"] for r in rejected) == ["u-rt-7-3", "u-rw-7"]
    assert all(
        r["content"]["in_app"]["body"].endswith(
            'Keputusan Musrenbang Kecamatan atas usulan "Perbaikan saluran RT 03 bagian 3": '
            "ditolak. Alasan: Digabung dengan program drainase kecamatan"
        )
        for r in rejected
    )

    # the decisions came to notify on the city twice (the city's log, and back up from the
    # kelurahan) and the digests ran every second since: still one notice each
    wait_until(lambda: node.caught_up("proposals"), 30, "the kelurahan's notify")
    time.sleep(3)
    assert len(city.notifications(CAMAT.user_id)) == 1
    assert len(city.notifications(BAPPEDA.user_id)) == 1
