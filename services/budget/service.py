"""The budget service: the kelurahan's operational money as a double-entry ledger, over RPC.

Every command is thin: authenticate the caller, validate the payload, load what
it touches, let the domain decide, and append every changed aggregate's events
with the read models in one transaction: an expense and the line it spends
from, a payment and its journal transaction, are written together or not at
all. Commands take keyword arguments; an optional ``command_id`` (UUID) makes a
retried command take effect once. Each returns the view of what it created or
changed.
"""

import os
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from nameko.timer import timer

from services.budget import city, reports, schemas, views
from services.budget.domain import (
    ACCOUNTANTS,
    OVERDUE_DAYS,
    STAFF,
    Account,
    Activity,
    Advance,
    BudgetLine,
    Expense,
    FiscalYear,
    Transaction,
    fiscal_year_of,
    line_id_for,
    post_on_line,
    require_role,
)
from shared.actor import SYSTEM
from shared.auth import Auth
from shared.domain import meta_for
from shared.errors import Conflict, NotFound, ValidationError
from shared.repository import EventStoreProvider
from shared.rpc import rpc
from shared.service import EventSourcedService

SERVICE = "budget"
MIGRATIONS = Path(__file__).with_name("migrations")
LOCAL_TZ = ZoneInfo("Asia/Jakarta")
#: How often the service looks for advances owed longer than 30 days.
OVERDUE_CHECK_SECONDS = int(os.environ.get("BUDGET_OVERDUE_CHECK_SECONDS", "3600"))
REPORT_READERS = (*STAFF, "camat", "bappeda")


def today():
    """The date in Kota Bekasi now, as ``YYYY-MM-DD``."""
    return datetime.now(LOCAL_TZ).date().isoformat()


def new_id():
    return str(uuid.uuid4())


