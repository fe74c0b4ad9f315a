"""Marshmallow schemas of the budget service: the single source of its contract.

- command and query schemas (RPC input), all ``unknown = RAISE``; loading one
  with :func:`load` returns JSON-native data for :mod:`services.budget.domain`
  or raises :class:`shared.errors.ValidationError`;
- event payload schemas (``data`` of stored events), in :data:`EVENT_SCHEMAS`.

Amounts are whole rupiah given as JSON integers; a float, a string or a bool is
refused, as is zero or less.
"""

import re

import marshmallow
from marshmallow import fields, validates_schema
from marshmallow.validate import Length, OneOf, Range

from services.budget.domain import ACTIVITY_KINDS, EXPENSE_STATUSES, MAX_AMOUNT, REF_KINDS
from shared.schema import (
    Command,
    Int,
    IsoDate,
    Pattern,
    Ref,
    Strict,
    Text,
    UuidStr,
)
from shared.schema import load as load  # re-exported: the service's one entry point

MIN_YEAR, MAX_YEAR = 2020, 2100
MAX_ENTRIES = 50
ACCOUNT_CODE = re.compile(r"^(source|asset|expense|payable)\.[a-z0-9][a-z0-9_-]{0,63}$")
ACTIVITY_CODE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
LINE_ID = re.compile(r"^[0-9]{4}-[a-z][a-z0-9_]{0,39}-[a-z0-9][a-z0-9_-]{0,63}$")
PSEUDONYM = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
REIMBURSEMENT_NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9./-]{0,39}$")
FORMATS = ("json", "csv")


def _amount(**kwargs):
    return Int(validate=Range(1, MAX_AMOUNT), **kwargs)


def _year(**kwargs):
    return Int(validate=Range(MIN_YEAR, MAX_YEAR), **kwargs)


def _account(**kwargs):
    return Pattern(ACCOUNT_CODE, "account code (kind.name, e.g. expense.transport)", **kwargs)


def _line_id(**kwargs):
    return Pattern(LINE_ID, "budget line id (year-activity-category)", **kwargs)


def _reason(**kwargs):
    return Text(1, 1000, **kwargs)


def _description(**kwargs):
    return Text(1, 300, multiline=False, **kwargs)


class Receipt(Strict):
    """A receipt (bukti): its number, date and the stored file."""

    number = Text(1, 50, multiline=False, required=True)
    date = IsoDate(required=True)
    file = Ref(required=True)


class Entry(Strict):
    """One side of a journal entry: a debit or a credit on one account."""

    account = _account(required=True)
    debit = Int(validate=Range(0, MAX_AMOUNT), load_default=0)
    credit = Int(validate=Range(0, MAX_AMOUNT), load_default=0)


class PostedEntry(Entry):
    line_id = _line_id(allow_none=True, load_default=None)


class SpendingRef(Strict):
    kind = fields.String(required=True, validate=OneOf(REF_KINDS))
    id = fields.String(required=True, validate=Length(1, 100))


# -- commands ---------------------------------------------------------------------------------


class OpenFiscalYear(Command):
    year = _year(required=True)


class CloseFiscalYear(Command):
    year = _year(required=True)
    reason = _reason(load_default="tutup buku")


class OpenAccount(Command):
    code = _account(required=True)
    name = Text(1, 100, multiline=False, required=True)


class PlanLine(Command):
    """A budget line (pagu) for one activity in one expense category of a fiscal year."""

    fiscal_year = _year(required=True)
    activity = Pattern(ACTIVITY_CODE, "activity code", required=True)
    activity_name = Text(1, 200, multiline=False, required=True)
    category = _account(required=True)
    source = _account(required=True)
    allocated = _amount(required=True)


class ReviseLine(Command):
    line_id = _line_id(required=True)
    allocated = _amount(required=True)
    reason = _reason(required=True)


class _Override(Command):
    """Spending may go beyond its line only with the lurah's reason."""

    override_reason = Text(1, 1000, load_default=None)


class PostTransaction(_Override):
    """A journal transaction; naming a ``line_id`` spends from that line."""

    date = IsoDate(required=True)
    description = _description(required=True)
    entries = fields.List(fields.Nested(Entry), required=True, validate=Length(2, MAX_ENTRIES))
    line_id = _line_id(load_default=None)
    receipt = fields.Nested(Receipt, load_default=None)

    @validates_schema
    def _one_side_each(self, data, **kwargs):
        for index, entry in enumerate(data.get("entries", [])):
            if bool(entry["debit"]) == bool(entry["credit"]):
                raise marshmallow.ValidationError(
                    {str(index): ["Give a debit or a credit above zero, not both."]}, "entries"
                )


class RecordExpense(_Override):
    line_id = _line_id(required=True)
    amount = _amount(required=True)
    date = IsoDate(required=True)
    description = _description(required=True)
    payee = Text(1, 100, multiline=False, load_default=None)
    receipt = fields.Nested(Receipt, load_default=None)
    activity_id = UuidStr(load_default=None)


