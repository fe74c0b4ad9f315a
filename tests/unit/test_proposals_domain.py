"""Unit tests of the proposals domain: no broker, no database."""

import uuid

import pytest

from services.proposals.domain import (
    DEFAULT_CRITERIA,
    Forum,
    Proposal,
    make_forum_id,
    merge,
    weighted_total,
)
from services.proposals.schemas import EVENT_SCHEMAS, ForumView, ProposalView
from shared.actor import Actor
from shared.errors import Conflict, Forbidden, NotFound, ValidationError

KEL = "32.75.05.1002"
OTHER_KEL = "32.75.05.1001"
YEAR = 2027
FORUM = make_forum_id(KEL, YEAR)

RT_CHAIR = Actor("u-rt", "ketua_rt", KEL, rw=7, rt=3)
RW_CHAIR = Actor("u-rw", "ketua_rw", KEL, rw=7)
OPERATOR = Actor("u-op", "operator", KEL)
LURAH = Actor("u-lurah", "lurah", KEL)
WARGA = Actor("u-warga", "warga", KEL, rw=7, rt=3)
CAMAT = Actor("u-camat", "camat", "32.75.05")
OTHER_CAMAT = Actor("u-camat2", "camat", "32.75.01")
BAPPEDA = Actor("u-bappeda", "bappeda", "32.75")
CRITERIA = [
    {"code": "urgency", "name": "Urgensi", "weight": 3},
    {"code": "reach", "name": "Jangkauan", "weight": 1},
]


def meta(actor, time="2026-01-20T09:00:00+00:00"):
    return {"actor": actor.as_dict(), "time": time}


def submission(**overrides):
    data = {
        "kelurahan": KEL,
        "year": YEAR,
        "title": "Perbaikan saluran air",
        "problem": "Saluran tersumbat, banjir saat hujan",
        "idea": "Normalisasi dan penutup saluran",
        "sector": "pekerjaan_umum",
        "target_agency": "DBMSDA",
        "proposer": {"level": "rt", "rw": 7, "rt": 3},
        "location": {"rw": 7, "rt": 3, "address": "Gg. Melati"},
        "volume": 150,
        "unit": "m",
        "estimated_cost": 120_000_000,
    }
    data.update(overrides)
    return data


def submitted(actor=RT_CHAIR, **overrides):
    return Proposal.submit(str(uuid.uuid4()), actor, submission(**overrides), meta(actor))


def verified(actor=RT_CHAIR, **overrides):
    proposal = submitted(actor, **overrides)
    proposal.verify(OPERATOR, "lokasi dicek", meta(OPERATOR))
    return proposal


def forwarded():
    proposal = verified()
    proposal.score(OPERATOR, {"urgency": 5, "reach": 3}, CRITERIA, meta(OPERATOR))
    proposal.forward(OPERATOR, 1, FORUM, meta(OPERATOR))
    return proposal


def funded():
    proposal = forwarded()
    proposal.decide(CAMAT, "kecamatan", "accepted", meta=meta(CAMAT))
    proposal.decide(
        BAPPEDA, "city", "funded", funding_source="apbd", amount=100_000_000, meta=meta(BAPPEDA)
    )
    return proposal


def types(aggregate):
    return [event[0] for event in aggregate.pending]


def assert_events_match_contract(aggregate):
    for event in aggregate.pending:
        type_, data = event[0], event[1]
        errors = EVENT_SCHEMAS[type_]().validate(data)
        assert errors == {}, (type_, errors)


def replayed(aggregate):
    events = [(e[0], e[1], e[2] if len(e) > 2 else {}) for e in aggregate.pending]
    return type(aggregate).replay(aggregate.id, events)


# -- happy paths ----------------------------------------------------------------------


def test_full_happy_path_to_realised():
    proposal = funded()
    proposal.report_progress(OPERATOR, 40, "Galian selesai", meta(OPERATOR))
    assert proposal.status == "in_progress"
    proposal.report_progress(BAPPEDA, 100, "Serah terima", meta(BAPPEDA))

    assert proposal.status == "realised"
    assert types(proposal) == [
        "proposal.submitted",
        "proposal.verified",
        "proposal.scored",
        "proposal.forwarded",
        "proposal.decided",
        "proposal.decided",
        "proposal.progressed",
        "proposal.progressed",
        "proposal.realised",
    ]
    assert proposal.progress == 100
    assert [m["percent"] for m in proposal.milestones] == [40, 100]
    assert [(d["level"], d["decision"]) for d in proposal.decisions] == [
        ("kecamatan", "accepted"),
        ("city", "funded"),
    ]
    assert proposal.decisions[1]["amount"] == 100_000_000
    assert proposal.decisions[1]["actor"] == {"id": "u-bappeda", "role": "bappeda"}
    assert proposal.rank == 1 and proposal.score_total == 4.5
    assert len(proposal.history) == 9
    assert proposal.history[0]["actor"] == {"id": "u-rt", "role": "ketua_rt"}
    assert_events_match_contract(proposal)


