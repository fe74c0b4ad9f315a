"""Thousands of malformed and hostile payloads against the running service.

Each must be refused with a typed error (ValidationError, or Conflict for a
well-formed command the state does not allow), no worker may die, and the
store must not change.
"""

import math
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nameko.exceptions import RemoteError

from tests import factories as f

COMMANDS = (
    "submit",
    "revise",
    "verify",
    "return_for_revision",
    "reject",
    "cancel",
    "merge",
    "score",
    "forward",
    "decide",
    "report_progress",
    "schedule_forum",
    "set_criteria",
    "record_forum",
    "rank_forum",
)
REFUSALS = {"ValidationError", "Conflict"}

SQL = st.sampled_from(
    [
        "'; DROP TABLE events; --",
        "1 OR 1=1",
        "$$; SELECT pg_sleep(10); $$",
        "\\x00",
        "' UNION SELECT * FROM commands --",
    ]
)
CONTROL = st.text(
    st.characters(min_codepoint=0, max_codepoint=31, exclude_characters="\n\t"),
    min_size=1,
    max_size=5,
)
HUGE = st.integers(5_000, 200_000).map(lambda n: "x" * n)
WRONG_TYPES = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)
ANY_JSON = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)

# "self" cannot be sent as a keyword: nameko's proxy takes it itself
SENDABLE_KEYS = st.text(max_size=20).filter(lambda key: key != "self")


def hostile_values(field):
    """Values that are invalid wherever ``field`` is used, so the payload must be refused."""
    per_field = {
        "estimated_cost": st.one_of(
            st.integers(max_value=-1), st.floats(), st.just(True), st.just("100")
        ),
        "year": st.one_of(
            st.integers(max_value=2019), st.integers(min_value=2101), st.just("2027")
        ),
        "location": st.one_of(
            st.fixed_dictionaries(
                {"rw": st.just(7), "latitude": st.floats(-90, -6.46), "longitude": st.just(107.0)}
            ),
            st.fixed_dictionaries(
                {"rw": st.just(7), "latitude": st.just(math.nan), "longitude": st.just(107.0)}
            ),
            st.fixed_dictionaries({"rw": st.integers(max_value=0)}),
            WRONG_TYPES,
        ),
        "title": st.one_of(HUGE, CONTROL.map(lambda c: "Judul " + c), st.just(""), WRONG_TYPES),
        "sector": st.one_of(SQL, WRONG_TYPES),
        "proposal_id": st.one_of(SQL, st.text(max_size=10), WRONG_TYPES),
        "photos": st.one_of(
            st.lists(st.just("files/a.jpg"), min_size=4, max_size=6), SQL, WRONG_TYPES
        ),
    }
    return per_field.get(field, st.one_of(SQL, HUGE, CONTROL, WRONG_TYPES))


@st.composite
def hostile_payloads(draw):
    """A valid-looking payload with at least one invalid part, or plain junk."""
    base = {**f.proposal(), "proposal_id": str(uuid.uuid4()), "forum_id": "32.75.05.1002-2027"}
    kind = draw(st.sampled_from(["mutate", "unknown_field", "junk"]))
    if kind == "junk":
        return draw(st.dictionaries(SENDABLE_KEYS, ANY_JSON, max_size=6))
    payload = dict(base)
    if kind == "unknown_field":
        payload[draw(SENDABLE_KEYS.filter(lambda k: k not in base))] = draw(ANY_JSON)
        return payload
    field = draw(st.sampled_from(sorted(base)))
    payload[field] = draw(hostile_values(field))
    return payload


def test_hostile_payloads_are_refused_change_nothing_and_kill_no_worker(proposals):
    with proposals(f.system()) as system:
        before = system.replay(after=0, limit=5000)

    with proposals(f.operator()) as rpc:

        @settings(
            max_examples=1500,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(command=st.sampled_from(COMMANDS), payload=hostile_payloads())
        def storm(command, payload):
            try:
                getattr(rpc, command)(**payload)
            except RemoteError as error:
                assert error.exc_type in REFUSALS, (
                    f"{command}: {error.exc_type}: {error.value[:200]}"
                )
            else:
                raise AssertionError(f"{command} accepted a hostile payload")

        storm()

    with proposals(f.system()) as system:
        assert system.replay(after=0, limit=5000) == before
    with proposals(f.rt_chair()) as rpc:
        assert rpc.submit(**f.proposal())["status"] == "submitted"
    assert not proposals.container._died.ready()
