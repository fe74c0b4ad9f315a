"""Unit tests of the proposals schemas: what bad input they refuse, and how."""

import copy
import json
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.proposals.domain import Proposal
from services.proposals.schemas import (
    EVENT_SCHEMAS,
    DecideProposal,
    ListProposals,
    MergeProposal,
    RankForum,
    RecordForum,
    RejectProposal,
    ReviseProposal,
    ScheduleForum,
    ScoreProposal,
    SetCriteria,
    StatusCounts,
    SubmitProposal,
    Text,
    load,
    revision_changes,
)
from shared.actor import Actor
from shared.errors import ValidationError

PID = str(uuid.uuid4())
FORUM = "32.75.05.1002-2027"
GOOD = {
    "year": 2027,
    "title": "Perbaikan jalan lingkungan",
    "problem": "Jalan rusak dan berlubang\nsejak 2024",
    "idea": "Betonisasi jalan",
    "sector": "pekerjaan_umum",
    "target_agency": "DBMSDA",
    "proposer": {"level": "rt", "rw": 7, "rt": 3},
    "location": {"rw": 7, "rt": 3, "address": "Jl. Melati", "latitude": -6.3, "longitude": 106.95},
    "volume": 120.5,
    "unit": "m2",
    "estimated_cost": 85_000_000,
    "photos": ["files/abc.jpg"],
}


def good(**overrides):
    payload = copy.deepcopy(GOOD)
    payload.update(overrides)
    return payload


def errors_of(schema_cls, payload):
    with pytest.raises(ValidationError) as caught:
        load(schema_cls, payload)
    json.loads(caught.value.message)  # the message is always JSON
    return caught.value.fields


def test_good_submission_loads_json_native():
    loaded = load(SubmitProposal, good())
    assert loaded["estimated_cost"] == 85_000_000
    assert loaded["documents"] == [] and loaded["catalogue_code"] is None
    assert loaded["proposer"] == {"level": "rt", "unit": None, "rw": 7, "rt": 3}
    json.dumps(loaded, allow_nan=False)


def test_loaded_submission_feeds_the_domain_and_the_event_contract():
    loaded = load(SubmitProposal, good(command_id=str(uuid.uuid4())))
    actor = Actor("u-rt", "ketua_rt", "32.75.05.1002", rw=7, rt=3)
    proposal = Proposal.submit(PID, actor, {**loaded, "kelurahan": "32.75.05.1002"}, {})
    type_, data = proposal.pending[0][:2]
    assert "command_id" not in data
    assert load(EVENT_SCHEMAS[type_], data) == data


def test_text_is_stripped_and_crlf_becomes_lf():
    loaded = load(SubmitProposal, good(title="  Jalan rusak RT 3  ", problem="a\r\nb\tc"))
    assert loaded["title"] == "Jalan rusak RT 3"
    assert loaded["problem"] == "a\nb\tc"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("estimated_cost", -1),
        ("estimated_cost", 1.0),
        ("estimated_cost", 85_000_000.5),
        ("estimated_cost", True),
        ("estimated_cost", "85000000"),
        ("estimated_cost", 10**13 + 1),
        ("year", 2019),
        ("year", False),
        ("volume", 0),
        ("volume", float("nan")),
        ("volume", float("inf")),
        ("volume", "12"),
        ("title", "Jal"),
        ("title", "x" * 201),
        ("title", "Jalan\nrusak"),
        ("problem", "x" * 4001),
        ("problem", "  \n "),
        ("problem", "rusak\x00parah"),
        ("problem", "rusak\x1bparah"),
        ("problem", "rusak\x85parah"),
        ("problem", "rusak\rparah"),
        ("problem", "rusak\ud800"),
        ("problem", 42),
        ("sector", "perumahan_mewah"),
        ("photos", ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]),
        ("photos", ["../etc/passwd"]),
        ("photos", ["files/" + "x" * 300]),
        ("photos", "files/a.jpg"),
        ("documents", [f"files/{i}.pdf" for i in range(11)]),
        ("catalogue_code", "1.03 jalan"),
        ("proposer", {"level": "rt", "rw": 7}),
        ("proposer", {"level": "rw"}),
        ("proposer", {"level": "bupati", "rw": 7}),
        ("proposer", {"level": "rt", "rw": 7, "rt": 3, "nik": "3275"}),
        ("proposer", "rt"),
        ("location", {"rw": 0}),
        ("location", {"rw": 100}),
        ("location", {"rw": 7, "latitude": -6.3}),
        ("location", {"rw": 7, "latitude": -7.0, "longitude": 106.95}),
        ("location", {"rw": 7, "latitude": -6.3, "longitude": 110.0}),
        ("location", {"rw": 7, "latitude": float("nan"), "longitude": 106.95}),
        ("location", {"rw": 7, "latitude": float("-inf"), "longitude": 106.95}),
        ("location", {"rw": 7, "address": "x" * 301}),
    ],
)
def test_submission_rejections(field, value):
    assert field in errors_of(SubmitProposal, good(**{field: value}))


