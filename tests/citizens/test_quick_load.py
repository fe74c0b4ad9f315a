"""The import's quick path through a schema: the schema's own result, or None."""

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.residents import generate
from services.citizens import schemas
from services.citizens.importer import COLUMNS, payload
from services.citizens.quick_load import quick_load
from shared.errors import ValidationError

PLACEHOLDER = "00000000-0000-4000-8000-000000000000"
ROWS = [
    payload({c: "" if r.get(c) is None else str(r[c]) for c in COLUMNS}) for r in generate(60, 5)
]
REGISTRATIONS = [
    {k: v for k, v in row.items() if k not in ("welfare", "disability")} for row in ROWS
]
WELFARE = [{**row["welfare"], "resident_id": PLACEHOLDER} for row in ROWS if "welfare" in row]
DISABILITY = [
    {**row["disability"], "resident_id": PLACEHOLDER} for row in ROWS if "disability" in row
]
# values that each trip some field of some schema, or almost do
TRICKY = [
    None, "", "  ", " Jl. Melati 3 ", "a\r\nb", "a\nb", "a\tb", "a\x00b", "a\u2028b", "\x85",
    "x" * 101, "x" * 201, "x" * 301, "x" * 1001, 0, 1, 7, 10, 11, 99, 100, -1, True, False, 1.0,
    7.5, "7", "2099-01-01", "1899-12-31", "1900-01-01", "2020-02-30", "2020-2-3", "1990-01-01",
    "2024-01-01", "3275014101900001", "3275054508900001", "32750545089000012", "32.75",
    "32.75.05.1002", "99", [], {}, ["physical"], ["physical", "physical"], ["x"],
    {"region": "32.75"}, {"region": None, "address": None}, {"address": "Jl. Kenari 4"},
    {"given_by": "self", "date": "2025-01-02"}, {"given_by": "self"}, "islam", "jedi", "L", "P",
    "move_in", "birth", "existing", "dtsen", "self", "kepala_keluarga", "wni",
    "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", PLACEHOLDER, "not-a-uuid",
]  # fmt: skip


def field_names(schema_cls):
    return [*schemas.schema_instance(schema_cls).load_fields, "unknown_field", "self_"]


def mutations(schema_cls):
    """Edits of a payload: a field set to a tricky value, or removed."""
    edit = st.tuples(st.sampled_from(field_names(schema_cls)), st.sampled_from([*TRICKY, "DEL"]))
    return st.lists(edit, max_size=4)


def mutated(base, edits):
    result = dict(base)
    for name, value in edits:
        if value == "DEL":
            result.pop(name, None)
        else:
            result[name] = value
    return result


def typed(value):
    """A form in which 1 and True, or 1 and 1.0, differ (and key order counts)."""
    return orjson.dumps(value) + repr(type(value)).encode() if value is not None else b"None"


def assert_same_as_schema(schema_cls, data):
    try:
        expected = schemas.load(schema_cls, data)
    except ValidationError:
        expected = None
    quick = quick_load(schema_cls, data)
    if expected is None:
        assert quick is None
    elif quick is not None:
        assert typed(quick) == typed(expected)
    return quick


@pytest.mark.parametrize(
    "schema_cls, valid",
    [
        (schemas.RegisterResident, REGISTRATIONS),
        (schemas.RecordWelfare, WELFARE),
        (schemas.RecordDisability, DISABILITY),
    ],
    ids=["register", "welfare", "disability"],
)
def test_valid_rows_take_the_quick_path_to_the_schemas_own_result(schema_cls, valid):
    assert valid
    for data in valid:
        assert assert_same_as_schema(schema_cls, data) is not None


@pytest.mark.parametrize(
    "schema_cls, bases",
    [
        (schemas.RegisterResident, REGISTRATIONS),
        (schemas.RecordWelfare, WELFARE),
        (schemas.RecordDisability, DISABILITY),
    ],
    ids=["register", "welfare", "disability"],
)
def test_the_quick_path_never_accepts_what_the_schema_refuses(schema_cls, bases):
    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
    @given(base=st.sampled_from(bases), edits=mutations(schema_cls))
    def check(base, edits):
        assert_same_as_schema(schema_cls, mutated(base, edits))

    check()


def test_a_payload_that_is_not_an_object_is_left_to_the_schema():
    assert quick_load(schemas.RegisterResident, ["nik"]) is None
    assert quick_load(schemas.RegisterResident, None) is None
