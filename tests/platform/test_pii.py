"""Personal data's guarantees (shared/pii.py, DESIGN.md "Personal data"), against the real PostgreSQL."""

import base64
import hashlib
import hmac
import logging
import re
import threading
import time

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from shared import pii
from shared.envelope import Event
from shared.errors import ConfigError, Conflict
from shared.pii import PersonalDataError, Protector, SubjectErased
from shared.store import EventStore

SOURCE = "/kelurahan/32.75.05.1002/citizens"
MASTER = base64.b64decode("q6Jm0iJx2mZ4yN1xv0c3eQbW0zLrJk0p8wVtq0n2xYU=")
SITI = {
    "nik": "3275054107900003",
    "no_kk": "3275050101090011",
    "name": "Siti Nurhaliza",
    "birth": {"date": "1990-07-01", "place": "Bekasi"},
    "address": {"street": "Jl. Pengasinan Raya 12", "rt": "003", "rw": "007"},
    "disability": ["sensory"],
    "dtsen_decile": 2,
}
BUDI = {
    "nik": "3275051203850001",
    "no_kk": "3275050101090012",
    "name": "Budi Santoso",
    "birth": {"date": "1985-03-12", "place": "Jakarta"},
    "health": {"chronic": ["diabetes"]},
}
SECRETS = [SITI["nik"], SITI["name"], SITI["no_kk"], BUDI["nik"], BUDI["name"], BUDI["no_kk"]]


@pytest.fixture
def protector(db):
    return Protector(MASTER, db=db)


def another_process(db):
    """A Protector as another process of the node sees it: same master key, empty cache."""
    return Protector(MASTER, db=db)


def seal(db, protector, subject, data):
    with db.transaction() as conn:
        return protector.seal(conn, subject, data)


def erase(db, protector, subject):
    with db.transaction() as conn:
        protector.erase(conn, subject)


def key_rows(db):
    with db.connection() as conn:
        return conn.execute("SELECT * FROM subject_keys ORDER BY subject_id").fetchall()


# -- 1. sealing ---------------------------------------------------------------


def test_seal_replaces_personal_with_a_box_bound_to_the_subject(db, protector):
    data = {"rw": "007", "sex": "P", "personal": SITI}
    sealed = seal(db, protector, "resident-1", data)
    box = sealed["personal"]
    assert set(box) == {"sealed", "subject", "v"}
    assert box["subject"] == "resident-1" and box["v"] == 1
    assert {k: v for k, v in sealed.items() if k != "personal"} == {"rw": "007", "sex": "P"}
    assert data["personal"] is SITI  # the input is not changed
    assert not any(secret in str(sealed) for secret in SECRETS)
    assert protector.unseal(None, sealed) == data


def test_seal_is_aes_256_gcm_of_the_orjson_encoding_with_a_random_nonce(db, protector, monkeypatch):
    made = []
    monkeypatch.setattr(pii, "new_data_key", lambda: made.append(pii.os.urandom(32)) or made[-1])
    first = seal(db, protector, "resident-1", {"personal": SITI})
    second = seal(db, protector, "resident-1", {"personal": SITI})
    assert len(key_rows(db)) == 1  # one key per subject: the first one made
    for sealed in (first, second):
        blob = base64.b64decode(sealed["personal"]["sealed"])
        opened = AESGCM(made[0]).decrypt(blob[:12], blob[12:], b"rembug personal v1\x00resident-1")
        assert opened == pii.orjson.dumps(SITI)
    assert first["personal"]["sealed"] != second["personal"]["sealed"]  # a fresh nonce each time


def test_data_without_personal_data_is_returned_unchanged(db, protector):
    for data in ({"rw": "007"}, {"rw": "007", "personal": None}):
        assert seal(db, protector, "resident-1", data) is data
        assert protector.unseal(None, data) is data
    assert key_rows(db) == []  # no key is made for nothing


def test_sealing_an_already_sealed_part_again_is_a_no_op_for_its_subject_only(db, protector):
    sealed = seal(db, protector, "resident-1", {"personal": SITI})
    assert seal(db, protector, "resident-1", sealed) is sealed
    with pytest.raises(PersonalDataError):
        seal(db, protector, "resident-2", sealed)


JSON_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)
SUBJECTS = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | JSON_TEXT,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(JSON_TEXT, children, max_size=4)
    ),
    max_leaves=16,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(personal=st.dictionaries(JSON_TEXT, JSON_VALUES, max_size=6), subject=SUBJECTS)
def test_any_json_native_personal_dict_round_trips_through_the_database(db, personal, subject):
    assume(not pii.is_sealed(personal))
    protector = Protector(MASTER, db=db)
    with db.transaction() as conn:
        sealed = protector.seal(conn, subject, {"n": 1, "personal": personal})
        stored = conn.execute("SELECT %s::jsonb AS data", [Jsonb(sealed)]).fetchone()["data"]
    assert another_process(db).unseal(None, stored) == {"n": 1, "personal": personal}