def test_unknown_and_missing_fields():
    assert errors_of(SubmitProposal, good(kelurahan="32.75.05.1002")) == {
        "kelurahan": ["Unknown field."]
    }
    payload = good()
    del payload["title"]
    assert "title" in errors_of(SubmitProposal, payload)


@pytest.mark.parametrize("payload", [None, [], "x", 42, 1.5, b"{}", [("year", 2027)]])
def test_non_dict_payload_is_a_validation_error(payload):
    assert "_schema" in errors_of(SubmitProposal, payload)


def test_non_string_keys_make_json_messages():
    fields = errors_of(SubmitProposal, {1: 2, (1, 2): 3, None: 4})
    assert fields["1"] == ["Unknown field."]


def test_revise_is_partial_but_not_empty():
    loaded = load(ReviseProposal, {"proposal_id": PID, "estimated_cost": 90_000_000})
    assert revision_changes(loaded) == {"estimated_cost": 90_000_000}
    assert "_schema" in errors_of(ReviseProposal, {"proposal_id": PID})
    assert "proposer" in errors_of(ReviseProposal, {"proposal_id": PID, "proposer": {}})
    assert "proposal_id" in errors_of(ReviseProposal, {"title": "Judul yang baru"})


def test_reason_schemas():
    assert load(RejectProposal, {"proposal_id": PID, "code": "duplicate"})["text"] == ""
    assert "text" in errors_of(RejectProposal, {"proposal_id": PID, "code": "other"})
    assert "code" in errors_of(RejectProposal, {"proposal_id": PID, "code": "malas"})
    assert "survivor_id" in errors_of(
        MergeProposal, {"proposal_id": PID, "survivor_id": PID, "reason": "sama"}
    )
    assert "proposal_id" in errors_of(
        MergeProposal, {"proposal_id": "not-a-uuid", "survivor_id": PID, "reason": "x"}
    )


def test_decide_schema_consistency():
    def decide(**fields):
        return {"proposal_id": PID, "level": "city", **fields}

    funded = load(DecideProposal, decide(decision="funded", funding_source="apbd", amount=10))
    assert funded["amount"] == 10
    assert "amount" in errors_of(DecideProposal, decide(decision="funded", funding_source="apbd"))
    assert "amount" in errors_of(
        DecideProposal, decide(decision="funded", funding_source="apbd", amount=10.0)
    )
    assert "reason" in errors_of(DecideProposal, decide(decision="rejected"))
    assert "amount" in errors_of(DecideProposal, decide(decision="accepted", amount=5))
    assert "level" in errors_of(
        DecideProposal,
        decide(level="kecamatan", decision="funded", funding_source="apbd", amount=1),
    )


