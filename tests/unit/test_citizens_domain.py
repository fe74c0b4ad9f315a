"""Unit tests of the citizens domain: no broker, no database.

Test people are invented ("Siti Rahayu", ...) with NIKs built from the rules.
"""

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from services.citizens import domain as d
from services.citizens.domain import (
    PUBLIC_KEYS,
    Family,
    Resident,
    ServiceRequest,
    age_band,
    desk_counts,
    split,
)
from services.citizens.nik import parse_nik, validate_nik
from services.citizens.schemas import EVENT_SCHEMAS, FamilyView, ResidentView, ServiceRequestView
from services.citizens.schemas import load as load_schema
from shared.actor import Actor
from shared.errors import Conflict, Forbidden, NotFound, ValidationError

KEL = "32.75.05.1002"
OTHER_KEL = "32.75.05.1001"
NOW = "2026-03-02T02:00:00+00:00"  # 09:00 WIB
TODAY = date(2026, 3, 2)

OPERATOR = Actor("u-op", "operator", KEL)
LURAH = Actor("u-lurah", "lurah", KEL)
ADMIN = Actor("u-admin", "admin", "32.75")
OTHER_OPERATOR = Actor("u-op2", "operator", OTHER_KEL)
PAMOR = Actor("u-pamor-7", "pamor", KEL, rw=7)
PAMOR_2 = Actor("u-pamor-7b", "pamor", KEL, rw=7)
PAMOR_OTHER_RW = Actor("u-pamor-8", "pamor", KEL, rw=8)
RT_CHAIR = Actor("u-rt", "ketua_rt", KEL, rw=7, rt=3)
RW_CHAIR = Actor("u-rw", "ketua_rw", KEL, rw=7)
WARGA = Actor("u-warga", "warga", KEL, rw=7, rt=3)


def meta(actor, time=NOW):
    return {"actor": actor.as_dict(), "time": time}


def at(hours, start=NOW):
    return (datetime.fromisoformat(start) + timedelta(hours=hours)).isoformat()


def make_nik(birth_date, sex, region="327505", serial=1):
    born = date.fromisoformat(birth_date)
    day = born.day + (40 if sex == "P" else 0)
    return f"{region}{day:02d}{born.month:02d}{born.year % 100:02d}{serial:04d}"


PEOPLE = {
    "siti": {"name": "Siti Rahayu", "sex": "P", "birth_date": "1990-08-05"},
    "budi": {"name": "Budi Santoso", "sex": "L", "birth_date": "1985-02-14"},
    "dewi": {"name": "Dewi Lestari", "sex": "P", "birth_date": "2015-11-23"},
    "agus": {"name": "Agus Wijaya", "sex": "L", "birth_date": "1950-06-30"},
}


def person(who="siti", serial=1, **overrides):
    """A RegisterResident payload (plus kelurahan) for an invented resident."""
    base = PEOPLE[who]
    data = {
        "kelurahan": KEL,
        "nik": make_nik(base["birth_date"], base["sex"], serial=serial),
        "kk": None,
        "relationship": None,
        "name": base["name"],
        "sex": base["sex"],
        "birth_place": "Bekasi",
        "birth_date": base["birth_date"],
        "religion": "islam",
        "education": "sma",
        "occupation": "wiraswasta",
        "marital_status": "kawin",
        "citizenship": "wni",
        "address": "Jl. Melati Raya No. 3",
        "rt": 3,
        "rw": 7,
    }
    data.update(overrides)
    return data


def registered(who="siti", actor=OPERATOR, **overrides):
    return Resident.register(str(uuid.uuid4()), actor, person(who, **overrides), meta(actor))


CONSENT = {"given_by": "self", "date": "2026-02-20", "reference": "files/consent-1.pdf"}


def disability(**overrides):
    data = {"categories": ["physical"], "consent": CONSENT, "source": "home_visit"}
    data.update(overrides)
    return data


def types(aggregate):
    return [event[0] for event in aggregate.pending]


def assert_contract(aggregate):
    """Every pending event fits its schema and exposes only coarse public keys."""
    for type_, data, _ in aggregate.pending:
        assert load_schema(EVENT_SCHEMAS[type_], data) == data, type_
        assert set(data) >= {"personal", "public"}, type_
        assert set(data["public"]) <= set(PUBLIC_KEYS), type_


def shredded(aggregate):
    """The aggregate's events as read back after its key was deleted."""
    return [(t, {**data, "personal": None}, m) for t, data, m in aggregate.pending]


# -- NIK --------------------------------------------------------------------------------


def test_parse_nik_of_a_man_and_a_woman():
    assert parse_nik("3275051402850001", TODAY) == ("327505", date(1985, 2, 14), "L")
    assert parse_nik("3275054508900001", TODAY) == ("327505", date(1990, 8, 5), "P")
    assert validate_nik("3275054508900001", "1990-08-05", "P", TODAY) == "327505"