# -- 2. one key per subject, made in the caller's transaction -------------------


def test_the_first_seal_makes_the_key_in_the_callers_transaction(db, protector):
    with db.connection() as conn:
        with conn.transaction():
            protector.seal(conn, "resident-1", {"personal": SITI})
            assert len(conn.execute("SELECT * FROM subject_keys").fetchall()) == 1
            assert key_rows(db) == []  # not committed yet: others do not see it
        assert [r["subject_id"] for r in key_rows(db)] == ["resident-1"]
    with db.connection() as conn:
        conn.execute("BEGIN")
        protector.seal(conn, "resident-2", {"personal": BUDI})
        conn.rollback()
    assert [r["subject_id"] for r in key_rows(db)] == ["resident-1"]  # rolled back with it


def test_a_key_of_a_rolled_back_transaction_is_never_used_again(db, protector):
    """Events sealed with a key that was never stored would be lost: it must not be cached."""
    with db.connection() as conn:
        conn.execute("BEGIN")
        sealed = protector.seal(conn, "resident-1", {"personal": SITI})
        assert protector.unseal(conn, sealed)["personal"] == SITI  # read in its own transaction
        conn.rollback()
    sealed = seal(db, protector, "resident-1", {"personal": SITI})  # the key is made again
    assert len(key_rows(db)) == 1
    assert another_process(db).unseal(None, sealed)["personal"] == SITI


def test_concurrent_first_seals_of_one_subject_agree_on_one_key(db):
    first, second = another_process(db), another_process(db)
    results = {}

    def seal_meanwhile():
        results["second"] = seal(db, second, "resident-1", {"personal": BUDI})

    with db.connection() as conn:
        conn.execute("BEGIN")
        results["first"] = first.seal(conn, "resident-1", {"personal": SITI})
        thread = threading.Thread(target=seal_meanwhile)
        thread.start()
        time.sleep(0.3)
        assert "second" not in results  # waits on the first's uncommitted key
        conn.commit()
    thread.join(5)
    assert len(key_rows(db)) == 1
    reader = another_process(db)
    assert reader.unseal(None, results["first"])["personal"] == SITI
    assert reader.unseal(None, results["second"])["personal"] == BUDI


def test_seal_many_and_unseal_many_handle_a_batch_in_few_queries(db, protector):
    items = [(f"resident-{i}", {"i": i, "personal": {"name": f"Warga {i}"}}) for i in range(200)]
    with db.transaction() as conn:
        sealed = protector.seal_many(conn, items + items[:10])
    assert len(key_rows(db)) == 200
    opened = another_process(db).unseal_many(None, sealed)
    assert opened == [data for _, data in items + items[:10]]


# -- 3. keys are stored wrapped -------------------------------------------------


def test_the_keys_table_holds_no_data_key_in_clear(db, protector, monkeypatch):
    made = []
    monkeypatch.setattr(pii, "new_data_key", lambda: made.append(pii.os.urandom(32)) or made[-1])
    seal(db, protector, "resident-1", {"personal": SITI})
    seal(db, protector, "resident-2", {"personal": BUDI})
    rows = key_rows(db)
    with db.connection() as conn:
        dump = conn.execute("SELECT string_agg(t::text, ' ') AS t FROM subject_keys t").fetchone()
    assert len(made) == 2
    for key in made:
        assert all(key not in bytes(row["wrapped"]) for row in rows)
        assert key.hex() not in dump["t"] and base64.b64encode(key).decode() not in dump["t"]
    assert all(len(row["wrapped"]) == 12 + 32 + 16 for row in rows)


def test_a_wrapped_key_moved_to_another_subject_does_not_open(db, protector):
    sealed = seal(db, protector, "resident-1", {"personal": SITI})
    seal(db, protector, "resident-2", {"personal": BUDI})
    with db.transaction() as conn:
        conn.execute(
            "UPDATE subject_keys SET wrapped = (SELECT wrapped FROM subject_keys"
            " WHERE subject_id = 'resident-2') WHERE subject_id = 'resident-1'"
        )
    with pytest.raises(PersonalDataError, match="resident-1"):
        another_process(db).unseal(None, sealed)


def test_another_master_key_cannot_open_the_keys(db, protector):
    sealed = seal(db, protector, "resident-1", {"personal": SITI})
    stranger = Protector(base64.b64decode(pii.new_master_key()), db=db)
    with pytest.raises(PersonalDataError) as raised:
        stranger.unseal(None, sealed)
    assert "resident-1" in str(raised.value) and "PII_MASTER_KEY" in str(raised.value)


# -- 4. tampering fails loudly, naming the subject only -------------------------


