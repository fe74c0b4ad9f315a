"""Personal data: targeting and viewing are logged; erasure shreds every stored copy."""

from services.citizens.service import ACCESS_STREAM
from shared.errors import Forbidden, NotFound
from shared.pii import Protector
from tests import factories as f
from tests.citizens import people
from tests.citizens.conftest import pamor, raises
from tests.conftest import PII_MASTER_KEY


def protector(citizens):
    return Protector.from_env({"PII_MASTER_KEY": PII_MASTER_KEY}, db=citizens.provider.db)


def access_log(citizens):
    """The access-log events with their personal part opened."""
    store, db = citizens.provider.store, citizens.provider.db
    with db.connection() as conn:
        events = store.load(ACCESS_STREAM, conn)
        return [(e, protector(citizens).unseal(conn, e.data)) for e in events]


def disabled(citizens, rw):
    with citizens(f.operator()) as op:
        resident = op.register(**people.person(rw=rw))
        return op.record_disability(
            resident_id=resident["id"],
            categories=["physical"],
            consent={"given_by": "guardian", "date": "2026-02-01", "reference": "form-17"},
            source="posyandu",
        )


def test_targeting_is_scoped_and_every_query_is_logged(citizens):
    in_rw7, in_rw8 = disabled(citizens, 7), disabled(citizens, 8)
    with citizens(f.operator()) as op:
        op.register(**people.person(rw=7))  # not disabled
        everyone = op.targeting(category="disability.physical", purpose="bantuan alat bantu 2026")
        op.get_resident(resident_id=in_rw8["id"], purpose="verifikasi penerima bantuan")
    with citizens(pamor(7)) as worker:
        own = worker.targeting(category="disability.physical", purpose="kunjungan rumah RW 07")
        with raises(Forbidden):
            worker.targeting(rw=8, category="disability.physical", purpose="kunjungan RW 08")
    with citizens(f.actor("ketua_rw", rw=7)) as chair, raises(Forbidden):
        chair.targeting(category="disability.physical", purpose="kunjungan rumah RW 07")

    assert {r["id"] for r in everyone["items"]} == {in_rw7["id"], in_rw8["id"]}
    assert [r["id"] for r in own["items"]] == [in_rw7["id"]] and own["filters"]["rw"] == 7
    assert own["items"][0]["name"] == in_rw7["personal"]["name"]  # what a pamor needs

    log = access_log(citizens)
    assert [e.type for e, _ in log] == [
        "access.targeting_queried",
        "access.resident_viewed",
        "access.targeting_queried",
    ]
    first, data = log[0]
    assert first.actor == {"id": "u-operator", "role": "operator"}
    assert data["filters"] == {"rw": None, "category": "disability.physical", "living_alone": False}
    assert data["personal"]["purpose"] == "bantuan alat bantu 2026"
    assert set(data["personal"]["resident_ids"]) == {in_rw7["id"], in_rw8["id"]}
    assert log[1][1]["personal"]["resident_ids"] == [in_rw8["id"]]
    assert log[2][0].actor["role"] == "pamor"
    stored = log[2][0].data
    assert stored["personal"].keys() == {"sealed", "subject", "v"}  # who was looked at: sealed
    text = str([e.data for e, _ in log])
    assert in_rw7["personal"]["name"] not in text and in_rw7["personal"]["nik"] not in text


def test_elderly_living_alone(citizens):
    with citizens(f.operator()) as op:
        alone = op.register(**people.person(age=72))
        husband = op.register(**people.person(sex="L", age=75))
        wife = op.register(**people.person(sex="P", age=70))
        for members in ([alone], [husband, wife]):
            op.form_family(
                kk=people.make_kk(),
                address="Jl. Flamboyan 5",
                rt=3,
                rw=7,
                members=[
                    {"resident_id": r["id"], "relationship": rel}
                    for r, rel in zip(members, ("kepala_keluarga", "istri"), strict=False)
                ],
            )
        found = op.targeting(
            category="elderly", living_alone=True, purpose="pendampingan lansia sendiri"
        )
        everyone = op.targeting(category="elderly", purpose="pendataan lansia posyandu")
    assert [r["id"] for r in found["items"]] == [alone["id"]]
    assert len(everyone["items"]) == 3