def test_replay_rebuilds_the_same_state():
    proposal = funded()
    again = replayed(proposal)
    assert again.snapshot() == proposal.snapshot()


def test_snapshot_fits_the_view_schema():
    proposal = funded()
    view = proposal.snapshot()
    assert ProposalView().validate(view) == {}
    assert ProposalView().dump(view)["status"] == "funded"


def test_returned_then_revised_then_verified():
    proposal = submitted()
    proposal.return_for_revision(OPERATOR, "Alamat kurang jelas", meta(OPERATOR))
    assert proposal.status == "returned"

    new_location = {"rw": 7, "rt": 3, "address": "Gg. Melati No. 4"}
    proposal.revise(
        RT_CHAIR, {"location": new_location, "title": proposal.details["title"]}, meta(RT_CHAIR)
    )
    assert proposal.status == "submitted"
    revised = proposal.pending[-1]
    assert revised[0] == "proposal.revised"
    assert list(revised[1]["changes"]) == ["location"]  # unchanged title not recorded
    assert proposal.location["address"] == "Gg. Melati No. 4"

    proposal.verify(LURAH, "", meta(LURAH))
    assert proposal.status == "verified"
    assert proposal.reasons[0]["text"] == "Alamat kurang jelas"
    assert_events_match_contract(proposal)


def test_revision_that_changes_nothing_is_invalid():
    proposal = submitted()
    proposal.return_for_revision(OPERATOR, "Lengkapi foto", meta(OPERATOR))
    with pytest.raises(ValidationError):
        proposal.revise(RT_CHAIR, {"title": proposal.details["title"]}, meta(RT_CHAIR))
    with pytest.raises(ValidationError):
        proposal.revise(RT_CHAIR, {"proposer": {"level": "rw", "rw": 7}}, meta(RT_CHAIR))


def test_submission_fills_optional_fields():
    data = submitted().pending[0][1]
    assert data["photos"] == [] and data["documents"] == [] and data["catalogue_code"] is None
    assert data["location"]["latitude"] is None
    assert data["proposer"] == {"level": "rt", "unit": None, "rw": 7, "rt": 3}


def test_reject_with_reason_code():
    proposal = verified()
    proposal.reject(
        OPERATOR, {"code": "already_proposed", "text": "Sudah diusulkan 2025"}, meta(OPERATOR)
    )
    assert proposal.status == "rejected"
    assert proposal.reasons[-1]["code"] == "already_proposed"
    with pytest.raises(ValidationError):
        submitted().reject(OPERATOR, {"code": "other", "text": " "}, meta(OPERATOR))
    with pytest.raises(ValidationError):
        submitted().reject(OPERATOR, {"code": "bad_code", "text": "x"}, meta(OPERATOR))


def test_cancel_by_proposer_unit():
    proposal = submitted()
    proposal.cancel(RT_CHAIR, "Sudah dikerjakan swadaya", meta(RT_CHAIR))
    assert proposal.status == "cancelled"
    assert_events_match_contract(proposal)


# -- forbidden transitions: Conflict with a helpful message ---------------------------


def test_verify_a_rejected_proposal_says_why():
    proposal = submitted()
    proposal.reject(OPERATOR, {"code": "duplicate", "text": ""}, meta(OPERATOR))
    with pytest.raises(Conflict, match="proposal is rejected; only a submitted proposal can be"):
        proposal.verify(OPERATOR, "", meta(OPERATOR))


