"""Unit tests of the citizens schemas: what bad input they refuse, and how."""

import copy
import json
import uuid
from datetime import date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.citizens.domain import (
    CORRECTABLE_FIELDS,
    Family,
    Resident,
    ServiceRequest,
)
from services.citizens.schemas import (
    EVENT_SCHEMAS,
    LOCAL_TZ,
    AddFamilyMember,
    AssignServiceRequest,
    ChangeFamilyHead,
    ClearVulnerability,
    CorrectResident,
    EraseResident,
    FindResidentByNik,
    FormFamily,
    ListResidents,
    ListServiceRequests,
    MonographQuery,
    MoveOut,
    RaiseServiceRequest,
    RecordDisability,
    RecordHealth,
    RecordPregnancy,
    RecordWelfare,
    RegisterResident,
    ResidentSummary,
    ResidentView,
    ServiceDeskCounts,
    SplitFamily,
    TargetingQuery,
    _Corrections,
    load,
    resident_summary,
)
from shared.actor import Actor
from shared.errors import ValidationError

KEL = "32.75.05.1002"
RID = str(uuid.uuid4())
OPERATOR = Actor("u-op", "operator", KEL)
NOW = datetime.now(LOCAL_TZ).isoformat()

GOOD = {
    "nik": "3275054508900001",  # Siti Rahayu, invented: 5 August 1990, a woman
    "name": "Siti Rahayu",
    "sex": "P",
    "birth_place": "Bekasi",
    "birth_date": "1990-08-05",
    "religion": "islam",
    "education": "sma",
    "occupation": "wiraswasta",
    "marital_status": "kawin",
    "citizenship": "wni",
    "address": "Jl. Melati Raya No. 3",
    "rt": 3,
    "rw": 7,
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


def meta():
    return {"actor": OPERATOR.as_dict(), "time": NOW}


def test_good_registration_loads_with_defaults():
    loaded = load(RegisterResident, good())
    assert loaded["entry"] == "existing"
    assert loaded["kk"] is None and loaded["relationship"] is None and loaded["origin"] is None
    assert loaded["command_id"] is None
    json.dumps(loaded, allow_nan=False)


def test_loaded_registration_feeds_the_domain_and_the_event_contract():
    loaded = load(RegisterResident, good(command_id=str(uuid.uuid4())))
    del loaded["command_id"]
    resident = Resident.register(RID, OPERATOR, {**loaded, "kelurahan": KEL}, meta())
    type_, data = resident.pending[0][:2]
    assert load(EVENT_SCHEMAS[type_], data) == data
    assert ResidentView().validate(resident.snapshot()) == {}
    summary = resident_summary(resident.snapshot())
    assert ResidentSummary().validate(summary) == {}
    assert summary["name"] == "Siti Rahayu" and summary["rw"] == 7


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("nik", "327505450890001"),
        ("nik", "32750545089000011"),
        ("nik", "327505450890000a"),
        ("nik", 3275054508900001),
        ("nik", None),
        ("kk", "1234"),
        ("sex", "W"),
        ("religion", "agama_lain"),
        ("education", "phd"),
        ("occupation", "astronaut"),
        ("marital_status", "pacaran"),
        ("citizenship", "dual"),
        ("relationship", "tetangga"),
        ("rw", 0),
        ("rw", 100),
        ("rt", 3.0),
        ("rt", "3"),
        ("name", ""),
        ("name", "Siti\nRahayu"),
        ("name", "x" * 201),
        ("birth_date", "05-08-1990"),
        ("birth_date", "1990-02-30"),
        ("address", "Jl. A\x00"),
        ("entry", "teleport"),
        ("origin", {"region": "Jakarta"}),
        ("origin", {}),
        ("entry_date", "2999-01-01"),
    ],
)
def test_registration_rejections(field, value):
    assert field in errors_of(RegisterResident, good(**{field: value}))


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"birth_date": "1990-08-06"}, "nik"),  # NIK says the 5th
        ({"sex": "L"}, "nik"),  # day + 40 says a woman
        ({"nik": "3275134508900001"}, "nik"),  # no kecamatan 13 in Kota Bekasi
        ({"nik": "3275054508900000"}, "nik"),  # serial 0000
        ({"entry": "move_in"}, "origin"),
        ({"entry_date": "1980-01-01"}, "entry_date"),
    ],
)
def test_registration_consistency(overrides, field):
    fields = errors_of(RegisterResident, good(**overrides))
    assert field in fields
    assert GOOD["nik"] not in json.dumps(fields)


