"""The real proposals service and its relay: from submission to realisation, every person
concerned hears each step once, a merged duplicate's proposer included."""

import uuid
from datetime import UTC, datetime

from services.proposals.service import CITY_SOURCE, ProposalsService
from tests import factories as f
from tests.notify.conftest import wait_until

FORUM = "32.75.05.1002-2027"
CRITERIA = ("urgency", "reach", "cost_effectiveness", "readiness", "rpjmd_alignment")
PROPOSER, CO_PROPOSER = "u-rt-7-3", "u-rt-8-1"
CHAIR_7, CHAIR_8, CHAIR_9 = "u-rw-7", "u-rw-8", "u-rw-9"
EVERYONE = sorted([PROPOSER, CO_PROPOSER, CHAIR_7, CHAIR_8])


def register_everyone(node):
    with node.rpc(f.operator()) as notify:
        for user_id, role, rw, rt in (
            (PROPOSER, "ketua_rt", 7, 3),
            (CO_PROPOSER, "ketua_rt", 8, 1),
            (CHAIR_7, "ketua_rw", 7, None),
            (CHAIR_8, "ketua_rw", 8, None),
            (CHAIR_9, "ketua_rw", 9, None),  # no proposal of RW 9: hears of the forum only
        ):
            notify.register_contact(user_id=user_id, role=role, rw=rw, rt=rt)


def users(node, event_type):
    return sorted(r["user_id"] for r in node.notifications(event_type=event_type))


def bodies(node, event_type):
    return {
        r["user_id"]: r["content"]["in_app"]["body"]
        for r in node.notifications(event_type=event_type)
    }


def city_decision(proposal_id, level, decision, role, **extra):
    """A decision as the city's log holds it and the replication downlink delivers it."""
    return {
        "id": str(uuid.uuid4()),
        "source": CITY_SOURCE,
        "type": "proposal.decided",
        "time": datetime.now(UTC).isoformat(),
        "actorid": f"u-{role}",
        "actorrole": role,
        "data": {
            "proposal_id": proposal_id,
            "kelurahan": f.PENGASINAN,
            "level": level,
            "decision": decision,
            "reason": None,
            "funding_source": None,
            "amount": None,
            **extra,
        },
    }