@pytest.mark.parametrize(
    "command",
    [
        lambda p: p.verify(OPERATOR, "", meta(OPERATOR)),
        lambda p: p.return_for_revision(OPERATOR, "x", meta(OPERATOR)),
        lambda p: p.reject(OPERATOR, {"code": "duplicate", "text": ""}, meta(OPERATOR)),
        lambda p: p.cancel(OPERATOR, "x", meta(OPERATOR)),
        lambda p: p.revise(RT_CHAIR, {"title": "Judul yang lain"}, meta(RT_CHAIR)),
        lambda p: p.score(OPERATOR, {"urgency": 1, "reach": 1}, CRITERIA, meta(OPERATOR)),
        lambda p: p.forward(OPERATOR, 2, FORUM, meta(OPERATOR)),
        lambda p: p.decide(CAMAT, "kecamatan", "accepted", meta=meta(CAMAT)),
        lambda p: p.report_progress(OPERATOR, 10, "Mulai", meta(OPERATOR)),
        lambda p: p.merge_into(OPERATOR, str(uuid.uuid4()), "dobel", meta(OPERATOR)),
    ],
)
@pytest.mark.parametrize("setup", ["cancelled", "realised"])
def test_final_statuses_refuse_every_command(setup, command):
    proposal = submitted()
    if setup == "cancelled":
        proposal.cancel(OPERATOR, "Ditarik", meta(OPERATOR))
    else:
        proposal = funded()
        proposal.report_progress(OPERATOR, 100, "Selesai", meta(OPERATOR))
    before = len(proposal.pending)
    with pytest.raises(Conflict, match=f"proposal is {setup}; only a"):
        command(proposal)
    assert len(proposal.pending) == before  # a refusal records nothing


def test_wrong_order_conflicts():
    with pytest.raises(Conflict, match="only a verified proposal can be scored"):
        submitted().score(OPERATOR, {"urgency": 1, "reach": 1}, CRITERIA, meta(OPERATOR))
    with pytest.raises(Conflict, match="has not been scored"):
        verified().forward(OPERATOR, 1, FORUM, meta(OPERATOR))
    with pytest.raises(Conflict, match="only a returned proposal can be revised"):
        submitted().revise(RT_CHAIR, {"title": "Judul yang lain"}, meta(RT_CHAIR))
    with pytest.raises(Conflict, match="only a forwarded proposal can be decided"):
        verified().decide(CAMAT, "kecamatan", "accepted", meta=meta(CAMAT))
    with pytest.raises(Conflict, match="only an accepted_kecamatan proposal"):
        forwarded().decide(BAPPEDA, "city", "accepted", meta=meta(BAPPEDA))
    with pytest.raises(Conflict, match="only a funded or in_progress proposal"):
        forwarded().report_progress(OPERATOR, 10, "Mulai", meta(OPERATOR))
    with pytest.raises(Conflict, match="only a submitted or returned or verified proposal"):
        forwarded().cancel(RT_CHAIR, "Ditarik", meta(RT_CHAIR))


def test_progress_cannot_go_down():
    proposal = funded()
    proposal.report_progress(OPERATOR, 60, "Pengecoran", meta(OPERATOR))
    proposal.report_progress(OPERATOR, 60, "Pengecoran tahap 2", meta(OPERATOR))
    with pytest.raises(Conflict, match="progress is already 60%"):
        proposal.report_progress(OPERATOR, 50, "Salah input", meta(OPERATOR))
    with pytest.raises(ValidationError):
        proposal.report_progress(OPERATOR, 101, "Lebih", meta(OPERATOR))


def test_city_decisions():
    proposal = forwarded()
    proposal.decide(CAMAT, "kecamatan", "accepted", meta=meta(CAMAT))
    proposal.decide(BAPPEDA, "city", "accepted", meta=meta(BAPPEDA))
    assert proposal.status == "accepted_city"
    with pytest.raises(Conflict):
        proposal.decide(BAPPEDA, "city", "accepted", meta=meta(BAPPEDA))
    proposal.decide(
        BAPPEDA, "city", "funded", funding_source="hibah_rw", amount=100_000_000, meta=meta(BAPPEDA)
    )
    assert proposal.status == "funded"
    assert_events_match_contract(proposal)


def test_deferred_and_rejected_need_a_reason():
    with pytest.raises(ValidationError):
        forwarded().decide(CAMAT, "kecamatan", "deferred", meta=meta(CAMAT))
    proposal = forwarded()
    proposal.decide(CAMAT, "kecamatan", "deferred", "Pagu habis", meta=meta(CAMAT))
    assert proposal.status == "deferred"
    assert proposal.reasons[-1]["text"] == "Pagu habis"