@pytest.mark.parametrize(
    ("nik", "birth_date", "sex"),
    [
        ("3275051402850001", "1985-02-15", "L"),  # day differs
        ("3275051402850001", "1985-03-14", "L"),  # month differs
        ("3275051402850001", "1995-02-14", "L"),  # year differs
        ("3275051402850001", "1985-02-14", "P"),  # a woman's NIK has day + 40
        ("3275055402850001", "1985-02-14", "L"),  # day + 40 but stated a man
    ],
)
def test_nik_must_agree_with_birth_date_and_sex(nik, birth_date, sex):
    with pytest.raises(ValidationError) as caught:
        validate_nik(nik, birth_date, sex, TODAY)
    assert "nik" in caught.value.fields
    assert nik not in str(caught.value) and nik[6:12] not in str(caught.value)


@pytest.mark.parametrize(
    "nik",
    [
        "3275053102850001",  # 31 February
        "3275053202850001",  # day 32
        "3275057202850001",  # woman's day 72 = 32
        "3275050013850001",  # day 0, month 13
        "3275051400850001",  # month 0
        "3275051402850000",  # serial 0000
        "3275131402850001",  # no kecamatan 13 in Kota Bekasi
        "3275001402850001",  # kecamatan 00
        "9901011402850001",  # no province 99
        "1001011402850001",  # no province 10
        "3200011402850001",  # regency 00
        "327505140285001",  # 15 digits
        "32750514028500011",  # 17 digits
        "32750514028500a1",
        "3275 51402850001",
        "٣٢٧٥٠٥١٤٠٢٨٥٠٠٠١",  # non-ASCII digits
        "",
        None,
        3275051402850001,
    ],
)
def test_bad_niks_are_refused_without_echo(nik):
    with pytest.raises(ValidationError) as caught:
        parse_nik(nik, TODAY)
    assert list(caught.value.fields) == ["nik"]
    if isinstance(nik, str) and nik:
        assert nik not in str(caught.value)
        assert nik[:6] not in str(caught.value)


def test_other_regions_are_accepted_by_format():
    assert parse_nik("3171051402850001", TODAY)[0] == "317105"  # Jakarta Timur
    assert parse_nik("9601011402850001", TODAY)[0] == "960101"
    for code in ("32.75.01", "32.75.07", "32.75.12"):  # every Bekasi kecamatan exists
        assert parse_nik(code.replace(".", "") + "1402850001", TODAY)


def test_two_digit_year_takes_the_century_that_is_not_in_the_future():
    assert parse_nik("3275050101300001", TODAY)[1] == date(1930, 1, 1)
    assert parse_nik("3275050101200001", TODAY)[1] == date(2020, 1, 1)
    assert parse_nik("3275050103260001", TODAY)[1] == date(2026, 3, 1)
    assert parse_nik("3275050303260001", TODAY)[1] == date(1926, 3, 3)  # tomorrow -> 1926
    assert parse_nik("3275052902000001", TODAY)[1] == date(2000, 2, 29)
    assert parse_nik("3275050101300001", date(2031, 1, 1))[1] == date(2030, 1, 1)


def test_a_future_birth_date_is_refused():
    with pytest.raises(ValidationError) as caught:
        validate_nik("3275050103270001", "2027-03-01", "L", TODAY)
    assert "birth_date" in caught.value.fields
    with pytest.raises(ValidationError):
        registered(birth_date="2027-03-01", nik=make_nik("2027-03-01", "P"))


# -- registration -----------------------------------------------------------------------


def test_register_records_personal_and_coarse_public_parts():
    resident = registered()
    assert types(resident) == ["resident.registered"]
    data = resident.pending[0][1]
    assert data["kelurahan"] == KEL and data["entry"] == "existing"
    assert data["personal"]["name"] == "Siti Rahayu"
    assert data["personal"]["nik"] == make_nik("1990-08-05", "P")
    assert data["public"] == {"rw": 7, "sex": "P", "age_band": "35-39", "categories": []}
    assert resident.status == "alive"
    assert resident.personal["entry"] == {"kind": "existing", "date": None, "origin": None}
    assert_contract(resident)


def test_register_a_newcomer_needs_an_origin():
    with pytest.raises(ValidationError) as caught:
        registered(entry="move_in")
    assert "origin" in caught.value.fields
    origin = {"region": "31.71", "address": "Jl. Kenanga 1, Jakarta Timur"}
    resident = registered(entry="move_in", origin=origin, entry_date="2026-02-01")
    assert resident.personal["entry"]["origin"] == origin
    assert_contract(resident)


def test_register_refuses_bad_fields_naming_each():
    with pytest.raises(ValidationError) as caught:
        registered(religion="jedi", rw=100, name=" ", education="phd")
    assert set(caught.value.fields) == {"religion", "rw", "name", "education"}
    with pytest.raises(ValidationError) as caught:
        registered(birth_date="1990-08-06")  # NIK says the 5th
    assert list(caught.value.fields) == ["nik"]
    assert make_nik("1990-08-05", "P") not in str(caught.value)
    data = person()
    del data["birth_place"]
    with pytest.raises(ValidationError):
        Resident.register("r", OPERATOR, data, meta(OPERATOR))