def test_erasure_shreds_every_stored_copy(citizens):
    payload = people.person(rw=7)
    keeper_payload = people.person(rw=7)
    with citizens(f.operator()) as op:
        resident = op.register(**payload)
        keeper = op.register(**keeper_payload)
        rid = resident["id"]
        op.record_health(resident_id=rid, chronic_conditions=["diabetes"], source="puskesmas")
        op.move_within(resident_id=rid, rw=7, rt=4, address="Jl. Mawar 3")
        request = op.raise_request(kind="bantuan", resident_id=rid, rw=7, note="butuh kursi roda")
        assert op.monograph()["population"] == 2
        with raises(Forbidden):
            op.erase(resident_id=rid, legal_basis="data_subject_request", request_reference="x")
    with citizens(f.lurah()) as lurah:
        erased = lurah.erase(
            resident_id=rid,
            legal_basis="data_subject_request",
            request_reference="surat 470/123/Kel.Pengasinan",
        )
    assert erased["status"] == "erased" and erased["personal"] is None

    db = citizens.provider.db
    with db.connection() as conn:
        raw = [r["text"] for r in conn.execute("SELECT data::text AS text FROM events")]
        events = citizens.provider.store.read(0, 10_000, conn)
        opened = protector(citizens).unseal_many(conn, [e.data for e in events])
        leftovers = {
            table: conn.execute(
                f"SELECT count(*) AS n FROM {table} WHERE {column} = %s", [rid]
            ).fetchone()["n"]
            for table, column in (
                ("resident_view", "id"),
                ("nik_index", "resident_id"),
                ("resident_periods", "resident_id"),
            )
        }
        key = conn.execute("SELECT wrapped FROM subject_keys WHERE subject_id = %s", [rid])
        assert key.fetchone()["wrapped"] is None
        request_view = conn.execute(
            "SELECT view->'personal' AS p FROM request_view WHERE id = %s", [request["id"]]
        ).fetchone()
    for text in raw:  # nothing in clear, before or after erasure
        assert payload["name"] not in text and payload["nik"] not in text
    theirs = [
        d
        for e, d in zip(events, opened, strict=True)
        if e.stream in (f"resident-{rid}", f"request-{request['id']}")
    ]
    assert len(theirs) == 5 and all(d["personal"] is None for d in theirs)
    assert all(payload["name"] not in str(d) and payload["nik"] not in str(d) for d in opened)
    kept = [
        d for e, d in zip(events, opened, strict=True) if e.stream == f"resident-{keeper['id']}"
    ]
    assert kept[0]["personal"]["name"] == keeper_payload["name"]  # others unaffected
    assert leftovers == {"resident_view": 0, "nik_index": 0, "resident_periods": 0}
    assert request_view["p"] is None

    with citizens(f.operator()) as op:
        assert op.monograph()["population"] == 1
        with raises(NotFound):
            op.get_resident(resident_id=rid)
        with raises(NotFound):
            op.find_resident_by_nik(nik=payload["nik"])
        assert op.list_residents()["total"] == 1


def test_every_page_of_a_resident_list_is_recorded_without_the_searched_name(citizens):
    resident = disabled(citizens, 7)
    name = resident["personal"]["name"]
    with citizens(f.lurah()) as lurah:
        page = lurah.list_residents(rw=7, name=name, purpose="verifikasi data bantuan")
    assert [r["id"] for r in page["items"]] == [resident["id"]]
    event, opened = access_log(citizens)[-1]
    assert event.type == "access.residents_listed"
    assert event.actor == {"id": "u-lurah", "role": "lurah"}
    assert event.data["filters"] == {"rw": 7, "name_search": True}
    assert opened["personal"] == {
        "purpose": "verifikasi data bantuan",
        "resident_ids": [resident["id"]],
    }
    assert name.lower() not in str(event.data).lower()  # sealed, and not among the filters


def test_an_erased_resident_leaves_their_family_card(citizens):
    with citizens(f.operator()) as op:
        head = op.register(**people.person(sex="L", age=45))
        child = op.register(**people.person(age=12))
        family = op.form_family(
            kk=people.make_kk(),
            address="Jl. Flamboyan 5",
            rt=3,
            rw=7,
            members=[
                {"resident_id": head["id"], "relationship": "kepala_keluarga"},
                {"resident_id": child["id"], "relationship": "anak"},
            ],
        )
    with citizens(f.lurah()) as lurah:
        for erased in (child, head):
            lurah.erase(
                resident_id=erased["id"],
                legal_basis="data_subject_request",
                request_reference="surat 470/7/Kel.Pengasinan",
            )
            card = lurah.get_family(family_id=family["id"])
            assert erased["id"] not in str(card)
    assert card["status"] == "dissolved" and card["members"] == []