class ExpenseCommand(Command):
    expense_id = UuidStr(required=True)


class ApproveExpense(ExpenseCommand):
    note = Text(0, 1000, load_default="")


class RejectExpense(ExpenseCommand):
    reason = _reason(required=True)


class PayExpense(ExpenseCommand):
    account = _account(load_default="asset.bank")
    paid_on = IsoDate(required=True)
    receipt = fields.Nested(Receipt, load_default=None)


class RecordAdvance(_Override):
    """Money a person (by pseudonymous id) paid out of pocket for a line."""

    person_id = Pattern(PSEUDONYM, "pseudonymous id", required=True)
    line_id = _line_id(required=True)
    amount = _amount(required=True)
    paid_on = IsoDate(required=True)
    description = _description(required=True)
    receipt = fields.Nested(Receipt, load_default=None)
    activity_id = UuidStr(load_default=None)


class ReimburseAdvance(Command):
    advance_id = UuidStr(required=True)
    number = Pattern(REIMBURSEMENT_NUMBER, "reimbursement number", required=True)
    amount = _amount(required=True)
    account = _account(load_default="asset.bank")
    paid_on = IsoDate(required=True)
    receipt = fields.Nested(Receipt, load_default=None)


class PlanActivity(Command):
    """A supervision (Binwas) visit; ``proposal_id`` links a visit to a proposal's site."""

    kind = fields.String(required=True, validate=OneOf(ACTIVITY_KINDS))
    title = Text(1, 200, multiline=False, required=True)
    planned_on = IsoDate(required=True)
    rw = Int(validate=Range(1, 99), load_default=None)
    proposal_id = UuidStr(load_default=None)
    line_id = _line_id(load_default=None)
    planned_cost = Int(validate=Range(0, MAX_AMOUNT), load_default=None)


class ActivityCommand(Command):
    activity_id = UuidStr(required=True)


class HoldActivity(ActivityCommand):
    held_on = IsoDate(required=True)
    notes = Text(0, 4000, load_default="")


class CancelActivity(ActivityCommand):
    reason = _reason(required=True)


# -- queries ----------------------------------------------------------------------------------


class IdRef(Strict):
    id = UuidStr(required=True)


class LineRef(Strict):
    line_id = _line_id(required=True)


class YearRef(Strict):
    fiscal_year = _year(required=True)


class Paged(Strict):
    page = Int(validate=Range(1, 100_000), load_default=1)
    per_page = Int(validate=Range(1, 500), load_default=50)


class ListExpenses(Paged):
    fiscal_year = _year(load_default=None)
    status = fields.String(validate=OneOf(EXPENSE_STATUSES), load_default=None)
    line_id = _line_id(load_default=None)


class ListAdvances(Paged):
    status = fields.String(validate=OneOf(("outstanding", "reimbursed")), load_default=None)
    person_id = Pattern(PSEUDONYM, "pseudonymous id", load_default=None)


class ListActivities(Paged):
    fiscal_year = _year(load_default=None)
    rw = Int(validate=Range(1, 99), load_default=None)
    status = fields.String(validate=OneOf(("planned", "held", "cancelled")), load_default=None)


class AccountEntries(Paged):
    account = _account(required=True)
    date_from = IsoDate(load_default=None)
    date_to = IsoDate(load_default=None)


class Report(Strict):
    format = fields.String(validate=OneOf(FORMATS), load_default="json")


class Realisation(Report):
    fiscal_year = _year(required=True)
    as_of = IsoDate(load_default=None)


class AsOfReport(Report):
    as_of = IsoDate(load_default=None)


class BinwasCosts(Report, YearRef):
    pass


# -- event payloads -----------------------------------------------------------------------


class Event(Strict):
    """Base of event payload schemas; bump ``version`` and add an upcaster on change."""

    version = 1


class FiscalYearOpenedEvent(Event):
    year = _year(required=True)
    starts_on = IsoDate(required=True)
    ends_on = IsoDate(required=True)


class FiscalYearClosedEvent(Event):
    year = _year(required=True)
    reason = _reason(required=True)


class AccountOpenedEvent(Event):
    code = _account(required=True)
    kind = fields.String(required=True, validate=OneOf(("source", "asset", "expense", "payable")))
    name = Text(1, 100, multiline=False, required=True)


class LinePlannedEvent(Event):
    line_id = _line_id(required=True)
    fiscal_year = _year(required=True)
    activity = Pattern(ACTIVITY_CODE, "activity code", required=True)
    activity_name = Text(1, 200, multiline=False, required=True)
    category = _account(required=True)
    source = _account(required=True)
    allocated = _amount(required=True)


class LineRevisedEvent(Event):
    allocated = _amount(required=True)
    previous = _amount(required=True)
    reason = _reason(required=True)


class LineCommittedEvent(Event):
    ref = fields.Nested(SpendingRef, required=True)
    amount = _amount(required=True)
    committed = Int(required=True, validate=Range(0, None))
    override_reason = Text(1, 1000)
    over_by = _amount()