def test_a_proposal_from_submission_to_realisation_reaches_everyone_concerned(node):
    proposals = node.service(ProposalsService)
    node.start_notify()
    register_everyone(node)

    with proposals(f.rt_chair(7, 3)) as rt:
        survivor = rt.submit(**f.proposal(rw=7, rt=3))["id"]
    with proposals(f.rt_chair(8, 1)) as rt:
        duplicate = rt.submit(**f.proposal(rw=8, rt=1, title="Saluran air RW 08 tersumbat"))["id"]
    wait_until(lambda: len(node.notifications()) == 2, what="the two acknowledgements")
    assert users(node, "proposal.submitted") == [PROPOSER, CO_PROPOSER]  # no chair: not news yet
    ack = bodies(node, "proposal.submitted")[PROPOSER]
    assert ack.startswith('Usulan "Perbaikan saluran air RT 03" telah diterima kelurahan (nomor ')
    assert survivor[:8] in ack

    with proposals(f.operator()) as op:
        op.merge(proposal_id=duplicate, survivor_id=survivor, reason="Lokasi saluran sama")
        op.schedule_forum(year=2027, date="2027-01-19", theme="Musrenbang 2027", place="Aula")
        op.set_criteria(forum_id=FORUM)
        op.verify(proposal_id=survivor, note="lokasi dicek")
        op.score(proposal_id=survivor, scores=dict.fromkeys(CRITERIA, 4))
        op.record_forum(
            forum_id=FORUM,
            held_on="2027-01-19",
            attendance=87,
            berita_acara="files/ba-musrenbang-2027.pdf",
            delegates=[],
        )
        op.rank_forum(forum_id=FORUM)
        op.forward(proposal_id=survivor, rank=1, forum_id=FORUM)
    with proposals(f.system()) as downlink:
        downlink.receive_from_city(
            event=city_decision(
                survivor, "kecamatan", "accepted", "camat", reason="Prioritas drainase kecamatan"
            )
        )
        downlink.receive_from_city(
            event=city_decision(
                survivor, "city", "funded", "bappeda", funding_source="apbd", amount=115_000_000
            )
        )
    with proposals(f.operator()) as op:
        op.report_progress(proposal_id=survivor, percent=40, milestone="Galian saluran 60 m")
        op.report_progress(proposal_id=survivor, percent=100, milestone="Serah terima")

    wait_until(lambda: node.caught_up("proposals"), what="notify to apply every event")
    assert users(node, "proposal.merged") == [CO_PROPOSER, CHAIR_8]
    assert (
        'digabung ke usulan "Perbaikan saluran air RT 03"'
        in bodies(node, "proposal.merged")[CO_PROPOSER]
    )
    assert users(node, "proposal.absorbed") == [PROPOSER, CHAIR_7]
    assert '"Saluran air RW 08 tersumbat" digabung' in bodies(node, "proposal.absorbed")[PROPOSER]
    # from the merge on, the duplicate's proposer and RW chair hear of the survivor too
    for event_type in ("proposal.verified", "proposal.forwarded", "proposal.realised"):
        assert users(node, event_type) == EVERYONE, event_type
    decisions = node.notifications(event_type="proposal.decided")
    assert len(decisions) == 2 * len(EVERYONE)
    texts = {r["content"]["in_app"]["body"] for r in decisions}
    assert texts == {
        'Keputusan Musrenbang Kecamatan atas usulan "Perbaikan saluran air RT 03": diterima. '
        "Alasan: Prioritas drainase kecamatan",
        'Keputusan Musrenbang Kota atas usulan "Perbaikan saluran air RT 03": didanai dari '
        "APBD sebesar Rp 115.000.000. ",
    }
    [progress] = set(bodies(node, "proposal.progressed").values())  # 100 % is the realisation
    assert progress == 'Realisasi usulan "Perbaikan saluran air RT 03": 40% (Galian saluran 60 m).'
    assert users(node, "proposal.progressed") == EVERYONE
    told_chair_9 = {r["event_type"] for r in node.notifications(user_id=CHAIR_9)}
    assert told_chair_9 == {"forum.scheduled", "forum.held", "forum.ranked"}  # every chair's


def test_a_decision_redelivered_by_the_downlink_is_told_once(node):
    proposals = node.service(ProposalsService)
    node.start_notify()
    register_everyone(node)
    with proposals(f.rt_chair(7, 3)) as rt:
        pid = rt.submit(**f.proposal(rw=7, rt=3))["id"]
    with proposals(f.operator()) as op:
        op.schedule_forum(year=2027, date="2027-01-19", theme="Musrenbang 2027", place="Aula")
        op.set_criteria(forum_id=FORUM)
        op.verify(proposal_id=pid, note="")
        op.score(proposal_id=pid, scores=dict.fromkeys(CRITERIA, 3))
        op.forward(proposal_id=pid, rank=4, forum_id=FORUM)
    rejected = city_decision(
        pid, "kecamatan", "rejected", "camat", reason="Sudah masuk program dinas 2026"
    )
    with proposals(f.system()) as downlink:
        downlink.receive_from_city(event=rejected)
        downlink.receive_from_city(event=rejected)  # the downlink delivers at least once
    wait_until(lambda: node.caught_up("proposals"), what="notify to apply every event")
    told = node.notifications(event_type="proposal.decided")
    assert sorted(r["user_id"] for r in told) == [PROPOSER, CHAIR_7]
    assert all(
        "ditolak. Alasan: Sudah masuk program dinas 2026" in r["content"]["in_app"]["body"]
        for r in told
    )