def flip_a_byte(sealed, at):
    blob = bytearray(base64.b64decode(sealed["personal"]["sealed"]))
    blob[at] ^= 0x01
    box = dict(sealed["personal"], sealed=base64.b64encode(bytes(blob)).decode())
    return dict(sealed, personal=box)


@pytest.mark.parametrize("at", [0, 12, 20, -1])  # the nonce, the ciphertext, the tag
def test_tampered_ciphertext_fails_loudly_naming_the_subject_only(db, protector, at):
    sealed = seal(db, protector, "resident-1", {"personal": SITI})
    with pytest.raises(PersonalDataError) as raised:
        protector.unseal(None, flip_a_byte(sealed, at))
    message = str(raised.value)
    assert "resident-1" in message
    assert not any(secret in message for secret in SECRETS)
    assert raised.value.__suppress_context__  # the InvalidTag is not chained into the report


def test_a_blob_that_is_not_base64_fails_loudly(db, protector):
    sealed = seal(db, protector, "resident-1", {"personal": SITI})
    broken = dict(sealed, personal=dict(sealed["personal"], sealed="not base64!"))
    with pytest.raises(PersonalDataError, match="resident-1"):
        protector.unseal(None, broken)


def test_a_blob_moved_to_another_subject_fails(db, protector):
    sealed = seal(db, protector, "resident-1", {"personal": SITI})
    seal(db, protector, "resident-2", {"personal": BUDI})
    moved = dict(sealed, personal=dict(sealed["personal"], subject="resident-2"))
    with pytest.raises(PersonalDataError) as raised:
        protector.unseal(None, moved)
    assert "resident-2" in str(raised.value)
    assert not any(secret in str(raised.value) for secret in SECRETS)


def test_nothing_personal_reaches_a_log_line_or_an_error(db, protector, caplog):
    caplog.set_level(logging.DEBUG)
    sealed = seal(db, protector, "resident-1", {"personal": SITI})
    with pytest.raises(PersonalDataError) as raised:
        protector.unseal(None, flip_a_byte(sealed, 20))
    assert not any(secret in str(raised.value) for secret in SECRETS)
    erase(db, protector, "resident-1")
    protector.unseal(None, sealed)
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "resident-1" in logged  # the erasure is logged, by subject id
    assert not any(secret in logged for secret in SECRETS)


def test_personal_data_that_is_not_json_native_is_refused_without_echoing_it(db, protector):
    with pytest.raises(TypeError) as raised:
        seal(db, protector, "resident-1", {"personal": {"name": "Siti Nurhaliza", 1: "x"}})
    assert "resident-1" in str(raised.value) and "Siti" not in str(raised.value)
    with pytest.raises(TypeError):
        seal(db, protector, "resident-1", {"personal": "Siti Nurhaliza"})


# -- 5. erasure: crypto-shredding ----------------------------------------------


def test_after_erasure_no_stored_event_yields_the_subjects_personal_data(db, protector):
    store = EventStore(db, SOURCE)
    people = {"resident-siti": SITI, "resident-budi": BUDI}
    for subject, personal in people.items():
        changes = [
            ("resident.registered", {"rw": "007", "personal": personal}),
            ("resident.moved", {"rw": "008", "personal": {"address": personal.get("address")}}),
            ("resident.noted", {"rw": "008", "personal": {"name": personal["name"], "n": 3}}),
        ]
        with db.transaction() as conn:
            events = [
                Event(type=type_, stream=subject, data=protector.seal(conn, subject, data))
                for type_, data in changes
            ]
        store.append(subject, 0, events)
        protector.unseal(None, store.load(subject)[0].data)  # the key is now in the cache

    erase(db, protector, "resident-siti")

    with db.connection() as conn:
        raw = [r["data"] for r in conn.execute("SELECT data::text AS data FROM events")]
        keys = conn.execute("SELECT string_agg(t::text, ' ') AS t FROM subject_keys t").fetchone()
    assert len(raw) == 6
    assert not any(secret in row for row in raw for secret in SECRETS)  # (a)
    assert not any(secret in keys["t"] for secret in SECRETS)
    for reader in (protector, another_process(db)):  # (b) with a warm cache and a cold one
        siti = [reader.unseal(None, e.data) for e in store.load("resident-siti")]
        budi = [reader.unseal(None, e.data) for e in store.load("resident-budi")]
        assert [d["personal"] for d in siti] == [None, None, None]
        assert [d["rw"] for d in siti] == ["007", "008", "008"]
        assert budi[0]["personal"] == BUDI
        assert budi[2]["personal"] == {"name": "Budi Santoso", "n": 3}


