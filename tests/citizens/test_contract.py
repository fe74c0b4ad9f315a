"""Every event the citizens service publishes fits the generated AsyncAPI contract."""

from jsonschema import Draft7Validator

from shared import asyncapi
from tests import factories as f
from tests.citizens import people
from tests.citizens.conftest import pamor


def test_published_citizens_events_fit_the_contract_and_carry_no_personal_part(citizens):
    worker = pamor(7)
    with citizens(f.operator()) as op:
        resident = op.register(**people.person(rw=7))
        rid = resident["id"]
        op.move_within(resident_id=rid, address="Jl. Kenari 4", rt=2, rw=7, date="2026-03-01")
        op.record_disability(
            resident_id=rid,
            categories=["sensory"],
            consent={"given_by": "self", "date": "2026-03-02", "reference": "form-3"},
            source="posyandu",
        )
        op.record_welfare(resident_id=rid, decile=3, source="dtsen", as_of="2025-12-01")
        op.targeting(category="welfare.decile_1_4", purpose="penyaluran bantuan pangan 2026")
    with citizens(worker) as desk:
        request = desk.raise_request(kind="ktp", resident_id=rid, rw=7, note="KTP rusak")
        desk.assign_request(request_id=request["id"], pamor_id=worker.user_id)
    with citizens(f.lurah()) as lurah:
        lurah.erase(
            resident_id=rid, legal_basis="data_subject_request", request_reference="surat 1"
        )
    with citizens(f.system()) as system:
        published = system.replay(after=0, limit=1000)

    doc = asyncapi.document()
    assert len({e["type"] for e in published}) >= 8
    for cloudevent in published:
        assert "personal" not in cloudevent["data"]
        payload = doc["components"]["messages"][cloudevent["type"]]["payload"]
        problems = [e.message for e in Draft7Validator(payload).iter_errors(cloudevent)]
        assert not problems, (cloudevent["type"], problems)