def test_funding_needs_source_and_whole_amount():
    def accepted():
        proposal = forwarded()
        proposal.decide(CAMAT, "kecamatan", "accepted", meta=meta(CAMAT))
        return proposal

    for source, amount in [
        (None, 10),
        ("apbd", None),
        ("apbd", 0),
        ("apbd", 1.5),
        ("apbd", True),
        ("bank", 10),
    ]:
        with pytest.raises(ValidationError):
            accepted().decide(
                BAPPEDA, "city", "funded", funding_source=source, amount=amount, meta=meta(BAPPEDA)
            )
    with pytest.raises(ValidationError):
        forwarded().decide(
            CAMAT, "kecamatan", "funded", funding_source="apbd", amount=10, meta=meta(CAMAT)
        )


# -- roles and scopes -----------------------------------------------------------------


def test_rt_chair_of_rw7_cannot_submit_for_rw8():
    with pytest.raises(Forbidden, match="does not cover RW 8"):
        submitted(proposer={"level": "rt", "rw": 8, "rt": 3}, location={"rw": 8, "rt": 3})


def test_rt_chair_cannot_submit_for_another_rt_or_level_or_kelurahan():
    with pytest.raises(Forbidden):
        submitted(proposer={"level": "rt", "rw": 7, "rt": 4})
    with pytest.raises(Forbidden, match="proposer level 'rt'"):
        submitted(proposer={"level": "rw", "rw": 7})
    with pytest.raises(Forbidden):
        submitted(kelurahan=OTHER_KEL)
    with pytest.raises(Forbidden, match="inside its own RW"):
        submitted(location={"rw": 8})


def test_rw_chair_and_staff_submit():
    assert submitted(RW_CHAIR, proposer={"level": "rw", "rw": 7}).status == "submitted"
    with pytest.raises(Forbidden):
        submitted(RW_CHAIR, proposer={"level": "rw", "rw": 8}, location={"rw": 8})
    pkk = submitted(OPERATOR, proposer={"level": "pkk", "unit": "PKK Kelurahan"})
    assert pkk.proposer["level"] == "pkk"
    with pytest.raises(Forbidden, match="does not cover kelurahan"):
        submitted(Actor("u-op2", "operator", OTHER_KEL))


def test_warga_cannot_submit_or_verify():
    with pytest.raises(Forbidden, match="role warga cannot submit"):
        submitted(WARGA)
    with pytest.raises(Forbidden, match="role warga cannot verify proposals"):
        submitted().verify(WARGA, "", meta(WARGA))


def test_staff_of_another_kelurahan_cannot_verify():
    with pytest.raises(Forbidden, match="does not cover kelurahan"):
        submitted().verify(Actor("u-x", "lurah", OTHER_KEL), "", meta(OPERATOR))


def test_chair_of_another_rt_cannot_cancel_or_revise():
    other_rt = Actor("u-rt2", "ketua_rt", KEL, rw=7, rt=4)
    proposal = submitted()
    with pytest.raises(Forbidden):
        proposal.cancel(other_rt, "x", meta(other_rt))
    proposal.return_for_revision(OPERATOR, "Lengkapi", meta(OPERATOR))
    with pytest.raises(Forbidden):
        proposal.revise(other_rt, {"title": "Judul yang lain"}, meta(other_rt))
    with pytest.raises(Forbidden, match="inside its own RW"):
        proposal.revise(RT_CHAIR, {"location": {"rw": 9}}, meta(RT_CHAIR))


def test_camat_of_another_kecamatan_cannot_decide():
    proposal = forwarded()
    with pytest.raises(Forbidden, match="does not cover kelurahan"):
        proposal.decide(OTHER_CAMAT, "kecamatan", "accepted", meta=meta(OTHER_CAMAT))
    with pytest.raises(Forbidden, match="only camat"):
        proposal.decide(LURAH, "kecamatan", "accepted", meta=meta(LURAH))
    with pytest.raises(Forbidden, match="only bappeda"):
        proposal.decide(CAMAT, "city", "accepted", meta=meta(CAMAT))


def test_progress_roles():
    proposal = funded()
    with pytest.raises(Forbidden):
        proposal.report_progress(CAMAT, 10, "Mulai", meta(CAMAT))
    with pytest.raises(Forbidden):
        proposal.report_progress(RT_CHAIR, 10, "Mulai", meta(RT_CHAIR))


def test_unsubmitted_proposal_is_not_found():
    with pytest.raises(NotFound):
        Proposal(str(uuid.uuid4())).verify(OPERATOR, "", meta(OPERATOR))


# -- merge ----------------------------------------------------------------------------