def test_a_registered_nik_is_a_conflict_that_names_no_one():
    data = person()
    with pytest.raises(Conflict) as caught:
        Resident.register("r", OPERATOR, data, meta(OPERATOR), nik_taken=True)
    message = str(caught.value)
    assert "NIK is already registered" in message
    assert data["nik"] not in message and "Siti" not in message


def test_who_may_register():
    for actor in (PAMOR, RT_CHAIR, RW_CHAIR, WARGA, OTHER_OPERATOR):
        with pytest.raises(Forbidden) as caught:
            registered(actor=actor)
        assert "Siti" not in str(caught.value)
    assert registered(actor=LURAH).status == "alive"
    assert registered(actor=ADMIN).status == "alive"
    with pytest.raises(Forbidden):  # the scope check comes before the data check
        Resident.register("r", PAMOR, {"kelurahan": KEL}, meta(PAMOR))


# -- moves, death, missing, corrections --------------------------------------------------


def test_moves_within_out_and_back_in():
    resident = registered()
    resident.move_within(OPERATOR, {"rw": 9, "rt": 1, "address": "Gg. Mawar 2"}, meta(OPERATOR))
    assert resident.public["rw"] == 9 and resident.personal["rt"] == 1
    with pytest.raises(ValidationError):
        resident.move_within(OPERATOR, {"rw": 9, "rt": 1, "address": "Gg. Mawar 2"}, meta(OPERATOR))
    destination = {"region": "32.16", "address": "Cikarang"}
    resident.move_out(
        OPERATOR,
        {"date": "2026-03-01", "destination": destination, "reason": "work"},
        meta(OPERATOR),
    )
    assert resident.status == "moved_out"
    assert resident.personal["departure"]["destination"] == destination
    with pytest.raises(Conflict):
        resident.move_within(OPERATOR, {"rw": 1, "rt": 1, "address": "x"}, meta(OPERATOR))
    with pytest.raises(Conflict):
        resident.record_disability(OPERATOR, disability(), meta(OPERATOR))
    resident.move_in(
        OPERATOR,
        {"rw": 7, "rt": 3, "address": "Jl. Melati 5", "date": "2026-03-02"},
        meta(OPERATOR),
    )
    assert resident.status == "alive" and resident.personal["departure"] is None
    assert resident.personal["entry"]["kind"] == "move_in"
    assert types(resident)[1:] == ["resident.moved", "resident.moved_out", "resident.moved_in"]
    assert [h["summary"] for h in resident.history][-1] == "moved back in"
    assert_contract(resident)


def test_death_freezes_the_age_band_and_ends_changes():
    resident = registered("agus")
    with pytest.raises(ValidationError):
        resident.record_death(OPERATOR, {"date": "1949-01-01"}, meta(OPERATOR))
    with pytest.raises(ValidationError):
        resident.record_death(OPERATOR, {"date": "2026-03-03"}, meta(OPERATOR))  # future
    resident.record_death(
        OPERATOR,
        {"date": "2020-01-01", "place": "RSUD Bekasi", "certificate": "AK-1"},
        meta(OPERATOR),
    )
    assert resident.status == "dead"
    assert resident.public["age_band"] == "65-69"  # 69 at death, 75 now
    assert "elderly" in resident.public["categories"]
    for command, data in (
        (resident.move_within, {"rw": 1, "rt": 1, "address": "x"}),
        (resident.record_death, {"date": "2020-01-01"}),
        (resident.report_missing, {"date": "2020-01-01"}),
    ):
        with pytest.raises(Conflict):
            command(OPERATOR, data, meta(OPERATOR))
    assert_contract(resident)


def test_missing_and_found():
    resident = registered()
    resident.report_missing(
        OPERATOR, {"date": "2026-02-01", "note": "Tidak pulang"}, meta(OPERATOR)
    )
    assert resident.status == "missing"
    resident.report_found(OPERATOR, {"date": "2026-02-10"}, meta(OPERATOR))
    assert resident.status == "alive" and resident.personal["missing"] is None
    with pytest.raises(Conflict):
        resident.report_found(OPERATOR, {"date": "2026-02-10"}, meta(OPERATOR))
    assert_contract(resident)


