"""The kelurahan monograph, now and at a past date, in JSON and CSV."""

import csv
import io

from shared.errors import Forbidden
from tests import factories as f
from tests.citizens import people
from tests.citizens.conftest import raises, warga


def test_monograph_now_and_as_of_a_date_before_and_after_a_move_out(citizens):
    with citizens(f.operator()) as op:
        leaver = op.register(**people.person(sex="L", age=40, rw=7, entry_date="2020-01-01"))
        stayer = op.register(**people.person(sex="P", age=35, rw=8, rt=2, entry_date="2020-01-01"))
        child = op.register(**people.person(sex="P", age=4, rw=7, entry="birth"))
        op.form_family(
            kk=people.make_kk(),
            address="Jl. Flamboyan 9",
            rt=2,
            rw=8,
            members=[
                {"resident_id": stayer["id"], "relationship": "kepala_keluarga"},
                {"resident_id": child["id"], "relationship": "anak"},
            ],
        )
        op.record_disability(
            resident_id=stayer["id"],
            categories=["physical"],
            consent={"given_by": "self", "date": "2026-02-01"},
            source="home_visit",
        )
        op.move_out(
            resident_id=leaver["id"],
            date="2025-06-01",
            destination={"region": "32.16"},
            reason="work",
        )
        now = op.monograph()
        today = op.monograph(as_of=now["as_of"])  # the same figures by a scan of the spans
        before = op.monograph(as_of="2024-01-01")
        after = op.monograph(as_of="2025-07-01")
        text = op.monograph(format="csv", as_of="2024-01-01")

    assert now["current"] and now["population"] == 2 and now["families"] == 1
    assert now["by_rw"] == {"7": 1, "8": 1} and now["by_rt"] == {"7/3": 1, "8/2": 1}
    assert now["by_sex"] == {"L": 0, "P": 2}
    assert now["vulnerable"]["child"] == 1 and now["vulnerable"]["disability.physical"] == 1
    assert sum(now["by_age_band"].values()) == 2 and now["by_status"] == {"alive": 2}
    assert {**today, "current": True} == now

    # as of 2024: the leaver still lived here; the child (born about 2021-2022) too
    assert before["population"] == 3 and before["by_rw"] == {"7": 2, "8": 1}
    assert before["by_sex"] == {"L": 1, "P": 2}
    assert before["vulnerable"]["disability.physical"] == 0  # recorded in 2026
    assert before["families"] == 0  # the family card was formed in 2026
    leaver_band = before["by_age_band"]
    assert sum(leaver_band.values()) == 3 and leaver_band["0-4"] == 1
    # after the move out (1 June 2025) the leaver is no longer counted
    assert after["population"] == 2 and after["by_rw"] == {"7": 1, "8": 1}

    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["dimension", "value", "count"]
    cells = {(d, v): c for d, v, c in rows[1:]}
    assert cells[("population", "total")] == "3"
    assert cells[("rw", "7")] == "2" and cells[("sex", "L")] == "1"
    assert cells[("vulnerable", "child")] == "1"


def test_current_counts_agree_with_a_scan_of_the_spans_after_every_kind_of_change(citizens):
    """The counters kept per statement equal a count of the open spans, whether a
    statement opens or closes one span or many."""

    def agree(client):
        now = client.monograph()
        assert {**client.monograph(as_of=now["as_of"]), "current": True} == now
        return now

    payloads = [
        people.person(rw=rw, rt=rt, occupation="pedagang")
        for rw, rt in ((7, 3), (7, 4), (8, 1), (8, 1))
    ]
    rows = [{"line": n + 2, "payload": p} for n, p in enumerate(payloads)]
    with citizens(f.operator()) as op:
        op.import_residents(import_id="agree", rows=rows)
        assert agree(op)["population"] == 4
        ids = [op.find_resident_by_nik(nik=p["nik"])["id"] for p in payloads]
        op.form_family(
            kk=people.make_kk(),
            address="Jl. Flamboyan 9",
            rt=1,
            rw=8,
            members=[
                {"resident_id": ids[2], "relationship": "kepala_keluarga"},
                {"resident_id": ids[3], "relationship": "istri"},
            ],
        )
        agree(op)
        op.move_within(resident_id=ids[0], rw=9, rt=2, address="Jl. Kenari 4")
        op.correct(
            resident_id=ids[1], changes={"occupation": "guru"}, reason="typo", note="KK baru"
        )
        op.record_welfare(resident_id=ids[1], decile=2, source="dtsen", as_of="2026-01-01")
        op.record_death(resident_id=ids[3], date="2026-01-10")
        now = agree(op)
        assert now["population"] == 3 and now["by_rw"] == {"7": 1, "8": 1, "9": 1}
        assert now["vulnerable"]["welfare.decile_1_4"] == 1
    with citizens(f.lurah()) as lurah:
        lurah.erase(resident_id=ids[1], legal_basis="data_subject_request", request_reference="x")
        now = agree(lurah)
    assert now["population"] == 2 and now["vulnerable"]["welfare.decile_1_4"] == 0


def test_monograph_is_refused_to_a_resident(citizens):
    with citizens(warga()) as citizen, raises(Forbidden):
        citizen.monograph()


def test_a_pregnancy_stops_counting_thirty_days_after_its_expected_date(citizens):
    from datetime import timedelta

    from services.citizens import views

    today = views.today()
    with citizens(f.operator()) as op:
        mother = op.register(**people.person(sex="P", age=28, rw=7))
        op.record_pregnancy(
            resident_id=mother["id"], expected_date=today.isoformat(), source="posyandu"
        )
        assert op.monograph()["vulnerable"]["pregnant"] == 1
        assert [
            r["id"] for r in op.targeting(category="pregnant", purpose="kelas ibu hamil")["items"]
        ] == [mother["id"]]
        last_day, gone = (today + timedelta(days=d) for d in (30, 31))
        assert op.monograph(as_of=last_day.isoformat())["vulnerable"]["pregnant"] == 1
        assert op.monograph(as_of=gone.isoformat())["vulnerable"]["pregnant"] == 0
    db = citizens.provider.db
    assert views.monograph(db, gone, current=True)["vulnerable"]["pregnant"] == 0
    assert views.monograph(db, last_day, current=True)["vulnerable"]["pregnant"] == 1
    assert views.targeting(db, None, "pregnant", False, gone) == []