def test_merge_keeps_both_proposers():
    duplicate = submitted()
    survivor = verified(RW_CHAIR, proposer={"level": "rw", "rw": 7}, location={"rw": 7})
    merge(OPERATOR, duplicate, survivor, "Usulan sama", meta(OPERATOR))

    assert duplicate.status == "merged" and duplicate.merged_into == survivor.id
    assert survivor.status == "verified"
    assert survivor.proposer["level"] == "rw"
    assert survivor.co_proposers == [
        {"proposal_id": duplicate.id, "proposer": {"level": "rt", "unit": None, "rw": 7, "rt": 3}}
    ]
    assert_events_match_contract(duplicate)
    assert_events_match_contract(survivor)


def test_merge_carries_earlier_co_proposers():
    first, second, third = submitted(), submitted(), submitted()
    merge(OPERATOR, first, second, "Sama", meta(OPERATOR))
    merge(OPERATOR, second, third, "Sama", meta(OPERATOR))
    assert [c["proposal_id"] for c in third.co_proposers] == [second.id, first.id]


def test_merge_refusals_record_nothing():
    duplicate, survivor = submitted(), submitted()
    with pytest.raises(ValidationError):
        merge(OPERATOR, duplicate, duplicate, "Sama", meta(OPERATOR))
    with pytest.raises(Forbidden):
        merge(RT_CHAIR, duplicate, survivor, "Sama", meta(RT_CHAIR))
    other_year = submitted(year=2028)
    with pytest.raises(Conflict, match="different plan years"):
        merge(OPERATOR, duplicate, other_year, "Sama", meta(OPERATOR))
    survivor.cancel(OPERATOR, "Ditarik", meta(OPERATOR))
    with pytest.raises(Conflict, match="proposal is cancelled"):
        merge(OPERATOR, duplicate, survivor, "Sama", meta(OPERATOR))
    assert types(duplicate) == ["proposal.submitted"]


# -- scoring --------------------------------------------------------------------------


def test_weighted_total():
    criteria = [
        {"code": "a", "name": "A", "weight": 3},
        {"code": "b", "name": "B", "weight": 1.5},
        {"code": "c", "name": "C", "weight": 0.5},
    ]
    # (3*5 + 1.5*2 + 0.5*4) / 5 = 20 / 5 = 4.0
    assert weighted_total({"a": 5, "b": 2, "c": 4}, criteria) == 4.0
    # (1*1 + 1*2 + 1*2) / 3 = 1.6667
    equal = [{"code": k, "name": k, "weight": 1} for k in "abc"]
    assert weighted_total({"a": 1, "b": 2, "c": 2}, equal) == 1.667


def test_score_records_total_and_criteria():
    proposal = verified()
    proposal.score(OPERATOR, {"urgency": 4, "reach": 2}, CRITERIA, meta(OPERATOR))
    type_, data = proposal.pending[-1][:2]
    assert type_ == "proposal.scored"
    assert data["total"] == 3.5  # (3*4 + 1*2) / 4
    assert data["criteria"] == CRITERIA
    proposal.score(OPERATOR, {"urgency": 5, "reach": 5}, CRITERIA, meta(OPERATOR))
    assert proposal.score_total == 5.0  # rescoring replaces


def test_default_criteria_score():
    proposal = verified()
    scores = {c["code"]: 5 for c in DEFAULT_CRITERIA}
    proposal.score(OPERATOR, scores, list(DEFAULT_CRITERIA), meta(OPERATOR))
    assert proposal.score_total == 5.0


@pytest.mark.parametrize(
    "scores",
    [
        {"urgency": 5},  # missing criterion
        {"urgency": 5, "reach": 3, "beauty": 2},  # unknown criterion
        {"urgency": 6, "reach": 3},
        {"urgency": 0, "reach": 3},
        {"urgency": 4.5, "reach": 3},
        {"urgency": True, "reach": 3},
        [5, 3],
    ],
)
def test_bad_scores_are_invalid(scores):
    with pytest.raises(ValidationError):
        verified().score(OPERATOR, scores, CRITERIA, meta(OPERATOR))


@pytest.mark.parametrize(
    "criteria",
    [
        [],
        [{"code": "a", "name": "A", "weight": 0}],
        [{"code": "a", "name": "A", "weight": -1}],
        [{"code": "a", "name": "A", "weight": float("nan")}],
        [{"code": "a", "name": "A", "weight": 1}, {"code": "a", "name": "B", "weight": 1}],
        [{"code": f"c{i}", "name": "C", "weight": 1} for i in range(11)],
    ],
)
def test_bad_criteria_are_invalid(criteria):
    with pytest.raises(ValidationError):
        verified().score(OPERATOR, {"a": 3}, criteria, meta(OPERATOR))