def test_correction_needs_a_reason_and_keeps_the_nik_consistent():
    resident = registered()
    good = {"changes": {"name": "Siti Rahayuningsih"}, "reason": "typo", "note": "Sesuai KTP"}
    with pytest.raises(ValidationError) as caught:
        resident.correct(OPERATOR, {**good, "reason": None}, meta(OPERATOR))
    assert "reason" in caught.value.fields
    with pytest.raises(ValidationError) as caught:
        resident.correct(OPERATOR, {**good, "note": ""}, meta(OPERATOR))
    assert "note" in caught.value.fields
    with pytest.raises(ValidationError) as caught:
        resident.correct(OPERATOR, {**good, "changes": {"status": "dead"}}, meta(OPERATOR))
    assert caught.value.fields == {"status": ["This field cannot be corrected."]}
    with pytest.raises(ValidationError):  # the NIK says the 5th of August
        resident.correct(
            OPERATOR, {**good, "changes": {"birth_date": "1990-08-06"}}, meta(OPERATOR)
        )
    with pytest.raises(ValidationError):
        resident.correct(OPERATOR, {**good, "changes": {"name": "Siti Rahayu"}}, meta(OPERATOR))

    resident.correct(OPERATOR, good, meta(OPERATOR))
    assert resident.personal["name"] == "Siti Rahayuningsih"
    both = {"birth_date": "1990-08-06", "nik": make_nik("1990-08-06", "P")}
    with pytest.raises(Conflict):
        resident.correct(
            OPERATOR, {**good, "changes": both, "reason": "document_update"}, meta(OPERATOR), True
        )
    resident.correct(
        OPERATOR, {**good, "changes": both, "reason": "document_update"}, meta(OPERATOR)
    )
    assert resident.personal["birth_date"] == "1990-08-06"
    event = resident.pending[-1][1]
    assert event["changed"] == ["birth_date", "nik"] and event["reason"] == "document_update"
    assert resident.history[-1]["summary"] == "corrected: birth_date, nik"
    assert "Siti" not in str(resident.history)
    assert_contract(resident)


def test_correcting_the_rw_moves_the_public_part():
    resident = registered()
    data = {"changes": {"rw": 8}, "reason": "typo", "note": "RW salah input"}
    resident.correct(OPERATOR, data, meta(OPERATOR))
    assert resident.public["rw"] == 8


def test_family_link_on_the_record():
    resident = registered()
    family_id = str(uuid.uuid4())
    with pytest.raises(ValidationError):
        resident.set_family(OPERATOR, {"family_id": family_id}, meta(OPERATOR))
    link = {"family_id": family_id, "kk": "3275050101200003", "relationship": "istri"}
    resident.set_family(OPERATOR, link, meta(OPERATOR))
    assert resident.family_id == family_id and resident.personal["relationship"] == "istri"
    resident.set_family(
        OPERATOR, {"family_id": None, "kk": None, "relationship": None}, meta(OPERATOR)
    )
    assert resident.family_id is None
    assert_contract(resident)


# -- vulnerability ----------------------------------------------------------------------


def test_disability_is_refused_without_consent():
    resident = registered()
    for consent in (None, {}, {"given_by": "tetangga", "date": "2026-02-01"}):
        with pytest.raises(ValidationError) as caught:
            resident.record_disability(OPERATOR, disability(consent=consent), meta(OPERATOR))
        assert "consent" in caught.value.fields
    with pytest.raises(ValidationError):
        resident.record_disability(
            OPERATOR, disability(consent={**CONSENT, "date": "2026-03-03"}), meta(OPERATOR)
        )
    assert resident.pending == resident.pending[:1]


def test_disability_with_consent_by_a_guardian():
    resident = registered("dewi")
    consent = {"given_by": "guardian", "date": "2026-02-20", "reference": None}
    data = disability(categories=["sensory", "intellectual"], consent=consent, source="school")
    resident.record_disability(OPERATOR, data, meta(OPERATOR))
    record = resident.vulnerability["disability"]
    assert record["categories"] == ["intellectual", "sensory", "multiple"]
    assert record["consent"]["given_by"] == "guardian"
    assert record["source"] == "school"
    assert record["recorded_by"] == {"id": "u-op", "role": "operator"}
    assert record["recorded_at"] == NOW
    assert resident.public["categories"] == [
        "child",
        "disability.intellectual",
        "disability.multiple",
        "disability.sensory",
    ]
    with pytest.raises(ValidationError):
        resident.record_disability(OPERATOR, disability(categories=["blind"]), meta(OPERATOR))
    assert_contract(resident)


def test_welfare_health_pregnancy_and_clearing():
    resident = registered()
    resident.record_welfare(
        OPERATOR, {"decile": 3, "source": "dtsen", "as_of": "2025-12-01"}, meta(OPERATOR)
    )
    for decile in (0, 11, 2.0, "3", True):
        with pytest.raises(ValidationError):
            resident.record_welfare(
                OPERATOR,
                {"decile": decile, "source": "dtsen", "as_of": "2025-12-01"},
                meta(OPERATOR),
            )
    resident.record_health(
        OPERATOR,
        {"chronic_conditions": ["diabetes"], "care_needs": [], "source": "puskesmas"},
        meta(OPERATOR),
    )
    with pytest.raises(ValidationError):
        resident.record_health(
            OPERATOR,
            {"chronic_conditions": [], "care_needs": [], "source": "puskesmas"},
            meta(OPERATOR),
        )
    resident.record_pregnancy(
        OPERATOR, {"expected_date": "2026-07-01", "source": "posyandu"}, meta(OPERATOR)
    )
    assert resident.public["categories"] == ["chronic_illness", "pregnant", "welfare.decile_1_4"]
    assert resident.flags_on(date(2026, 7, 31))["pregnant"]
    assert not resident.flags_on(date(2026, 8, 1))["pregnant"]  # expired
    assert resident.flags_on(date(2050, 8, 5))["elderly"]

    resident.clear(OPERATOR, "welfare", {"reason": "no_longer_applies"}, meta(OPERATOR))
    with pytest.raises(Conflict):
        resident.clear(OPERATOR, "welfare", {"reason": "no_longer_applies"}, meta(OPERATOR))
    with pytest.raises(ValidationError):
        resident.clear_pregnancy(OPERATOR, {"reason": "consent_withdrawn"}, meta(OPERATOR))
    resident.clear_pregnancy(OPERATOR, {"reason": "delivered"}, meta(OPERATOR))
    assert resident.public["categories"] == ["chronic_illness"]
    assert [(h["kind"], h["action"]) for h in resident.vulnerability_history] == [
        ("welfare", "recorded"),
        ("health", "recorded"),
        ("pregnancy", "recorded"),
        ("welfare", "cleared"),
        ("pregnancy", "cleared"),
    ]
    assert resident.vulnerability_history[0]["details"]["decile"] == 3
    assert_contract(resident)