def test_erase_is_idempotent_and_the_subject_stays_erased(db, protector):
    sealed = seal(db, protector, "resident-1", {"personal": SITI})
    erase(db, protector, "resident-1")
    erase(db, protector, "resident-1")
    erase(db, protector, "never-sealed")
    rows = key_rows(db)
    assert [(r["subject_id"], r["wrapped"]) for r in rows] == [
        ("never-sealed", None),
        ("resident-1", None),
    ]
    assert all(r["erased_at"] is not None for r in rows)
    assert protector.unseal(None, sealed)["personal"] is None
    for subject in ("resident-1", "never-sealed"):
        with pytest.raises(SubjectErased, match=subject) as raised:
            seal(db, another_process(db), subject, {"personal": SITI})
        assert isinstance(raised.value, Conflict)
    assert [r["wrapped"] for r in key_rows(db)] == [None, None]  # no new key was made


def test_an_erasure_that_rolls_back_erases_nothing(db, protector):
    sealed = seal(db, protector, "resident-1", {"personal": SITI})
    with db.connection() as conn:
        conn.execute("BEGIN")
        protector.erase(conn, "resident-1")
        assert protector.unseal(conn, sealed)["personal"] is None  # inside: erased
        conn.rollback()
    assert protector.unseal(None, sealed)["personal"] == SITI


def test_a_key_missing_altogether_reads_as_erased(db, protector):
    sealed = seal(db, protector, "resident-1", {"personal": SITI})
    with db.transaction() as conn:
        conn.execute("DELETE FROM subject_keys")
    assert another_process(db).unseal(None, sealed)["personal"] is None


# -- the key cache ---------------------------------------------------------------


def test_the_key_cache_is_a_bounded_lru_whose_entries_expire():
    now = [0.0]
    cache = pii._KeyCache(size=2, ttl=10, clock=lambda: now[0])
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recent
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    now[0] = 10.0
    assert cache.get("a") is None and len(cache) == 1
    cache.evict("c")
    assert len(cache) == 0


def test_unseal_uses_cached_keys_without_a_connection(db):
    protector = Protector(MASTER, db=db)
    sealed = seal(db, protector, "resident-1", {"personal": SITI})
    protector.unseal(None, sealed)  # caches the committed key
    protector.db = None
    assert protector.unseal(None, sealed)["personal"] == SITI
    with pytest.raises(RuntimeError, match="db="):
        Protector(MASTER).unseal(None, sealed)


# -- 6. pseudonyms ------------------------------------------------------------------


def test_pseudonyms_are_stable_per_node_and_differ_between_master_keys(db):
    nik = SITI["nik"]
    token = Protector(MASTER).pseudonym(nik)
    assert re.fullmatch(r"p_[a-z2-7]{26}", token)
    assert Protector(MASTER).pseudonym(nik) == token
    assert Protector(MASTER).pseudonym(nik.encode()) == token
    assert Protector(MASTER).pseudonym(BUDI["nik"]) != token
    assert Protector(base64.b64decode(pii.new_master_key())).pseudonym(nik) != token
    assert nik not in token


def test_a_pseudonym_is_hmac_sha256_under_an_hkdf_derived_key():
    key = HKDF(hashes.SHA256(), 32, salt=None, info=b"rembug pseudonym").derive(MASTER)
    digest = hmac.new(key, SITI["nik"].encode(), hashlib.sha256).digest()
    expected = "p_" + base64.b32encode(digest).decode().lower()[:26]
    assert Protector(MASTER).pseudonym(SITI["nik"]) == expected


# -- 7. configuration ---------------------------------------------------------------


def test_from_env_reads_the_master_key():
    value = pii.new_master_key()
    assert len(base64.b64decode(value)) == 32
    one = Protector.from_env({"PII_MASTER_KEY": value})
    two = Protector.from_env({"PII_MASTER_KEY": f" {value}\n"})
    assert one.pseudonym("x") == two.pseudonym("x")


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"PII_MASTER_KEY": ""},
        {"PII_MASTER_KEY": "secret-but-not-base64!"},
        {"PII_MASTER_KEY": base64.b64encode(b"16 bytes only!!!").decode()},
    ],
)
def test_a_missing_or_malformed_master_key_says_what_to_set(environ):
    with pytest.raises(ConfigError) as raised:
        Protector.from_env(environ)
    message = str(raised.value)
    assert "PII_MASTER_KEY must be 32 random bytes in base64" in message
    assert "os.urandom(32)" in message
    if environ.get("PII_MASTER_KEY"):
        assert environ["PII_MASTER_KEY"] not in message  # never echo a secret


def test_from_env_defaults_to_the_process_environment(monkeypatch):
    monkeypatch.delenv("PII_MASTER_KEY", raising=False)
    with pytest.raises(ConfigError, match="is not set"):
        Protector.from_env()
    monkeypatch.setenv("PII_MASTER_KEY", base64.b64encode(MASTER).decode())
    assert Protector.from_env().pseudonym("x") == Protector(MASTER).pseudonym("x")