def test_other_regions_and_future_birth_dates():
    assert load(RegisterResident, good(nik="3171054508900001"))["nik"] == "3171054508900001"
    tomorrow = date.today() + timedelta(days=2)
    nik = f"327505{tomorrow.day + 40:02d}{tomorrow.month:02d}{tomorrow.year % 100:02d}0001"
    assert "birth_date" in errors_of(
        RegisterResident, good(birth_date=tomorrow.isoformat(), nik=nik)
    )


def test_unknown_and_non_object_payloads():
    assert errors_of(RegisterResident, good(kelurahan=KEL)) == {"kelurahan": ["Unknown field."]}
    assert errors_of(RegisterResident, good(status="alive")) == {"status": ["Unknown field."]}
    for payload in (None, [], "x", 42, b"{}"):
        assert "_schema" in errors_of(RegisterResident, payload)


@settings(max_examples=200, deadline=None)
@given(st.from_regex(r"\A[0-9a-z -]{0,4}[0-9]{6,20}[0-9a-z]{0,3}\Z"))
def test_no_nik_like_input_is_ever_echoed(text):
    for field in ("nik", "kk", "birth_date", "name"):
        try:
            load(RegisterResident, good(**{field: text}))
        except ValidationError as error:
            assert text not in error.message and text[-6:] not in error.message


@settings(max_examples=200, deadline=None)
@given(st.from_regex(r"\A[0-9]{16}\Z"))
def test_sixteen_digit_niks_load_or_fail_quietly(nik):
    try:
        load(RegisterResident, good(nik=nik))
    except ValidationError as error:
        assert nik not in error.message and nik[:6] not in error.message


def test_disability_without_consent():
    base = {"resident_id": RID, "categories": ["physical"], "source": "home_visit"}
    fields = errors_of(RecordDisability, base)
    assert fields == {
        "consent": ["Consent of the resident or a guardian is required (UU 27/2022)."]
    }
    assert "consent" in errors_of(RecordDisability, {**base, "consent": None})
    bad_consent = {"given_by": "tetangga", "date": "2026-01-01"}
    assert "consent" in errors_of(RecordDisability, {**base, "consent": bad_consent})
    consent = {"given_by": "guardian", "date": "2026-01-01"}
    loaded = load(RecordDisability, {**base, "consent": consent})
    assert loaded["consent"]["reference"] is None
    twice = {**base, "consent": consent, "categories": ["mental", "mental"]}
    assert "categories" in errors_of(RecordDisability, twice)
    assert "categories" in errors_of(
        RecordDisability, {**base, "consent": consent, "categories": []}
    )


def test_other_vulnerability_commands():
    assert load(
        RecordWelfare, {"resident_id": RID, "decile": 4, "source": "dtsen", "as_of": "2025-12-01"}
    )
    for decile in (0, 11, 4.0, "4"):
        payload = {"resident_id": RID, "decile": decile, "source": "dtsen", "as_of": "2025-12-01"}
        assert "decile" in errors_of(RecordWelfare, payload)
    health = {"resident_id": RID, "source": "puskesmas"}
    assert "_schema" in errors_of(RecordHealth, health)
    assert load(RecordHealth, {**health, "care_needs": ["mobility"]})["chronic_conditions"] == []
    assert "chronic_conditions" in errors_of(
        RecordHealth, {**health, "chronic_conditions": ["flu"]}
    )
    assert load(
        RecordPregnancy, {"resident_id": RID, "expected_date": "2026-09-01", "source": "posyandu"}
    )
    clear = {"resident_id": RID, "kind": "pregnancy", "reason": "delivered"}
    assert load(ClearVulnerability, clear)["note"] is None
    assert "reason" in errors_of(ClearVulnerability, {**clear, "reason": "consent_withdrawn"})
    assert "reason" in errors_of(ClearVulnerability, {**clear, "kind": "welfare"})


def test_corrections_and_erasure():
    assert set(_Corrections._declared_fields) == set(CORRECTABLE_FIELDS)
    base = {"resident_id": RID, "reason": "typo", "note": "Sesuai KTP-el"}
    loaded = load(CorrectResident, {**base, "changes": {"name": "Siti Rahayuningsih"}})
    assert loaded["changes"] == {"name": "Siti Rahayuningsih"}
    assert "changes" in errors_of(CorrectResident, {**base, "changes": {}})
    assert "changes" in errors_of(CorrectResident, {**base, "changes": {"kk": "3275050101200003"}})
    assert "note" in errors_of(CorrectResident, {**base, "note": "", "changes": {"rt": 2}})
    erase = {"resident_id": RID, "legal_basis": "consent_withdrawn", "request_reference": "470/1"}
    assert load(EraseResident, erase)
    assert "legal_basis" in errors_of(EraseResident, {**erase, "legal_basis": "bosan"})
    out = {"resident_id": RID, "date": "2026-01-01", "destination": {"region": "32.16"}}
    assert load(MoveOut, out)["reason"] == "other"