def test_score_and_criteria_schemas():
    assert load(ScoreProposal, {"proposal_id": PID, "scores": {"urgency": 5}})
    for scores in ({"urgency": 6}, {"urgency": 2.0}, {"Urgency!": 3}, {}):
        assert "scores" in errors_of(ScoreProposal, {"proposal_id": PID, "scores": scores})
    criterion = {"code": "a", "name": "A", "weight": 2}
    assert load(SetCriteria, {"forum_id": FORUM})["criteria"] is None
    assert "_schema" in errors_of(SetCriteria, {"forum_id": FORUM, "criteria": [criterion] * 2})
    assert "criteria" in errors_of(
        SetCriteria, {"forum_id": FORUM, "criteria": [dict(criterion, weight=0)]}
    )


def test_forum_schemas():
    schedule = {"year": 2027, "date": "2026-01-22", "theme": "Musrenbang", "place": "Aula"}
    assert load(ScheduleForum, schedule)["date"] == "2026-01-22"
    assert "date" in errors_of(ScheduleForum, dict(schedule, date="2026-02-30"))
    assert "date" in errors_of(ScheduleForum, dict(schedule, date="22/01/2026"))
    held = {
        "forum_id": FORUM,
        "held_on": "2026-01-22",
        "attendance": 87,
        "berita_acara": "files/ba.pdf",
        "delegates": [{"delegate_id": "d-1", "rw": 7, "role": "delegasi"}],
    }
    assert load(RecordForum, held)["attendance"] == 87
    assert "attendance" in errors_of(RecordForum, dict(held, attendance=-1))
    assert "delegates" in errors_of(
        RecordForum, dict(held, delegates=[{"delegate_id": "Budi Santoso", "role": "x"}])
    )
    entry = {"proposal_id": PID, "total": 4.2}
    assert "_schema" in errors_of(RankForum, {"forum_id": FORUM, "ranking": [entry, entry]})
    assert "forum_id" in errors_of(RankForum, {"forum_id": "32.75-2027", "ranking": [entry]})


def test_list_query_defaults_and_bounds():
    assert load(ListProposals, {}) == {
        "kecamatan": None,
        "kelurahan": None,
        "rw": None,
        "status": None,
        "sector": None,
        "target_agency": None,
        "year": None,
        "page": 1,
        "per_page": 50,
    }
    for bad in ({"page": 0}, {"per_page": 201}, {"status": "lost"}, {"kelurahan": "32.75"}):
        assert set(bad) <= set(errors_of(ListProposals, bad))


def test_every_event_schema_has_a_version():
    assert all(schema.version == 1 for schema in EVENT_SCHEMAS.values())
    assert all(t.startswith(("proposal.", "forum.")) for t in EVENT_SCHEMAS)


def test_status_counts_default_to_zero():
    counts = StatusCounts().dump({"submitted": 3, "total": 3})
    assert counts["submitted"] == 3 and counts["realised"] == 0


def test_text_field_bounds():
    field = Text(2, 5)
    assert field.deserialize(" ab ") == "ab"
    for bad in ("a", "abcdef", "a\x07b", None):
        with pytest.raises(Exception) as caught:
            field.deserialize(bad)
        assert type(caught.value).__name__ == "ValidationError"


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=50)
    | st.binary(max_size=10),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.text(max_size=20) | st.integers(), children, max_size=6)
    ),
    max_leaves=30,
)
field_names = st.sampled_from(sorted(GOOD) + ["command_id", "kelurahan", "x"])


@st.composite
def mutated_submissions(draw):
    """A valid submission with some fields replaced by junk, removed or added."""
    payload = good()
    for name in draw(st.lists(field_names, max_size=4)):
        if draw(st.booleans()):
            payload[name] = draw(json_values)
        else:
            payload.pop(name, None)
    return payload


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(junk=json_values | mutated_submissions())
def test_load_raises_only_validation_error(junk):
    try:
        loaded = load(SubmitProposal, junk)
    except ValidationError as error:
        json.loads(error.message)
    else:
        json.dumps(loaded, allow_nan=False)  # whatever loads is JSON-native
