"""Malformed and hostile payloads against the running budget service.

Each must be refused with a typed error, no worker may die, and the store must
not change: no money moves on bad input.
"""

import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nameko.exceptions import RemoteError

from tests import factories as f
from tests.budget.conftest import expense_payload
from tests.proposals.test_hostile_input import (
    ANY_JSON,
    CONTROL,
    HUGE,
    SENDABLE_KEYS,
    SQL,
    WRONG_TYPES,
)

REFUSALS = {"ValidationError", "Conflict", "NotFound"}
VALID = {
    "post_transaction": {
        "date": "2027-04-01",
        "description": "Pindah kas ke bank",
        "entries": [
            {"account": "asset.bank", "debit": 100_000},
            {"account": "asset.cash", "credit": 100_000},
        ],
    },
    "record_expense": expense_payload(),
    "record_advance": {
        "person_id": "u-lurah",
        "line_id": "2027-binwas-transport",
        "amount": 50_000,
        "paid_on": "2027-02-01",
        "description": "Transport",
    },
    "reimburse_advance": {
        "advance_id": str(uuid.uuid4()),
        "number": "PG-1",
        "amount": 1,
        "paid_on": "2027-02-01",
    },
    "plan_line": {
        "fiscal_year": 2027,
        "activity": "posyandu",
        "activity_name": "Pembinaan Posyandu",
        "category": "expense.consumption",
        "source": "source.apbd",
        "allocated": 500_000,
    },
    "pay_expense": {"expense_id": str(uuid.uuid4()), "paid_on": "2027-02-01"},
}
MONEY = st.one_of(
    st.integers(max_value=0),
    st.integers(min_value=10**13 + 1),
    st.floats(),
    st.just("100000"),
    st.just(True),
)


def hostile_value(field):
    if field in ("amount", "allocated"):
        return MONEY
    if field == "entries":
        return st.one_of(
            st.lists(
                st.fixed_dictionaries({"account": st.just("asset.bank"), "debit": MONEY}),
                max_size=3,
            ),
            WRONG_TYPES,
        )
    if field in ("description", "activity_name"):  # free text: SQL-looking text is valid
        return st.one_of(
            HUGE, CONTROL.map(lambda c: f"Belanja {c} rutin"), st.just(" "), WRONG_TYPES
        )
    if field == "receipt":  # optional: None is a valid "no receipt"
        return st.one_of(SQL, HUGE, WRONG_TYPES.filter(lambda value: value is not None))
    return st.one_of(SQL, HUGE, WRONG_TYPES)


@st.composite
def hostile_calls(draw):
    """A command with one field made invalid, an unknown field added, or plain junk."""
    command = draw(st.sampled_from(sorted(VALID)))
    payload = dict(VALID[command])
    kind = draw(st.sampled_from(["mutate", "unknown_field", "junk"]))
    if kind == "junk":
        return command, draw(st.dictionaries(SENDABLE_KEYS, ANY_JSON, max_size=6))
    if kind == "unknown_field":
        payload[draw(SENDABLE_KEYS.filter(lambda k: k not in payload))] = draw(ANY_JSON)
        return command, payload
    field = draw(st.sampled_from(sorted(payload)))
    payload[field] = draw(hostile_value(field))
    return command, payload


def test_hostile_payloads_move_no_money_and_kill_no_worker(opened):
    with opened(f.system()) as system:
        before = system.replay(after=0, limit=5000)
    treasurer_commands = {"post_transaction", "pay_expense", "reimburse_advance"}
    with opened(f.lurah()) as lurah, opened(f.bendahara()) as bendahara:

        @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
        @given(hostile_calls())
        def storm(call):
            command, payload = call
            rpc = bendahara if command in treasurer_commands else lurah
            try:
                getattr(rpc, command)(**payload)
            except RemoteError as error:
                assert error.exc_type in REFUSALS, (
                    f"{command}: {error.exc_type}: {error.value[:200]}"
                )
            else:
                raise AssertionError(f"{command} accepted a hostile payload")

        storm()
    with opened(f.system()) as system:
        assert system.replay(after=0, limit=5000) == before
    assert not opened.container._died.ready()