def test_pregnancy_is_for_women_within_300_days():
    with pytest.raises(Conflict):
        registered("budi").record_pregnancy(
            OPERATOR, {"expected_date": "2026-07-01", "source": "posyandu"}, meta(OPERATOR)
        )
    for expected in ("2026-03-01", "2027-01-01"):
        with pytest.raises(ValidationError):
            registered().record_pregnancy(
                OPERATOR, {"expected_date": expected, "source": "posyandu"}, meta(OPERATOR)
            )


def test_consent_can_be_withdrawn_after_moving_out():
    resident = registered()
    resident.record_disability(OPERATOR, disability(), meta(OPERATOR))
    resident.move_out(
        OPERATOR, {"date": "2026-03-01", "destination": {"region": "32.16"}}, meta(OPERATOR)
    )
    resident.clear_disability(OPERATOR, {"reason": "consent_withdrawn"}, meta(OPERATOR))
    assert resident.vulnerability["disability"] is None
    assert "disability.physical" not in resident.public["categories"]


def test_derived_flags_child_and_elderly():
    assert registered("dewi").public["categories"] == ["child"]
    assert registered("agus").public["categories"] == ["elderly"]
    assert registered("agus").public["age_band"] == "75+"
    assert [age_band(a) for a in (0, 4, 5, 17, 74, 75, 99)] == [
        "0-4",
        "0-4",
        "5-9",
        "15-19",
        "70-74",
        "75+",
        "75+",
    ]
    dewi = registered("dewi")
    assert dewi.flags_on(date(2033, 11, 22))["child"]
    assert not dewi.flags_on(date(2033, 11, 23))["child"]


def test_pamor_and_chairs_record_nothing_about_residents():
    resident = registered()
    for actor in (PAMOR, RT_CHAIR, RW_CHAIR, WARGA, OTHER_OPERATOR):
        for command, data in (
            (resident.record_disability, disability()),
            (resident.move_within, {"rw": 1, "rt": 1, "address": "x"}),
            (resident.erase, {"legal_basis": "court_order", "request_reference": "X"}),
        ):
            with pytest.raises(Forbidden):
                command(actor, data, meta(actor))


# -- erasure ----------------------------------------------------------------------------


ERASURE = {"legal_basis": "data_subject_request", "request_reference": "470/15/Kel.Pgs/2026"}


def test_erasure_by_lurah_or_admin_only_then_everything_is_refused():
    resident = registered()
    resident.record_disability(OPERATOR, disability(), meta(OPERATOR))
    with pytest.raises(Forbidden):
        resident.erase(OPERATOR, ERASURE, meta(OPERATOR))
    with pytest.raises(ValidationError):
        resident.erase(LURAH, {**ERASURE, "legal_basis": "bosan"}, meta(LURAH))
    resident.erase(LURAH, ERASURE, meta(LURAH))
    data = resident.pending[-1][1]
    assert data["personal"] is None and data["legal_basis"] == "data_subject_request"
    assert resident.status == "erased" and resident.personal is None
    assert resident.vulnerability == dict.fromkeys(d.VULNERABILITY_KINDS)
    assert resident.vulnerability_history == []
    assert resident.erasure["actor"] == {"id": "u-lurah", "role": "lurah"}
    commands = [
        (resident.move_within, {"rw": 1, "rt": 1, "address": "Jl. A"}),
        (resident.move_out, {"date": "2026-03-01", "destination": {"region": "32.16"}}),
        (resident.record_death, {"date": "2026-03-01"}),
        (resident.report_missing, {"date": "2026-03-01"}),
        (resident.correct, {"changes": {"name": "Siti R"}, "reason": "typo", "note": "KTP"}),
        (resident.record_disability, disability()),
        (resident.record_welfare, {"decile": 2, "source": "dtsen", "as_of": "2026-01-01"}),
        (resident.clear_disability, {"reason": "consent_withdrawn"}),
        (resident.erase, ERASURE),
    ]
    for command, data in commands:
        with pytest.raises(Conflict, match="^resident was erased$"):
            command(ADMIN, data, meta(ADMIN))
    assert_contract(resident)


