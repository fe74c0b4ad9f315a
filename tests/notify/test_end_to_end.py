"""The real proposals service, its relay and notify: a proposer hears of the rejection."""

from nameko.standalone.rpc import ServiceRpcProxy

from services.proposals.service import ProposalsService
from shared.auth import issue_token
from shared.relay import Relay
from tests import factories as f
from tests.conftest import AUTH_SECRET
from tests.notify.conftest import new_schema, wait_until


def test_a_rejected_proposal_reaches_its_proposer_through_the_real_services(node):
    schema, proposals_url = new_schema(node.server_database_url)
    node.schemas.append(schema)
    node.monkeypatch.setenv("DATABASE_URL", proposals_url)
    node.container_factory(ProposalsService, node.config).start()
    node.start_notify()
    with node.rpc(f.operator()) as notify:
        notify.register_contact(
            user_id="u-rt-7-3", role="ketua_rt", rw=7, rt=3, phone="081234500077", channels=["sms"]
        )

    def proposals(actor):
        context = {"authorization": issue_token(AUTH_SECRET, actor)}
        return ServiceRpcProxy("proposals", node.config, context_data=context)

    with proposals(f.rt_chair()) as rpc:
        proposal = rpc.submit(**f.proposal())
    with proposals(f.operator()) as rpc:
        rpc.reject(proposal_id=proposal["id"], code="duplicate", text="Sama dengan usulan RT 02")

    relay = Relay(
        proposals_url,
        node.config["AMQP_URI"],
        "proposals",
        "/kelurahan/32.75.05.1002/proposals",
    )
    try:
        assert relay.run_once() == 2
    finally:
        relay.close()

    receipts = wait_until(
        lambda: len(node.sms.receipts()) == 2 and node.sms.receipts(), what="the SMS"
    )
    acknowledged, receipt = sorted(receipts, key=lambda r: "ditolak" in r["body"]["text"])
    assert receipt["body"]["to"] == acknowledged["body"]["to"] == "+6281234500077"
    assert "telah diterima kelurahan" in acknowledged["body"]["text"]
    assert 'Usulan "Perbaikan saluran air RT 03" ditolak' in receipt["body"]["text"]
    assert "Sama dengan usulan RT 02" in receipt["body"]["text"]