def test_family_schemas():
    head, wife = str(uuid.uuid4()), str(uuid.uuid4())
    members = [
        {"resident_id": head, "relationship": "kepala_keluarga"},
        {"resident_id": wife, "relationship": "istri"},
    ]
    family = {
        "kk": "3275050101200003",
        "address": "Jl. Melati",
        "rt": 3,
        "rw": 7,
        "members": members,
    }
    loaded = load(FormFamily, family)
    created = Family.form(str(uuid.uuid4()), OPERATOR, {**loaded, "kelurahan": KEL}, meta())
    assert load(EVENT_SCHEMAS["family.formed"], created.pending[0][1])
    no_head = [{**m, "relationship": "anak"} for m in members]
    assert "members" in errors_of(FormFamily, {**family, "members": no_head})
    assert "members" in errors_of(FormFamily, {**family, "members": [members[0], members[0]]})
    assert "members" in errors_of(FormFamily, {**family, "members": []})
    split = {**family, "family_id": str(uuid.uuid4())}
    assert load(SplitFamily, split)["new_family_id"] is None
    add = {"family_id": str(uuid.uuid4()), "resident_id": head}
    assert "relationship" in errors_of(AddFamilyMember, {**add, "relationship": "kepala_keluarga"})
    change = {
        "family_id": str(uuid.uuid4()),
        "resident_id": wife,
        "previous_head_relationship": "suami",
    }
    assert load(ChangeFamilyHead, change)["relationships"] == {}
    assert "relationships" in errors_of(
        ChangeFamilyHead, {**change, "relationships": {"x": "anak"}}
    )


def test_service_desk_schemas():
    raise_ = {"kind": "akta_kelahiran", "resident_id": RID, "rw": 7}
    loaded = load(RaiseServiceRequest, raise_)
    assert loaded["rt"] is None and loaded["note"] is None
    request = ServiceRequest.raise_request(
        str(uuid.uuid4()), OPERATOR, {**loaded, "kelurahan": KEL}, meta()
    )
    assert load(EVENT_SCHEMAS["request.raised"], request.pending[0][1])
    assert "kind" in errors_of(RaiseServiceRequest, {**raise_, "kind": "sim"})
    assign = {"request_id": RID, "pamor_id": "u pamor"}
    assert "pamor_id" in errors_of(AssignServiceRequest, assign)
    assert load(ListServiceRequests, {"breached": True})["breached"] is True
    assert ServiceDeskCounts().dump({"total": 2})["breached"] == 0


def test_queries():
    assert load(ListResidents, {}) == {
        "rw": None,
        "rt": None,
        "status": None,
        "category": None,
        "sex": None,
        "age_band": None,
        "family_id": None,
        "name": None,
        "purpose": "list",  # recorded in the access log
        "page": 1,
        "per_page": 50,
    }
    assert "category" in errors_of(ListResidents, {"category": "rich"})
    assert load(ListResidents, {"category": "welfare.decile_1_4", "age_band": "75+"})
    target = {"category": "disability.physical", "purpose": "Pendataan bantuan alat bantu"}
    assert load(TargetingQuery, target)["rw"] is None
    assert "purpose" in errors_of(TargetingQuery, {**target, "purpose": "bantuan"})
    assert "purpose" in errors_of(TargetingQuery, {**target, "purpose": "x" * 501})
    assert "purpose" in errors_of(TargetingQuery, {"category": "elderly"})
    assert "category" in errors_of(TargetingQuery, {"purpose": "Pendataan lansia RW 07"})
    assert load(MonographQuery, {}) == {"as_of": None, "format": "json"}
    assert "format" in errors_of(MonographQuery, {"format": "xlsx"})
    assert "nik" in errors_of(FindResidentByNik, {"nik": "12"})


def test_event_schemas_accept_shredded_personal_and_refuse_extra_public_keys():
    resident = Resident.register(RID, OPERATOR, {**good(), "kelurahan": KEL}, meta())
    data = resident.pending[0][1]
    assert load(EVENT_SCHEMAS["resident.registered"], {**data, "personal": None})
    leaky = {**data, "public": {**data["public"], "name": "Siti Rahayu"}}
    assert "public" in errors_of(EVENT_SCHEMAS["resident.registered"], leaky)
    assert "public" in errors_of(EVENT_SCHEMAS["resident.registered"], {**data, "public": None})
    erased = {"legal_basis": "court_order", "request_reference": "X", "public": data["public"]}
    assert load(EVENT_SCHEMAS["resident.erased"], {**erased, "personal": None})
    assert "personal" in errors_of(
        EVENT_SCHEMAS["resident.erased"], {**erased, "personal": {"a": 1}}
    )