def test_unknown_resident_is_not_found():
    with pytest.raises(NotFound):
        Resident("r").move_within(OPERATOR, {"rw": 1, "rt": 1, "address": "x"}, meta(OPERATOR))


# -- the whole life, replayed -------------------------------------------------------------


def full_life():
    resident = registered("agus")
    m = meta(OPERATOR)
    resident.move_within(OPERATOR, {"rw": 8, "rt": 2, "address": "Gg. Anggrek 1", "date": None}, m)
    resident.correct(
        OPERATOR, {"changes": {"occupation": "pensiunan"}, "reason": "typo", "note": "KK"}, m
    )
    link = {"family_id": str(uuid.uuid4()), "kk": "3275050101200003", "relationship": HEAD_REL}
    resident.set_family(OPERATOR, link, m)
    resident.record_disability(OPERATOR, disability(categories=["physical"]), m)
    resident.record_welfare(OPERATOR, {"decile": 5, "source": "dtsen", "as_of": "2026-01-01"}, m)
    resident.record_health(
        OPERATOR,
        {"chronic_conditions": ["stroke"], "care_needs": ["mobility"], "source": "puskesmas"},
        m,
    )
    resident.clear_health(OPERATOR, {"reason": "recorded_in_error", "note": "Salah orang"}, m)
    resident.report_missing(OPERATOR, {"date": "2026-02-01"}, m)
    resident.report_found(OPERATOR, {"date": "2026-02-02"}, m)
    resident.move_out(OPERATOR, {"date": "2026-02-03", "destination": {"address": "Bogor"}}, m)
    resident.move_in(
        OPERATOR,
        {"rw": 8, "rt": 2, "address": "Gg. Anggrek 1", "date": "2026-02-04", "origin": None},
        m,
    )
    resident.record_death(OPERATOR, {"date": "2026-03-01", "cause": "Sakit"}, m)
    return resident


HEAD_REL = "kepala_keluarga"


def test_full_life_fits_the_contract_and_replays():
    resident = full_life()
    assert_contract(resident)
    again = Resident.replay(resident.id, resident.pending)
    assert again.snapshot() == resident.snapshot()
    assert ResidentView().validate(resident.snapshot()) == {}
    assert len(resident.history) == len(resident.pending)
    assert resident.public == {
        "rw": 8,
        "sex": "L",
        "age_band": "75+",
        "categories": ["disability.physical", "elderly", "welfare.decile_5"],
    }


def test_events_replay_with_personal_none():
    resident = full_life()
    resident.erase(ADMIN, ERASURE, meta(ADMIN))
    again = Resident.replay(resident.id, shredded(resident))
    assert again.status == "erased" and again.personal is None
    assert again.public == resident.public
    assert [h["type"] for h in again.history] == types(resident)
    assert ResidentView().validate(again.snapshot()) == {}
    # shredded before the erasure was read back (a lost key): the state stays coherent
    partial = Resident.replay(resident.id, shredded(resident)[:-1])
    assert partial.status == "dead" and partial.personal is None
    assert partial.categories_on(TODAY) == resident.public["categories"]
    assert ResidentView().validate(partial.snapshot()) == {}
    with pytest.raises(Conflict):
        partial.correct(
            OPERATOR, {"changes": {"name": "X"}, "reason": "typo", "note": "n"}, meta(OPERATOR)
        )
    for type_, data, _ in shredded(resident):
        assert load_schema(EVENT_SCHEMAS[type_], data) == data


# -- families ---------------------------------------------------------------------------


def ids(n):
    return [str(uuid.uuid4()) for _ in range(n)]


def formed(members=None, **overrides):
    head, wife, child = ids(3)
    members = members or [
        {"resident_id": head, "relationship": "kepala_keluarga"},
        {"resident_id": wife, "relationship": "istri"},
        {"resident_id": child, "relationship": "anak"},
    ]
    data = {
        "kelurahan": KEL,
        "kk": "3275050101200003",
        "address": "Jl. Melati Raya No. 3",
        "rt": 3,
        "rw": 7,
        "members": members,
    }
    data.update(overrides)
    return Family.form(str(uuid.uuid4()), OPERATOR, data, meta(OPERATOR))


def test_form_a_family():
    family = formed()
    assert family.status == "active" and len(family.members) == 3
    assert family.head_id == family.members[0]
    assert family.pending[0][1]["public"] == {"rw": 7}
    assert FamilyView().validate(family.snapshot()) == {}
    assert_contract(family)
    two_heads = [{"resident_id": r, "relationship": HEAD_REL} for r in ids(2)]
    with pytest.raises(ValidationError):
        formed(two_heads)
    with pytest.raises(ValidationError):
        formed(kk="123")
    with pytest.raises(Conflict):
        Family.form(
            "f",
            OPERATOR,
            {**formed().pending[0][1]["personal"], "kelurahan": KEL},
            meta(OPERATOR),
            kk_taken=True,
        )
    with pytest.raises(Forbidden):
        Family.form("f", PAMOR, {"kelurahan": KEL}, meta(PAMOR))