class LineReleasedEvent(Event):
    ref = fields.Nested(SpendingRef, required=True)
    amount = _amount(required=True)
    committed = Int(required=True, validate=Range(0, None))


class LineThresholdCrossedEvent(Event):
    line_id = _line_id(required=True)
    fiscal_year = _year(required=True)
    activity = Pattern(ACTIVITY_CODE, "activity code", required=True)
    category = _account(required=True)
    allocated = _amount(required=True)
    realised = Int(required=True, validate=Range(0, None))
    percent = fields.Float(required=True)
    level = fields.String(required=True, validate=OneOf(("near", "over")))


class TransactionPostedEvent(Event):
    transaction_id = UuidStr(required=True)
    date = IsoDate(required=True)
    description = _description(required=True)
    entries = fields.List(fields.Nested(PostedEntry), required=True, validate=Length(2, None))
    ref = fields.Nested(SpendingRef, required=True)
    receipt = fields.Nested(Receipt, required=True, allow_none=True)


class ExpensePersonal(Strict):
    """Kept in the node's store, never published (``data["personal"]``)."""

    payee = Text(1, 100, multiline=False, required=True, allow_none=True)


class ExpenseRecordedEvent(Event):
    expense_id = UuidStr(required=True)
    line_id = _line_id(required=True)
    category = _account(required=True)
    amount = _amount(required=True)
    date = IsoDate(required=True)
    description = _description(required=True)
    receipt = fields.Nested(Receipt, required=True, allow_none=True)
    activity_id = UuidStr(required=True, allow_none=True)
    status = fields.String(required=True, validate=OneOf(("awaiting_approval",)))
    personal = fields.Nested(ExpensePersonal, required=True)


class ExpenseApprovedEvent(Event):
    note = Text(0, 1000, required=True)


class ExpenseRejectedEvent(Event):
    reason = _reason(required=True)


class ExpensePaidEvent(Event):
    transaction_id = UuidStr(required=True)
    account = _account(required=True)
    paid_on = IsoDate(required=True)
    receipt = fields.Nested(Receipt, required=True)


class AdvanceRecordedEvent(Event):
    advance_id = UuidStr(required=True)
    person_id = Pattern(PSEUDONYM, "pseudonymous id", required=True)
    line_id = _line_id(required=True)
    amount = _amount(required=True)
    paid_on = IsoDate(required=True)
    description = _description(required=True)
    receipt = fields.Nested(Receipt, required=True, allow_none=True)
    activity_id = UuidStr(required=True, allow_none=True)
    transaction_id = UuidStr(required=True)


class AdvanceReimbursedEvent(Event):
    advance_id = UuidStr(required=True)
    number = Pattern(REIMBURSEMENT_NUMBER, "reimbursement number", required=True)
    amount = _amount(required=True)
    account = _account(required=True)
    paid_on = IsoDate(required=True)
    transaction_id = UuidStr(required=True)
    outstanding = Int(required=True, validate=Range(0, None))


class AdvanceOverdueEvent(Event):
    advance_id = UuidStr(required=True)
    person_id = Pattern(PSEUDONYM, "pseudonymous id", required=True)
    outstanding = _amount(required=True)
    age_days = Int(required=True, validate=Range(0, None))


class ActivityPlannedEvent(Event):
    activity_id = UuidStr(required=True)
    kind = fields.String(required=True, validate=OneOf(ACTIVITY_KINDS))
    title = Text(1, 200, multiline=False, required=True)
    planned_on = IsoDate(required=True)
    rw = Int(required=True, allow_none=True, validate=Range(1, 99))
    proposal_id = UuidStr(required=True, allow_none=True)
    line_id = _line_id(required=True, allow_none=True)
    planned_cost = Int(required=True, allow_none=True, validate=Range(0, MAX_AMOUNT))


class ActivityHeldEvent(Event):
    held_on = IsoDate(required=True)
    notes = Text(0, 4000, required=True)


class ActivityCancelledEvent(Event):
    reason = _reason(required=True)


EVENT_SCHEMAS = {
    "fiscal_year.opened": FiscalYearOpenedEvent,
    "fiscal_year.closed": FiscalYearClosedEvent,
    "account.opened": AccountOpenedEvent,
    "line.planned": LinePlannedEvent,
    "line.revised": LineRevisedEvent,
    "line.committed": LineCommittedEvent,
    "line.released": LineReleasedEvent,
    "line.threshold_crossed": LineThresholdCrossedEvent,
    "transaction.posted": TransactionPostedEvent,
    "expense.recorded": ExpenseRecordedEvent,
    "expense.approved": ExpenseApprovedEvent,
    "expense.rejected": ExpenseRejectedEvent,
    "expense.paid": ExpensePaidEvent,
    "advance.recorded": AdvanceRecordedEvent,
    "advance.reimbursed": AdvanceReimbursedEvent,
    "advance.overdue": AdvanceOverdueEvent,
    "activity.planned": ActivityPlannedEvent,
    "activity.held": ActivityHeldEvent,
    "activity.cancelled": ActivityCancelledEvent,
}