def test_forward_checks_the_forum():
    proposal = verified()
    proposal.score(OPERATOR, {"urgency": 5, "reach": 3}, CRITERIA, meta(OPERATOR))
    with pytest.raises(ValidationError):
        proposal.forward(OPERATOR, 1, make_forum_id(OTHER_KEL, YEAR), meta(OPERATOR))
    with pytest.raises(ValidationError):
        proposal.forward(OPERATOR, 0, FORUM, meta(OPERATOR))


# -- forum ----------------------------------------------------------------------------


def scheduled_forum():
    data = {"date": "2026-01-22", "theme": "Musrenbang Kelurahan", "place": "Aula kelurahan"}
    return Forum.schedule(FORUM, OPERATOR, data, meta(OPERATOR))


HELD = {
    "held_on": "2026-01-22",
    "attendance": 87,
    "berita_acara": "files/ba-2027.pdf",
    "delegates": [{"delegate_id": "d-8f3a", "rw": 7, "role": "delegasi kecamatan"}],
}


def test_forum_happy_path():
    forum = scheduled_forum()
    forum.set_criteria(OPERATOR, None, meta(OPERATOR))
    forum.hold(LURAH, HELD, meta(LURAH))
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    forum.rank(
        OPERATOR,
        [{"proposal_id": a, "total": 4.5}, {"proposal_id": b, "total": 3.2}],
        meta(OPERATOR),
    )

    assert types(forum) == ["forum.scheduled", "forum.criteria_set", "forum.held", "forum.ranked"]
    assert forum.status == "ranked" and (forum.kelurahan, forum.year) == (KEL, YEAR)
    assert forum.criteria == list(DEFAULT_CRITERIA)
    assert forum.ranking[1] == {"rank": 2, "proposal_id": b, "total": 3.2}
    assert ForumView().validate(forum.snapshot()) == {}
    assert replayed(forum).snapshot() == forum.snapshot()
    assert_events_match_contract(forum)


def test_forum_wrong_order():
    forum = scheduled_forum()
    entry = [{"proposal_id": str(uuid.uuid4()), "total": 4.0}]
    with pytest.raises(Conflict, match="set the criteria"):
        forum.rank(OPERATOR, entry, meta(OPERATOR))
    forum.set_criteria(OPERATOR, CRITERIA, meta(OPERATOR))
    with pytest.raises(Conflict, match="only a held forum"):
        forum.rank(OPERATOR, entry, meta(OPERATOR))
    forum.hold(OPERATOR, HELD, meta(OPERATOR))
    with pytest.raises(Conflict, match="forum is held"):
        forum.hold(OPERATOR, HELD, meta(OPERATOR))
    forum.rank(OPERATOR, entry, meta(OPERATOR))
    with pytest.raises(Conflict, match="forum is ranked"):
        forum.rank(OPERATOR, entry, meta(OPERATOR))
    with pytest.raises(Conflict, match="forum is ranked"):
        forum.set_criteria(OPERATOR, CRITERIA, meta(OPERATOR))


def test_forum_roles_and_input():
    with pytest.raises(Forbidden):
        Forum.schedule(FORUM, RW_CHAIR, {"date": "2026-01-22", "theme": "x", "place": "y"}, {})
    with pytest.raises(Forbidden):
        Forum.schedule(
            make_forum_id(OTHER_KEL, YEAR),
            OPERATOR,
            {"date": "2026-01-22", "theme": "x", "place": "y"},
            {},
        )
    with pytest.raises(ValidationError):
        Forum.schedule("not-a-forum", OPERATOR, {}, {})
    forum = scheduled_forum()
    with pytest.raises(ValidationError):
        forum.hold(OPERATOR, dict(HELD, attendance=-1), meta(OPERATOR))
    with pytest.raises(ValidationError):
        forum.set_criteria(OPERATOR, [{"code": "a", "name": "A", "weight": 0}], meta(OPERATOR))
    dup = str(uuid.uuid4())
    forum.set_criteria(OPERATOR, CRITERIA, meta(OPERATOR))
    forum.hold(OPERATOR, HELD, meta(OPERATOR))
    with pytest.raises(ValidationError):
        forum.rank(
            OPERATOR,
            [{"proposal_id": dup, "total": 4}, {"proposal_id": dup, "total": 3}],
            meta(OPERATOR),
        )
    with pytest.raises(Forbidden):
        forum.rank(WARGA, [{"proposal_id": dup, "total": 4}], meta(WARGA))
