"""The proposal life cycle over RPC, against the real RabbitMQ and PostgreSQL."""

import uuid

from shared.errors import Conflict, Forbidden, NotFound, Unauthenticated, ValidationError
from tests import factories as f
from tests.proposals.conftest import raises

FORUM = "32.75.05.1002-2027"


def submit(proposals, actor=None, **overrides):
    actor = actor or f.rt_chair()
    with proposals(actor) as rpc:
        return rpc.submit(**f.proposal(**overrides))


def test_whole_life_from_rt_to_realisation(proposals):
    view = submit(proposals)
    pid = view["id"]
    assert view["status"] == "submitted" and view["kelurahan"] == f.PENGASINAN

    with proposals(f.operator()) as op:
        op.schedule_forum(year=2027, date="2027-01-19", theme="Musrenbang 2027", place="Aula")
        op.set_criteria(forum_id=FORUM)
        assert op.verify(proposal_id=pid, note="lokasi dicek")["status"] == "verified"
        scored = op.score(
            proposal_id=pid,
            scores={
                "urgency": 5,
                "reach": 4,
                "cost_effectiveness": 3,
                "readiness": 4,
                "rpjmd_alignment": 5,
            },
        )
        assert scored["score_total"] == 4.2
        op.record_forum(
            forum_id=FORUM,
            held_on="2027-01-19",
            attendance=87,
            berita_acara="files/ba-musrenbang-2027.pdf",
            delegates=[{"delegate_id": "d-1", "rw": 7, "role": "ketua RW"}],
        )
        forum = op.rank_forum(forum_id=FORUM)
        assert [e["proposal_id"] for e in forum["ranking"]] == [pid]
        assert forum["ranking"][0]["title"] == view["title"]
        assert op.forward(proposal_id=pid, rank=1, forum_id=FORUM)["status"] == "forwarded"

    with proposals(f.camat()) as camat:
        decided = camat.decide(proposal_id=pid, level="kecamatan", decision="accepted")
        assert decided["status"] == "accepted_kecamatan"
    with proposals(f.bappeda()) as city:
        funded = city.decide(
            proposal_id=pid,
            level="city",
            decision="funded",
            funding_source="apbd",
            amount=115_000_000,
        )
        assert funded["status"] == "funded"
    with proposals(f.operator()) as op:
        op.report_progress(proposal_id=pid, percent=40, milestone="galian selesai")
        done = op.report_progress(proposal_id=pid, percent=100, milestone="serah terima")

    assert done["status"] == "realised"
    assert [m["percent"] for m in done["milestones"]] == [40, 100]
    history = [(h["type"], h["actor"]["role"]) for h in done["history"]]
    assert history[0] == ("proposal.submitted", "ketua_rt")
    assert ("proposal.decided", "camat") in history and ("proposal.decided", "bappeda") in history
    assert history[-1][0] == "proposal.realised"


def test_returned_proposal_is_revised_and_verified(proposals):
    pid = submit(proposals)["id"]
    with proposals(f.operator()) as op:
        returned = op.return_for_revision(proposal_id=pid, reason="alamat kurang jelas")
    assert returned["status"] == "returned"
    with proposals(f.rt_chair()) as rt:
        revised = rt.revise(proposal_id=pid, location={"rw": 7, "rt": 3, "address": "Jl. Melati 2"})
    assert revised["status"] == "submitted"
    assert revised["location"]["address"] == "Jl. Melati 2"
    with proposals(f.operator()) as op:
        assert op.verify(proposal_id=pid)["status"] == "verified"
    assert any(r["text"] == "alamat kurang jelas" for r in revised["reasons"])


def test_transition_the_state_does_not_allow_is_a_conflict_that_says_why(proposals):
    pid = submit(proposals)["id"]
    with proposals(f.operator()) as op:
        op.reject(proposal_id=pid, code="duplicate", text="sama dengan usulan RT 04")
        with raises(Conflict) as refused:
            op.verify(proposal_id=pid)
    assert "rejected" in refused.error.message


def test_roles_and_scopes_are_enforced(proposals):
    with raises(Forbidden):
        submit(
            proposals,
            actor=f.rt_chair(rw=7, rt=3),
            rw=8,
            proposer={"level": "rt", "rw": 8, "rt": 3},
        )
    pid = submit(proposals)["id"]
    with proposals(f.rt_chair()) as rt, raises(Forbidden):
        rt.verify(proposal_id=pid)
    with proposals(f.camat("32.75.01")) as other_camat, raises(Forbidden):
        other_camat.decide(proposal_id=pid, level="kecamatan", decision="accepted")
    with proposals() as anonymous, raises(Unauthenticated):
        anonymous.get_proposal(proposal_id=pid)


def test_merge_keeps_both_proposers(proposals):
    first = submit(proposals)["id"]
    second = submit(proposals, actor=f.rt_chair(rt=4), proposer={"level": "rt", "rw": 7, "rt": 4})[
        "id"
    ]
    with proposals(f.operator()) as op:
        survivor = op.merge(proposal_id=second, survivor_id=first, reason="lokasi sama")
        merged = op.get_proposal(proposal_id=second)
    assert merged["status"] == "merged" and merged["merged_into"] == first
    assert [c["proposal_id"] for c in survivor["co_proposers"]] == [second]
    assert survivor["co_proposers"][0]["proposer"]["rt"] == 4


def test_retried_command_takes_effect_once(proposals):
    command_id = str(uuid.uuid4())
    first = submit(proposals, command_id=command_id)
    again = submit(proposals, command_id=command_id)
    assert again["id"] == first["id"]
    with proposals(f.operator()) as op:
        assert op.count_by_status()["total"] == 1
        verify_id = str(uuid.uuid4())
        op.verify(proposal_id=first["id"], command_id=verify_id)
        assert op.verify(proposal_id=first["id"], command_id=verify_id)["status"] == "verified"
        assert op.get_proposal(proposal_id=first["id"])["version"] == 2


def test_lists_filter_and_page(proposals):
    for rt in (1, 2, 3):
        submit(proposals, actor=f.rw_chair(7), proposer={"level": "rw", "rw": 7}, rt=rt)
    submit(
        proposals, actor=f.rw_chair(8), proposer={"level": "rw", "rw": 8}, rw=8, sector="kesehatan"
    )
    with proposals(f.lurah()) as rpc:
        page = rpc.list_proposals(rw=7, per_page=2)
        assert page["total"] == 3 and len(page["items"]) == 2
        assert len(rpc.list_proposals(rw=7, per_page=2, page=2)["items"]) == 1
        assert rpc.list_proposals(sector="kesehatan")["total"] == 1
        assert rpc.list_proposals(status="submitted", year=2027)["total"] == 4
        counts = rpc.count_by_status(year=2027)
        assert counts["submitted"] == 4 and counts["total"] == 4
        with raises(ValidationError) as bad:
            rpc.list_proposals(per_page=1000)
        assert "per_page" in bad.error.fields
        with raises(NotFound):
            rpc.get_proposal(proposal_id=str(uuid.uuid4()))