def test_family_members_change():
    family = formed()
    head, wife, child = family.members
    grandchild = ids(1)[0]
    family.add_member(OPERATOR, {"resident_id": grandchild, "relationship": "cucu"}, meta(OPERATOR))
    with pytest.raises(Conflict):
        family.add_member(
            OPERATOR, {"resident_id": grandchild, "relationship": "cucu"}, meta(OPERATOR)
        )
    with pytest.raises(ValidationError):
        family.add_member(
            OPERATOR, {"resident_id": ids(1)[0], "relationship": HEAD_REL}, meta(OPERATOR)
        )
    family.change_relationship(
        OPERATOR, {"resident_id": grandchild, "relationship": "anak"}, meta(OPERATOR)
    )
    with pytest.raises(Conflict):
        family.remove_member(OPERATOR, {"resident_id": head, "reason": "died"}, meta(OPERATOR))
    family.change_head(
        OPERATOR,
        {"resident_id": wife, "previous_head_relationship": "suami", "relationships": {}},
        meta(OPERATOR),
    )
    assert family.head_id == wife and family.relationships[head] == "suami"
    family.remove_member(OPERATOR, {"resident_id": head, "reason": "died"}, meta(OPERATOR))
    family.move(OPERATOR, {"address": "Gg. Mawar 2", "rt": 1, "rw": 9}, meta(OPERATOR))
    assert family.rw == 9
    for member in (child, grandchild):
        family.remove_member(
            OPERATOR, {"resident_id": member, "reason": "moved_out"}, meta(OPERATOR)
        )
    family.remove_member(OPERATOR, {"resident_id": wife, "reason": "moved_out"}, meta(OPERATOR))
    assert family.status == "dissolved" and types(family)[-1] == "family.dissolved"
    with pytest.raises(Conflict):
        family.add_member(OPERATOR, {"resident_id": head, "relationship": "anak"}, meta(OPERATOR))
    assert_contract(family)
    again = Family.replay(family.id, family.pending)
    assert again.snapshot() == family.snapshot()
    blind = Family.replay(family.id, shredded(family))
    assert blind.status == "dissolved" and blind.kk is None and blind.relationships is None
    assert FamilyView().validate(blind.snapshot()) == {}


def test_split_a_family():
    family = formed()
    head, wife, child = family.members
    spouse = ids(1)[0]
    family.add_member(OPERATOR, {"resident_id": spouse, "relationship": "menantu"}, meta(OPERATOR))
    new_members = [
        {"resident_id": child, "relationship": HEAD_REL},
        {"resident_id": spouse, "relationship": "istri"},
    ]
    data = {
        "kk": "3275050202260004",
        "address": "Jl. Baru 1",
        "rt": 4,
        "rw": 7,
        "members": new_members,
    }
    with pytest.raises(Conflict):  # the source's head stays
        split(
            OPERATOR,
            family,
            str(uuid.uuid4()),
            {**data, "members": [{"resident_id": head, "relationship": HEAD_REL}]},
            meta(OPERATOR),
        )
    with pytest.raises(Conflict):  # not a member
        split(
            OPERATOR,
            family,
            str(uuid.uuid4()),
            {**data, "members": [{"resident_id": ids(1)[0], "relationship": HEAD_REL}]},
            meta(OPERATOR),
        )
    with pytest.raises(Forbidden):
        split(PAMOR, family, str(uuid.uuid4()), data, meta(PAMOR))
    before = len(family.pending)
    source, new = split(OPERATOR, family, str(uuid.uuid4()), data, meta(OPERATOR))
    assert len(family.pending) == before + 1
    assert source.members == [head, wife] and new.members == [child, spouse]
    assert new.split_from == family.id and new.head_id == child
    assert types(source)[-1] == "family.split" and types(new) == ["family.formed"]
    assert_contract(source)
    assert_contract(new)


# -- service requests -------------------------------------------------------------------


def raised(actor=PAMOR, time=NOW, **overrides):
    data = {
        "kelurahan": KEL,
        "kind": "ktp",
        "resident_id": str(uuid.uuid4()),
        "rw": 7,
        "note": "KTP hilang",
    }
    data.update(overrides)
    return ServiceRequest.raise_request(str(uuid.uuid4()), actor, data, meta(actor, time))


def test_who_raises_requests():
    assert raised(PAMOR).status == "open"
    assert raised(RW_CHAIR).status == "open"
    assert raised(RT_CHAIR, rt=3).status == "open"
    assert raised(OPERATOR, rw=12).status == "open"
    for actor, overrides in (
        (PAMOR_OTHER_RW, {}),
        (RT_CHAIR, {}),  # an RT chair must name its RT
        (RT_CHAIR, {"rt": 4}),
        (Actor("u-rw8", "ketua_rw", KEL, rw=8), {}),
        (WARGA, {}),
        (OTHER_OPERATOR, {}),
        (Actor("u-p", "pamor", KEL), {}),  # a pamor without an RW
    ):
        with pytest.raises(Forbidden):
            raised(actor, **overrides)
    with pytest.raises(ValidationError):
        raised(kind="sim")