class BudgetService(EventSourcedService):
    name = SERVICE
    repo = EventStoreProvider(SERVICE, MIGRATIONS, schemas.EVENT_SCHEMAS, project=views.project)
    auth = Auth(SERVICE)

    # -- fiscal years, accounts, lines -------------------------------------------------------

    @rpc
    def open_fiscal_year(self, **payload):
        """Open a calendar year for budget lines and postings."""
        actor = self.auth.actor
        data = schemas.load(schemas.OpenFiscalYear, payload)
        if not self._already_done(data["command_id"]):
            year = FiscalYear.open(actor, data["year"], meta_for(actor))
            self._save_new(year, _stream("fiscal_year", data["year"]), data["command_id"])
        return self._load(FiscalYear, _stream("fiscal_year", data["year"]), data["year"]).snapshot()

    @rpc
    def close_fiscal_year(self, **payload):
        """Close a year: no posting dated in it is accepted afterwards."""
        actor = self.auth.actor
        data = schemas.load(schemas.CloseFiscalYear, payload)
        stream = _stream("fiscal_year", data["year"])
        if not self._already_done(data["command_id"]):
            year = self._load(FiscalYear, stream, data["year"])
            year.close(actor, data["reason"], meta_for(actor))
            self.repo.save((year, stream), command_id=data["command_id"])
        return self._load(FiscalYear, stream, data["year"]).snapshot()

    @rpc
    def open_account(self, **payload):
        """An account beyond the default chart, e.g. ``asset.bank_dki`` or ``expense.fuel``."""
        actor = self.auth.actor
        data = schemas.load(schemas.OpenAccount, payload)
        if not self._already_done(data["command_id"]):
            account = Account.open(actor, data["code"], data["name"], meta_for(actor))
            self._save_new(account, _stream("account", data["code"]), data["command_id"])
        return self._load(Account, _stream("account", data["code"]), data["code"]).snapshot()

    @rpc
    def plan_line(self, **payload):
        """A budget line (pagu): one activity's allocation in one expense category."""
        actor = self.auth.actor
        data = schemas.load(schemas.PlanLine, payload)
        command_id = data.pop("command_id")
        if not self._already_done(command_id):
            self._require_open_year(data["fiscal_year"])
            self._require_known_accounts([data["category"]], "category")
            line = BudgetLine.plan(actor, data, meta_for(actor))
            self._save_new(line, _stream("line", line.id), command_id)
            return line.snapshot()
        return self._line(
            line_id_for(data["fiscal_year"], data["activity"], data["category"])
        ).snapshot()

    @rpc
    def revise_line(self, **payload):
        """Change a line's allocation, with a reason; never below what it has committed."""
        actor = self.auth.actor
        data = schemas.load(schemas.ReviseLine, payload)
        line = self._line(data["line_id"])
        if not self._already_done(data["command_id"]):
            line.revise(actor, data["allocated"], data["reason"], meta_for(actor))
            self.repo.save((line, _stream("line", line.id)), command_id=data["command_id"])
        return self._line(data["line_id"]).snapshot()

    # -- the journal -----------------------------------------------------------------------

    @rpc
    def post_transaction(self, **payload):
        """A balanced journal transaction (money received, moved between cash and bank, a
        correction). Naming a ``line_id`` spends from that line, within its limit."""
        actor = self.auth.actor
        require_role(actor, ACCOUNTANTS, "post a journal transaction")
        data = schemas.load(schemas.PostTransaction, payload)
        command_id, override = data.pop("command_id"), data.pop("override_reason")
        done = self._already_done(command_id)
        if done:
            return self._view_of(done)
        # the journal's trigger refuses a date outside an open fiscal year (a Conflict)
        self._require_known_accounts([e["account"] for e in data["entries"]], "entries")
        meta, transaction_id = meta_for(actor), new_id()
        line_id = data.pop("line_id")
        if line_id is None:
            transaction = Transaction.post(transaction_id, actor, data, meta)
            changes = [(transaction, _stream("transaction", transaction_id))]
        else:
            line = self._line(line_id)
            transaction = post_on_line(actor, transaction_id, line, data, override, meta)
            changes = [
                (transaction, _stream("transaction", transaction_id)),
                (line, _stream("line", line_id)),
            ]
        stored = self.repo.save(*changes, command_id=command_id)
        return self._created(transaction, changes[0][1], stored)

    # -- expenses --------------------------------------------------------------------------

    @rpc
    def record_expense(self, **payload):
        """Spending on a line, awaiting the lurah's approval; committed against the line now."""
        actor = self.auth.actor
        data = schemas.load(schemas.RecordExpense, payload)
        command_id, override = data.pop("command_id"), data.pop("override_reason")
        done = self._already_done(command_id)
        if done:
            return self._view_of(done)
        self._require_open_year(fiscal_year_of(data["date"]), "date")
        self._require_activity(data["activity_id"])
        line = self._line(data["line_id"])
        expense = Expense.create(new_id(), actor, line, data, override, meta_for(actor))
        stream = _stream("expense", expense.id)
        stored = self.repo.save(
            (expense, stream), (line, _stream("line", line.id)), command_id=command_id
        )
        return self._created(expense, stream, stored)

    @rpc
    def approve_expense(self, **payload):
        """The lurah approves an expense someone else recorded."""
        return self._change_expense(
            schemas.ApproveExpense, payload, lambda e, a, d, m: e.approve(a, d["note"], m)
        )

    @rpc
    def reject_expense(self, **payload):
        """The lurah refuses an expense, with a reason; its line gets the amount back."""
        actor = self.auth.actor
        data = schemas.load(schemas.RejectExpense, payload)
        if not self._already_done(data["command_id"]):
            expense = self._expense(data["expense_id"])
            line = self._line(expense.line_id)
            expense.reject(actor, line, data["reason"], meta_for(actor))
            self.repo.save(
                (expense, _stream("expense", expense.id)),
                (line, _stream("line", line.id)),
                command_id=data["command_id"],
            )
        return views.get_view(self.repo.db, "expense_view", data["expense_id"], "expense")

    @rpc
    def pay_expense(self, **payload):
        """The bendahara pays an approved expense against its receipt; the journal records it."""
        actor = self.auth.actor
        data = schemas.load(schemas.PayExpense, payload)
        if not self._already_done(data["command_id"]):
            self._require_open_year(fiscal_year_of(data["paid_on"]), "paid_on")
            self._require_known_accounts([data["account"]], "account")
            expense = self._expense(data["expense_id"])
            transaction_id = new_id()
            transaction = expense.pay(
                actor,
                transaction_id,
                data["account"],
                data["paid_on"],
                data["receipt"],
                meta_for(actor),
            )
            self.repo.save(
                (expense, _stream("expense", expense.id)),
                (transaction, _stream("transaction", transaction_id)),
                command_id=data["command_id"],
            )
        return views.get_view(self.repo.db, "expense_view", data["expense_id"], "expense")

    # -- advances (out of pocket) ------------------------------------------------------------

    @rpc
    def record_advance(self, **payload):
        """Money a person paid out of pocket for a line: an expense of the line, owed to
        the person (``payable.<person_id>``) until reimbursed."""
        actor = self.auth.actor
        data = schemas.load(schemas.RecordAdvance, payload)
        command_id, override = data.pop("command_id"), data.pop("override_reason")
        done = self._already_done(command_id)
        if done:
            return self._view_of(done)
        self._require_open_year(fiscal_year_of(data["paid_on"]), "paid_on")
        self._require_activity(data["activity_id"])
        line = self._line(data["line_id"])
        advance, transaction = Advance.create(
            new_id(), actor, line, new_id(), data, override, meta_for(actor)
        )
        stream = _stream("advance", advance.id)
        stored = self.repo.save(
            (advance, stream),
            (transaction, _stream("transaction", transaction.id)),
            (line, _stream("line", line.id)),
            command_id=command_id,
        )
        return self._created(advance, stream, stored)

    @rpc
    def reimburse_advance(self, **payload):
        """The bendahara pays back part or all of an advance; a reimbursement number is
        paid once only, and never more than is owed."""
        actor = self.auth.actor
        data = schemas.load(schemas.ReimburseAdvance, payload)
        if not self._already_done(data["command_id"]):
            self._require_open_year(fiscal_year_of(data["paid_on"]), "paid_on")
            self._require_known_accounts([data["account"]], "account")
            advance = self._advance(data["advance_id"])
            transaction_id = new_id()
            transaction = advance.reimburse(actor, transaction_id, data, meta_for(actor))
            self.repo.save(
                (advance, _stream("advance", advance.id)),
                (transaction, _stream("transaction", transaction_id)),
                command_id=data["command_id"],
            )
        return views.get_view(self.repo.db, "advance_view", data["advance_id"], "advance")

    @timer(interval=OVERDUE_CHECK_SECONDS)
    def flag_overdue_on_schedule(self):
        self._flag_overdue(today())

    @rpc
    def flag_overdue_advances(self, as_of=None):
        """Record ``advance.overdue`` once for each advance owed more than 30 days on
        ``as_of`` (default: today in Kota Bekasi). The service also runs this hourly."""
        self.auth.require("system", "admin")
        day = schemas.load(schemas.AsOfReport, {"as_of": as_of})["as_of"]
        return {"flagged": self._flag_overdue(day or today())}

    def _flag_overdue(self, day):
        limit = (date.fromisoformat(day) - timedelta(days=OVERDUE_DAYS)).isoformat()
        with self.repo.db.read() as conn:
            rows = conn.execute(
                "SELECT id::text FROM advance_view WHERE status = 'outstanding'"
                " AND paid_on < %s AND NOT (view->>'overdue')::boolean",
                [limit],
            ).fetchall()
        flagged = 0
        for row in rows:
            advance = self._advance(row["id"])
            if advance.flag_overdue(day, meta_for(SYSTEM)):
                try:
                    self.repo.save((advance, _stream("advance", advance.id)))
                except Conflict:
                    continue  # changed meanwhile; the next run looks again
                flagged += 1
        return flagged

    # -- supervision (Binwas) activities ------------------------------------------------------

    @rpc
    def plan_activity(self, **payload):
        """Plan a supervision visit (an RW, a Posyandu, a funded proposal's site)."""
        actor = self.auth.actor
        data = schemas.load(schemas.PlanActivity, payload)
        command_id = data.pop("command_id")
        done = self._already_done(command_id)
        if done:
            return self._view_of(done)
        if data["line_id"] is not None:
            self._line(data["line_id"])
        activity = Activity.plan(new_id(), actor, data, meta_for(actor))
        stream = _stream("activity", activity.id)
        return self._created(
            activity, stream, self.repo.save((activity, stream), command_id=command_id)
        )

    @rpc
    def hold_activity(self, **payload):
        """Record that a planned visit took place, with its notes."""
        return self._change_activity(
            schemas.HoldActivity, payload, lambda a, x, d, m: a.hold(x, d["held_on"], d["notes"], m)
        )

    @rpc
    def cancel_activity(self, **payload):
        return self._change_activity(
            schemas.CancelActivity, payload, lambda a, x, d, m: a.cancel(x, d["reason"], m)
        )

    # -- queries ---------------------------------------------------------------------------

    @rpc
    def get_line(self, line_id):
        self.auth.require(*REPORT_READERS)
        data = schemas.load(schemas.LineRef, {"line_id": line_id})
        return views.get_view(self.repo.db, "line_view", data["line_id"], "budget line")

    @rpc
    def list_lines(self, fiscal_year):
        """The budget lines of a fiscal year, with what each has committed."""
        self.auth.require(*REPORT_READERS)
        data = schemas.load(schemas.YearRef, {"fiscal_year": fiscal_year})
        return views.lines_of_year(self.repo.db, data["fiscal_year"])

    @rpc
    def get_transaction(self, transaction_id):
        return self._get("transaction_view", "transaction", transaction_id)

    @rpc
    def get_expense(self, expense_id):
        return self._get("expense_view", "expense", expense_id)

    @rpc
    def get_advance(self, advance_id):
        return self._get("advance_view", "advance", advance_id)

    @rpc
    def get_activity(self, activity_id):
        """A supervision activity with its history and what was spent on it."""
        activity = self._get("activity_view", "activity", activity_id)
        return views.with_costs(self.repo.db, [activity])[0]

    @rpc
    def list_expenses(self, **payload):
        """Expenses by fiscal year, status and line, oldest first, a page at a time."""
        return self._list(schemas.ListExpenses, payload, "expense_view", "date, id")

    @rpc
    def list_advances(self, **payload):
        """Advances by status and person, oldest first, a page at a time."""
        return self._list(schemas.ListAdvances, payload, "advance_view", "paid_on, id")

    @rpc
    def list_activities(self, **payload):
        """Supervision activities by fiscal year, RW and status, with their costs, a page
        at a time."""
        page = self._list(schemas.ListActivities, payload, "activity_view", "planned_on, id")
        return {**page, "items": views.with_costs(self.repo.db, page["items"])}

    @rpc
    def account_entries(self, **payload):
        """An account's entries in date order, with the running balance over those shown."""
        self.auth.require(*REPORT_READERS)
        data = schemas.load(schemas.AccountEntries, payload)
        return reports.account_entries(self.repo.db, **data)

    @rpc
    def realisation(self, **payload):
        """Per line and month: what was spent as of a date (default today); json or csv."""
        self.auth.require(*REPORT_READERS)
        data = schemas.load(schemas.Realisation, payload)
        report = reports.realisation(self.repo.db, data["fiscal_year"], data["as_of"] or today())
        return _formatted(report, data["format"])

    @rpc
    def outstanding_advances(self, **payload):
        """Per person: advances still owed as of a date (default today), with their age."""
        self.auth.require(*REPORT_READERS)
        data = schemas.load(schemas.AsOfReport, payload)
        report = reports.outstanding_advances(self.repo.db, data["as_of"] or today())
        return _formatted(report, data["format"])

    @rpc
    def binwas_costs(self, **payload):
        """Per RW: supervision activities of a fiscal year and what they cost."""
        self.auth.require(*REPORT_READERS)
        data = schemas.load(schemas.BinwasCosts, payload)
        return _formatted(reports.binwas_costs(self.repo.db, data["fiscal_year"]), data["format"])

    @rpc
    def trial_balance(self, **payload):
        """Every account's debits, credits and balance as of a date (default today)."""
        self.auth.require(*REPORT_READERS)
        data = schemas.load(schemas.AsOfReport, payload)
        report = reports.trial_balance(self.repo.db, data["as_of"] or today())
        return _formatted(report, data["format"])

    @rpc
    def city_realisation(self, fiscal_year):
        """On the city node: per kelurahan, allocation and realisation of a fiscal year and
        the advances still owed (camat: their own kecamatan; bappeda, admin: all)."""
        actor = self.auth.require("camat", "bappeda", "admin")
        data = schemas.load(schemas.YearRef, {"fiscal_year": fiscal_year})
        report = city.realisation(self.repo.db, data["fiscal_year"], today())
        if actor.role == "camat":
            scope = actor.kelurahan + "."
            report["kelurahan"] = [
                k for k in report["kelurahan"] if k["kelurahan"].startswith(scope)
            ]
        return report

    # -- plumbing --------------------------------------------------------------------------

    def _already_done(self, command_id):
        return command_id is not None and self.repo.store.events_of_command(command_id)

    def _save_new(self, aggregate, stream, command_id):
        """Save a new aggregate; its stream existing already is a Conflict that says so."""
        try:
            self.repo.save((aggregate, stream), command_id=command_id)
        except Conflict:
            raise Conflict(f"{aggregate.noun} {aggregate.id} exists already") from None

    def _created(self, aggregate, stream, stored):
        """The view of what a command created: the aggregate as decided, unless a
        concurrent retry of the same command stored its own first."""
        return aggregate.snapshot() if stored[0].stream == stream else self._view_of(stored)

    def _view_of(self, events):
        """The view of what a command created: the stream of its first event."""
        kind, _, id_ = events[0].stream.partition("-")
        return views.get_view(self.repo.db, f"{kind}_view", id_, kind)

    def _load(self, cls, stream, id_):
        return self.repo.load(cls, stream, id_, cls.noun)

    def _line(self, line_id):
        return self._load(BudgetLine, _stream("line", line_id), line_id)

    def _expense(self, expense_id):
        return self._load(Expense, _stream("expense", expense_id), expense_id)

    def _advance(self, advance_id):
        return self._load(Advance, _stream("advance", advance_id), advance_id)

    def _change_expense(self, schema, payload, act):
        actor = self.auth.actor
        data = schemas.load(schema, payload)
        if not self._already_done(data["command_id"]):
            expense = self._expense(data["expense_id"])
            act(expense, actor, data, meta_for(actor))
            self.repo.save((expense, _stream("expense", expense.id)), command_id=data["command_id"])
        return views.get_view(self.repo.db, "expense_view", data["expense_id"], "expense")

    def _change_activity(self, schema, payload, act):
        actor = self.auth.actor
        data = schemas.load(schema, payload)
        if not self._already_done(data["command_id"]):
            activity = self._load(
                Activity, _stream("activity", data["activity_id"]), data["activity_id"]
            )
            act(activity, actor, data, meta_for(actor))
            self.repo.save(
                (activity, _stream("activity", activity.id)), command_id=data["command_id"]
            )
        return views.get_view(self.repo.db, "activity_view", data["activity_id"], "activity")

    def _get(self, table, noun, id_):
        self.auth.require(*REPORT_READERS)
        data = schemas.load(schemas.IdRef, {"id": id_})
        return views.get_view(self.repo.db, table, data["id"], noun)

    def _list(self, schema, payload, table, order):
        self.auth.require(*REPORT_READERS)
        filters = schemas.load(schema, payload)
        page, per_page = filters.pop("page"), filters.pop("per_page")
        return views.list_views(self.repo.db, table, filters, order, page, per_page)

    def _require_open_year(self, year, field="fiscal_year"):
        status = views.fiscal_year_status(self.repo.db, year)
        if status != "open":
            state = "is closed" if status else "was never opened"
            raise Conflict(f"fiscal year {year} {state}; {field} must fall in an open fiscal year")

    def _require_known_accounts(self, codes, field):
        unknown = views.unknown_accounts(self.repo.db, codes)
        if unknown:
            raise ValidationError(
                {field: [f"Unknown account {code}; open it first." for code in unknown]}
            )

    def _require_activity(self, activity_id):
        if activity_id is not None:
            try:
                views.get_view(self.repo.db, "activity_view", activity_id, "activity")
            except NotFound:
                raise ValidationError({"activity_id": ["No such supervision activity."]}) from None


def _formatted(report, format_):
    return reports.to_csv(report) if format_ == "csv" else report


def _stream(kind, id_):
    """The name of the stream that holds one aggregate: ``<kind>-<id>``."""
    return f"{kind}-{id_}"