def test_request_lifecycle_and_roles():
    request = raised(RT_CHAIR, rt=3)
    with pytest.raises(Forbidden):
        request.assign(PAMOR, {"pamor_id": "u-pamor-7b"}, meta(PAMOR))  # only to itself
    with pytest.raises(Forbidden):
        request.assign(PAMOR_OTHER_RW, {"pamor_id": "u-pamor-8"}, meta(PAMOR_OTHER_RW))
    with pytest.raises(Conflict):
        request.start(OPERATOR, meta(OPERATOR))
    request.assign(PAMOR, {"pamor_id": PAMOR.user_id}, meta(PAMOR, at(1)))
    assert request.status == "assigned" and request.assigned_to == PAMOR.user_id
    with pytest.raises(Forbidden):
        request.start(PAMOR_2, meta(PAMOR_2))  # assigned to someone else
    with pytest.raises(Forbidden):
        request.start(RT_CHAIR, meta(RT_CHAIR))
    request.start(PAMOR, meta(PAMOR, at(2)))
    with pytest.raises(ValidationError):
        request.done(PAMOR, {"outcome": "selesai"}, meta(PAMOR))
    request.done(
        PAMOR, {"outcome": "completed", "note": "Diantar ke Disdukcapil"}, meta(PAMOR, at(5))
    )
    assert request.status == "done" and request.outcome == "completed"
    assert not request.breached(at(100))
    with pytest.raises(Conflict):
        request.cancel(OPERATOR, {"reason": "Salah input"}, meta(OPERATOR))
    view = request.snapshot()
    assert view["due_at"] == at(24) and view["target_hours"] == 24 and view["breached"] is False
    assert view["raised_by"] == {"id": "u-rt", "role": "ketua_rt"}
    assert ServiceRequestView().validate(view) == {}
    assert_contract(request)
    assert ServiceRequest.replay(request.id, request.pending).snapshot() == view
    blind = ServiceRequest.replay(request.id, shredded(request))
    assert blind.personal is None and blind.status == "done"
    assert ServiceRequestView().validate(blind.snapshot()) == {}


def test_breach_of_the_24_hour_target():
    request = raised()
    assert not request.breached(at(24))
    assert request.breached(at(24.01))
    assert request.breached(datetime.fromisoformat(at(30)).astimezone(UTC))
    assert request.snapshot()["breached"] is None
    assert request.snapshot(now=at(30))["breached"] is True

    late = raised()
    late.assign(OPERATOR, {"pamor_id": "u-pamor-7"}, meta(OPERATOR, at(20)))
    late.done(PAMOR, {"outcome": "referred"}, meta(PAMOR, at(25)))
    assert late.breached(at(25)) and late.breached(NOW)

    on_time = raised()
    on_time.assign(OPERATOR, {"pamor_id": "u-pamor-7"}, meta(OPERATOR, at(1)))
    on_time.done(OPERATOR, {"outcome": "completed"}, meta(OPERATOR, at(23)))

    cancelled_late = raised()
    with pytest.raises(Forbidden):
        cancelled_late.cancel(PAMOR_2, {"reason": "x"}, meta(PAMOR_2))
    cancelled_late.cancel(PAMOR, {"reason": "Warga pindah"}, meta(PAMOR, at(48)))  # raised it
    assert cancelled_late.breached(at(48))

    counts = desk_counts([request, late, on_time, cancelled_late], at(30))
    assert counts == {
        "total": 4,
        "breached": 3,
        "done_within_target": 1,
        "open": 1,
        "assigned": 0,
        "in_progress": 0,
        "done": 2,
        "cancelled": 1,
    }


def test_reassignment_and_unknown_request():
    request = raised()
    request.assign(OPERATOR, {"pamor_id": "u-pamor-7"}, meta(OPERATOR))
    with pytest.raises(Conflict):
        request.assign(OPERATOR, {"pamor_id": "u-pamor-7"}, meta(OPERATOR))
    request.assign(PAMOR_2, {"pamor_id": PAMOR_2.user_id}, meta(PAMOR_2))
    assert request.assigned_to == PAMOR_2.user_id
    with pytest.raises(NotFound):
        ServiceRequest("x").start(OPERATOR, meta(OPERATOR))


# -- the contract as a whole ------------------------------------------------------------


def test_every_folded_event_type_has_a_schema():
    handled = set()
    for cls, prefix in ((Resident, "resident"), (Family, "family"), (ServiceRequest, "request")):
        handled |= {f"{prefix}.{name[3:]}" for name in dir(cls) if name.startswith("on_")}
    assert handled == set(EVENT_SCHEMAS)
    assert all(schema.version == 1 for schema in EVENT_SCHEMAS.values())


def test_public_parts_never_carry_personal_keys():
    aggregates = [full_life(), formed(), raised()]
    for aggregate in aggregates:
        for _, data, _ in aggregate.pending:
            assert set(data["public"]) <= {"rw", "sex", "age_band", "categories"}
            assert set(data["public"]).isdisjoint(
                {"nik", "kk", "name", "birth_date", "address", "rt", "note"}
            )
            assert set(data).isdisjoint({"nik", "kk", "name", "birth_date", "address", "note"})
