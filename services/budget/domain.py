"""The kelurahan's operational money as a double-entry ledger: pure domain, no I/O.

Every movement of money is a :class:`Transaction` whose entries balance: the
debits equal the credits, each entry one side only, in whole rupiah (``int``,
never ``float``). Accounts are named ``<kind>.<name>``; the kind fixes the
normal side:

- ``source.*``: where the money comes from (APBD operational allocation, dana
  kelurahan, the RW grant, other); credit-normal;
- ``asset.*``: cash and bank; debit-normal;
- ``expense.*``: expense categories (transport, consumption, ...); debit-normal;
- ``payable.<person_id>``: what the kelurahan owes a person who paid out of
  pocket (an :class:`Advance`) until it is reimbursed; credit-normal.

A :class:`BudgetLine` (pagu) caps one activity's spending in one category in one
:class:`FiscalYear` (a calendar year). Spending commits against its line first:
an amount that would take the line over its allocation is a Conflict that says by
how much, unless the lurah overrides it with a reason. An :class:`Expense` is
recorded by staff, approved by the lurah and paid by the bendahara, three
different people. An :class:`Advance` is money a person already paid; it is
reimbursed, in parts or at once, never beyond what is outstanding and never
twice under one reimbursement number. An :class:`Activity` is a supervision
(Binwas) visit; the spending for it names it.

Each command checks that its entity exists (NotFound), that the actor may act
(Forbidden), that the arguments are sound (ValidationError) and that the state
allows it (Conflict), and only then records events, so a refused command leaves
nothing pending. Messages name roles, accounts, lines and amounts, never a
person.
"""

from datetime import date

from shared.domain import Aggregate, json_copy
from shared.errors import Conflict, Forbidden, ValidationError

ACCOUNT_KINDS = ("source", "asset", "expense", "payable")
DEBIT_NORMAL = ("asset", "expense")
#: The chart every kelurahan starts with; more are opened with ``Account.open``.
DEFAULT_ACCOUNTS = {
    "source.apbd": "Alokasi operasional APBD",
    "source.dana_kelurahan": "Dana kelurahan",
    "source.hibah_rw": "Hibah RW",
    "source.other": "Sumber lain",
    "asset.cash": "Kas tunai",
    "asset.bank": "Rekening bank",
    "expense.transport": "Transportasi",
    "expense.consumption": "Konsumsi",
    "expense.office_supplies": "Alat tulis kantor",
    "expense.honoraria": "Honorarium",
    "expense.printing": "Cetak dan penggandaan",
    "expense.communication": "Komunikasi",
    "expense.other": "Belanja lain-lain",
}
FUNDING_SOURCES = tuple(code for code in DEFAULT_ACCOUNTS if code.startswith("source."))
ACTIVITY_KINDS = ("rw_visit", "posyandu_visit", "proposal_site", "other")
REF_KINDS = ("manual", "expense", "advance", "reimbursement")
EXPENSE_STATUSES = ("awaiting_approval", "approved", "rejected", "paid")
MAX_AMOUNT = 10**13  # whole rupiah
NEAR_LIMIT_PERCENT = 90
OVERDUE_DAYS = 30

STAFF = ("operator", "lurah", "bendahara", "admin")
RECORDERS = ("operator", "lurah", "bendahara")
APPROVERS = ("lurah",)
PAYERS = ("bendahara",)
OVERRIDERS = ("lurah",)
ACCOUNTANTS = ("bendahara", "admin")


def account_kind(code):
    """The kind of an account code (``expense.transport`` -> ``expense``)."""
    return code.split(".", 1)[0]


def payable_account(person_id):
    """The account holding what the kelurahan owes ``person_id``."""
    return f"payable.{person_id}"


def rupiah(amount):
    """An amount as people write it: ``Rp 1.250.000``."""
    sign = "-" if amount < 0 else ""
    return f"{sign}Rp {abs(amount):,}".replace(",", ".")


def fiscal_year_of(day):
    """The fiscal (calendar) year of an ISO date."""
    return date.fromisoformat(day).year


def require_in_year(field, day, year):
    """ValidationError unless the ISO date ``day`` falls in fiscal year ``year``."""
    if fiscal_year_of(day) != year:
        raise ValidationError(
            {field: [f"{day} is outside fiscal year {year} ({year}-01-01 to {year}-12-31)."]}
        )


def require_role(actor, roles, done):
    """Forbidden unless the actor holds one of ``roles``."""
    if actor.role not in roles:
        raise Forbidden(f"role {actor.role} may not {done}; it needs one of: {', '.join(roles)}")


def require_amount(field, amount):
    """ValidationError unless ``amount`` is whole rupiah, above zero, below the maximum."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise ValidationError({field: ["Must be whole rupiah (an integer)."]})
    if not 0 < amount <= MAX_AMOUNT:
        raise ValidationError({field: [f"Must be above zero and at most {rupiah(MAX_AMOUNT)}."]})


def balanced(entries):
    """The entries of a transaction, checked: each one side only, debits equal credits.

    Each entry is ``{"account", "debit", "credit"}`` (and optionally ``line_id``)
    with exactly one side above zero. Returns copies with both sides present.
    """
    if len(entries) < 2:
        raise ValidationError({"entries": ["A transaction needs at least two entries."]})
    checked, problems = [], {}
    for index, entry in enumerate(entries):
        debit, credit = entry.get("debit") or 0, entry.get("credit") or 0
        try:
            require_amount("amount", debit or credit)
            if debit and credit:
                raise ValidationError({"amount": ["Give a debit or a credit, not both."]})
        except ValidationError as error:
            problems[str(index)] = error.fields
            continue
        checked.append({**entry, "debit": debit, "credit": credit})
    if problems:
        raise ValidationError({"entries": problems})
    debits = sum(e["debit"] for e in checked)
    credits = sum(e["credit"] for e in checked)
    if debits != credits:
        raise ValidationError(
            {
                "entries": [
                    f"Debits ({rupiah(debits)}) and credits ({rupiah(credits)}) differ by "
                    f"{rupiah(abs(debits - credits))}; a transaction must balance."
                ]
            }
        )
    return checked


def _history_entry(type_, meta, **details):
    actor = meta.get("actor") or {"id": "system", "role": "system"}
    return {"type": type_, "at": meta.get("time"), "actor": dict(actor), **details}


class BudgetAggregate(Aggregate):
    """An aggregate whose view carries its history: who did what, when, and why.

    ``quiet`` names event types left out of the history unless they carry an
    override (a line's every commitment shows in the ledger instead).
    """

    quiet = ()

    def __init__(self, id):
        super().__init__(id)
        self.history = []

    def apply(self, type_, data, meta=None):
        super().apply(type_, data, meta)
        if type_ in self.quiet and "override_reason" not in data:
            return
        note = data.get("reason") or data.get("note") or data.get("override_reason")
        self.history.append(_history_entry(type_, meta or {}, **({"note": note} if note else {})))


# -- fiscal years and budget lines -----------------------------------------------------------


class FiscalYear(BudgetAggregate):
    """One calendar year of the kelurahan's budget: open for postings until closed."""

    noun = "fiscal year"

    @classmethod
    def open(cls, actor, year, meta):
        require_role(actor, STAFF, "open a fiscal year")
        fiscal_year = cls(str(year))
        fiscal_year.record(
            "fiscal_year.opened",
            {"year": year, "starts_on": f"{year}-01-01", "ends_on": f"{year}-12-31"},
            meta,
        )
        return fiscal_year

    def close(self, actor, reason, meta):
        self._require_exists()
        require_role(actor, ("lurah", "bendahara"), "close a fiscal year")
        self._require_status(["open"], "closed")
        self.record("fiscal_year.closed", {"year": self.year, "reason": reason}, meta)

    def on_opened(self, data, meta):
        self.year, self.status = data["year"], "open"

    def on_closed(self, data, meta):
        self.status = "closed"

    def snapshot(self):
        return {
            "year": self.year,
            "status": self.status,
            "version": self.version,
            "history": json_copy(self.history),
        }


def line_id_for(year, activity, category):
    """A budget line's id: one line per activity and expense category in a fiscal year."""
    return f"{year}-{activity}-{category.removeprefix('expense.')}"


class BudgetLine(BudgetAggregate):
    """The allocation (pagu) of one activity in one expense category in one fiscal year.

    ``committed`` is what recorded spending has claimed (expenses not rejected,
    advances, journal entries naming the line).
    """

    noun = "budget line"
    quiet = ("line.committed", "line.released")

    @classmethod
    def plan(cls, actor, data, meta):
        """A new line; ``data`` holds fiscal_year, activity, activity_name, category,
        source and allocated."""
        require_role(actor, STAFF, "plan a budget line")
        require_amount("allocated", data["allocated"])
        if account_kind(data["category"]) != "expense":
            raise ValidationError({"category": ["Must be an expense account (expense.*)."]})
        if data["source"] not in FUNDING_SOURCES:
            raise ValidationError({"source": [f"Must be one of: {', '.join(FUNDING_SOURCES)}."]})
        line_id = line_id_for(data["fiscal_year"], data["activity"], data["category"])
        line = cls(line_id)
        line.record("line.planned", {"line_id": line_id, **json_copy(data)}, meta)
        return line

    def revise(self, actor, allocated, reason, meta):
        """Change the allocation; never below what is already committed."""
        self._require_exists()
        require_role(actor, ("lurah", "admin"), "revise a budget line")
        require_amount("allocated", allocated)
        if allocated < self.committed:
            raise Conflict(
                f"budget line {self.id} has {rupiah(self.committed)} committed; its allocation "
                f"cannot go below that ({rupiah(self.committed - allocated)} short)"
            )
        self.record(
            "line.revised",
            {"allocated": allocated, "previous": self.allocated, "reason": reason},
            meta,
        )

    def commit(self, actor, ref, amount, day, override_reason, meta):
        """Claim ``amount`` for the spending ``ref`` dated ``day``.

        More than the line has left is a Conflict that says by how much, unless
        the lurah gives an ``override_reason``. Crossing 90 % or 100 % of the
        allocation records ``line.threshold_crossed``.
        """
        self._require_exists()
        require_amount("amount", amount)
        require_in_year("date", day, self.fiscal_year)
        excess = self.committed + amount - self.allocated
        if excess > 0 and override_reason is None:
            raise Conflict(
                f"{rupiah(amount)} would exceed budget line {self.id} by {rupiah(excess)} "
                f"(allocated {rupiah(self.allocated)}, committed {rupiah(self.committed)}); "
                "the lurah may override it with a reason"
            )
        if override_reason is not None:
            require_role(actor, OVERRIDERS, "override a budget line's limit")
            if excess <= 0:
                raise ValidationError(
                    {"override_reason": ["The line has room for this amount; give no override."]}
                )
        before = self._percent(self.committed)
        data = {"ref": json_copy(ref), "amount": amount, "committed": self.committed + amount}
        if override_reason is not None:
            data["override_reason"] = override_reason
            data["over_by"] = excess
        self.record("line.committed", data, meta)
        self._record_threshold(before, meta)

    def release(self, ref, meta):
        """Give back what ``ref`` committed (a rejected expense)."""
        amount = self.commitments.get(_ref_key(ref))
        if amount is None:
            return
        self.record(
            "line.released",
            {"ref": json_copy(ref), "amount": amount, "committed": self.committed - amount},
            meta,
        )

    def _percent(self, committed):
        return committed * 100 / self.allocated

    def _record_threshold(self, before, meta):
        after = self._percent(self.committed)
        if before <= 100 < after:
            level = "over"
        elif before < NEAR_LIMIT_PERCENT <= after:
            level = "near"
        else:
            return
        self.record(
            "line.threshold_crossed",
            {
                "line_id": self.id,
                "fiscal_year": self.fiscal_year,
                "activity": self.activity,
                "category": self.category,
                "allocated": self.allocated,
                "realised": self.committed,
                "percent": round(after, 1),
                "level": level,
            },
            meta,
        )

    def on_planned(self, data, meta):
        self.status = "open"
        self.fiscal_year, self.activity = data["fiscal_year"], data["activity"]
        self.activity_name, self.category = data["activity_name"], data["category"]
        self.source, self.allocated = data["source"], data["allocated"]
        self.committed, self.commitments = 0, {}

    def on_revised(self, data, meta):
        self.allocated = data["allocated"]

    def on_committed(self, data, meta):
        self.committed = data["committed"]
        self.commitments[_ref_key(data["ref"])] = data["amount"]

    def on_released(self, data, meta):
        self.committed = data["committed"]
        self.commitments.pop(_ref_key(data["ref"]), None)

    def snapshot(self):
        return {
            "id": self.id,
            "fiscal_year": self.fiscal_year,
            "activity": self.activity,
            "activity_name": self.activity_name,
            "category": self.category,
            "source": self.source,
            "allocated": self.allocated,
            "committed": self.committed,
            "remaining": self.allocated - self.committed,
            "version": self.version,
            "history": json_copy(self.history),
        }


def _ref_key(ref):
    return f"{ref['kind']}:{ref['id']}"


# -- the journal ---------------------------------------------------------------------------


class Transaction(BudgetAggregate):
    """One balanced journal transaction; posted once, never changed."""

    noun = "transaction"

    @classmethod
    def post(cls, id, actor, data, meta):
        """Post ``data``: date, description, entries, ref ({kind, id}), receipt.

        The entries must balance (:func:`balanced`); an entry on a budget line
        carries its ``line_id``.
        """
        entries = balanced(data["entries"])
        transaction = cls(id)
        transaction.record(
            "transaction.posted",
            {
                "transaction_id": id,
                "date": data["date"],
                "description": data["description"],
                "entries": json_copy(entries),
                "ref": json_copy(data.get("ref") or {"kind": "manual", "id": id}),
                "receipt": json_copy(data.get("receipt")),
            },
            meta,
        )
        return transaction

    def on_posted(self, data, meta):
        self.status = "posted"
        self.data = data

    def snapshot(self):
        """The posting as recorded, and its version (the journal's trigger writes the
        same view from the event)."""
        return {**json_copy(self.data), "version": self.version}


def line_entries(entries, line):
    """Entries with ``line_id`` set on those on the line's category; the amount they net
    to the line (debits less credits), which must be above zero."""
    tagged, net = [], 0
    for entry in entries:
        if entry["account"] == line.category:
            entry = {**entry, "line_id": line.id}
            net += (entry.get("debit") or 0) - (entry.get("credit") or 0)
        tagged.append(entry)
    if net <= 0:
        raise ValidationError(
            {
                "entries": [
                    f"A transaction on line {line.id} must debit its category {line.category}."
                ]
            }
        )
    return tagged, net


def post_on_line(actor, transaction_id, line, data, override_reason, meta):
    """A journal transaction that spends from ``line``: the line commits the net amount."""
    entries, net = line_entries(data["entries"], line)
    ref = {"kind": "manual", "id": transaction_id}
    line.commit(actor, ref, net, data["date"], override_reason, meta)
    return Transaction.post(transaction_id, actor, {**data, "entries": entries, "ref": ref}, meta)


# -- expenses: recorded, approved, paid by three people -------------------------------------


class Expense(BudgetAggregate):
    noun = "expense"

    @classmethod
    def create(cls, id, actor, line, data, override_reason, meta):
        """Staff record spending on ``line``; it commits against the line at once and
        awaits the lurah's approval. ``data``: amount, date, description, payee,
        receipt, activity_id."""
        require_role(actor, RECORDERS, "record an expense")
        line._require_exists()
        line.commit(
            actor,
            {"kind": "expense", "id": id},
            data["amount"],
            data["date"],
            override_reason,
            meta,
        )
        expense = cls(id)
        expense.record(
            "expense.recorded",
            {
                "expense_id": id,
                "line_id": line.id,
                "category": line.category,
                "amount": data["amount"],
                "date": data["date"],
                "description": data["description"],
                "receipt": json_copy(data.get("receipt")),
                "activity_id": data.get("activity_id"),
                "status": "awaiting_approval",
                # who was paid may be a person: kept on the node, never published
                "personal": {"payee": data.get("payee")},
            },
            meta,
        )
        return expense

    def approve(self, actor, note, meta):
        self._require_exists()
        require_role(actor, APPROVERS, "approve an expense")
        if actor.user_id == self.recorded_by:
            raise Forbidden("nobody approves an expense they recorded themselves")
        self._require_status(["awaiting_approval"], "approved")
        self.record("expense.approved", {"note": note}, meta)

    def reject(self, actor, line, reason, meta):
        """The lurah refuses it; the line gets the amount back."""
        self._require_exists()
        require_role(actor, APPROVERS, "reject an expense")
        self._require_status(["awaiting_approval", "approved"], "rejected")
        self.record("expense.rejected", {"reason": reason}, meta)
        line.release({"kind": "expense", "id": self.id}, meta)

    def pay(self, actor, transaction_id, account, paid_on, receipt, meta):
        """The bendahara pays an approved expense from cash or bank; returns the posting."""
        self._require_exists()
        require_role(actor, PAYERS, "pay an expense")
        if actor.user_id in (self.recorded_by, self.approved_by):
            raise Forbidden("nobody pays an expense they recorded or approved themselves")
        self._require_status(["approved"], "paid")
        if account_kind(account) != "asset":
            raise ValidationError({"account": ["Pay from a cash or bank account (asset.*)."]})
        receipt = receipt or self.receipt
        if receipt is None:
            raise ValidationError({"receipt": ["An expense is paid against a receipt; give one."]})
        require_in_year("paid_on", paid_on, fiscal_year_of(self.date))
        transaction = Transaction.post(
            transaction_id,
            actor,
            {
                "date": paid_on,
                "description": self.description,
                "entries": [
                    {"account": self.category, "debit": self.amount, "line_id": self.line_id},
                    {"account": account, "credit": self.amount},
                ],
                "ref": {"kind": "expense", "id": self.id},
                "receipt": receipt,
            },
            meta,
        )
        self.record(
            "expense.paid",
            {
                "transaction_id": transaction_id,
                "account": account,
                "paid_on": paid_on,
                "receipt": json_copy(receipt),
            },
            meta,
        )
        return transaction

    def on_recorded(self, data, meta):
        self.status = "awaiting_approval"
        self.line_id, self.category = data["line_id"], data["category"]
        self.amount, self.date = data["amount"], data["date"]
        self.description, self.receipt = data["description"], data["receipt"]
        personal = data.get("personal") or {}
        self.data = {**{k: v for k, v in data.items() if k != "personal"}, **personal}
        self.recorded_by = (meta.get("actor") or {}).get("id")
        self.approved_by = self.paid_by = None

    def on_approved(self, data, meta):
        self.status = "approved"
        self.approved_by = (meta.get("actor") or {}).get("id")

    def on_rejected(self, data, meta):
        self.status = "rejected"

    def on_paid(self, data, meta):
        self.status = "paid"
        self.paid_by = (meta.get("actor") or {}).get("id")
        self.receipt = data["receipt"]
        self.payment = dict(data)

    def snapshot(self):
        return {
            **json_copy(self.data),
            "status": self.status,
            "receipt": json_copy(self.receipt),
            "recorded_by": self.recorded_by,
            "approved_by": self.approved_by,
            "paid_by": self.paid_by,
            "payment": json_copy(getattr(self, "payment", None)),
            "version": self.version,
            "history": json_copy(self.history),
        }


# -- advances: money a person paid out of pocket --------------------------------------------


class Advance(BudgetAggregate):
    noun = "advance"

    @classmethod
    def create(cls, id, actor, line, transaction_id, data, override_reason, meta):
        """Record what ``data["person_id"]`` paid for ``line``; returns the advance and its
        posting (the expense, owed to the person until reimbursed)."""
        require_role(actor, RECORDERS, "record an advance")
        line._require_exists()
        ref = {"kind": "advance", "id": id}
        line.commit(actor, ref, data["amount"], data["paid_on"], override_reason, meta)
        payable = payable_account(data["person_id"])
        transaction = Transaction.post(
            transaction_id,
            actor,
            {
                "date": data["paid_on"],
                "description": data["description"],
                "entries": [
                    {"account": line.category, "debit": data["amount"], "line_id": line.id},
                    {"account": payable, "credit": data["amount"]},
                ],
                "ref": ref,
                "receipt": data.get("receipt"),
            },
            meta,
        )
        advance = cls(id)
        advance.record(
            "advance.recorded",
            {
                "advance_id": id,
                "person_id": data["person_id"],
                "line_id": line.id,
                "amount": data["amount"],
                "paid_on": data["paid_on"],
                "description": data["description"],
                "receipt": json_copy(data.get("receipt")),
                "activity_id": data.get("activity_id"),
                "transaction_id": transaction_id,
            },
            meta,
        )
        return advance, transaction

    def reimburse(self, actor, transaction_id, data, meta):
        """The bendahara pays back part or all of what is outstanding, under a
        reimbursement number that can be paid only once; returns the posting."""
        self._require_exists()
        require_role(actor, PAYERS, "reimburse an advance")
        if actor.user_id == self.person_id:
            raise Forbidden("nobody reimburses themselves; another bendahara must pay it")
        number, amount = data["number"], data["amount"]
        require_amount("amount", amount)
        if number in self.reimbursements:
            raise Conflict(
                f"reimbursement {number} of advance {self.id} was already paid "
                f"({rupiah(self.reimbursements[number])}); it cannot be paid twice"
            )
        self._require_status(["outstanding"], "reimbursed")
        if amount > self.outstanding:
            raise Conflict(
                f"{rupiah(amount)} exceeds what advance {self.id} still owes "
                f"({rupiah(self.outstanding)}) by {rupiah(amount - self.outstanding)}"
            )
        if account_kind(data["account"]) != "asset":
            raise ValidationError({"account": ["Pay from a cash or bank account (asset.*)."]})
        if data["paid_on"] < self.paid_on:
            raise ValidationError({"paid_on": ["A reimbursement cannot precede the advance."]})
        transaction = Transaction.post(
            transaction_id,
            actor,
            {
                "date": data["paid_on"],
                "description": f"Penggantian {number}",
                "entries": [
                    {"account": payable_account(self.person_id), "debit": amount},
                    {"account": data["account"], "credit": amount},
                ],
                "ref": {"kind": "reimbursement", "id": self.id},
                "receipt": data.get("receipt"),
            },
            meta,
        )
        self.record(
            "advance.reimbursed",
            {
                "advance_id": self.id,
                "number": number,
                "amount": amount,
                "account": data["account"],
                "paid_on": data["paid_on"],
                "transaction_id": transaction_id,
                "outstanding": self.outstanding - amount,
            },
            meta,
        )
        return transaction

    def flag_overdue(self, today, meta):
        """Record once that the advance has been owed for more than 30 days; True if it did."""
        age = (date.fromisoformat(today) - date.fromisoformat(self.paid_on)).days
        if self.status != "outstanding" or self.overdue or age <= OVERDUE_DAYS:
            return False
        self.record(
            "advance.overdue",
            {
                "advance_id": self.id,
                "person_id": self.person_id,
                "outstanding": self.outstanding,
                "age_days": age,
            },
            meta,
        )
        return True

    def on_recorded(self, data, meta):
        self.status = "outstanding"
        self.data = dict(data)
        self.person_id, self.paid_on = data["person_id"], data["paid_on"]
        self.outstanding, self.reimbursements, self.overdue = data["amount"], {}, False

    def on_reimbursed(self, data, meta):
        self.outstanding = data["outstanding"]
        self.reimbursements[data["number"]] = data["amount"]
        if self.outstanding == 0:
            self.status = "reimbursed"

    def on_overdue(self, data, meta):
        self.overdue = True

    def snapshot(self):
        return {
            **json_copy(self.data),
            "status": self.status,
            "outstanding": self.outstanding,
            "reimbursements": [
                {"number": number, "amount": amount}
                for number, amount in self.reimbursements.items()
            ],
            "overdue": self.overdue,
            "version": self.version,
            "history": json_copy(self.history),
        }


# -- supervision (Binwas) activities ---------------------------------------------------------


class Activity(BudgetAggregate):
    """A planned supervision visit; held or cancelled. Spending names it by id."""

    noun = "activity"

    @classmethod
    def plan(cls, id, actor, data, meta):
        """``data``: kind, title, planned_on, rw, proposal_id, line_id, planned_cost.
        A visit to a proposal's site names the proposal."""
        require_role(actor, STAFF, "plan a supervision activity")
        if data["kind"] == "proposal_site" and not data.get("proposal_id"):
            raise ValidationError({"proposal_id": ["A visit to a proposal's site names it."]})
        if data.get("planned_cost"):
            require_amount("planned_cost", data["planned_cost"])
        activity = cls(id)
        activity.record("activity.planned", {"activity_id": id, **json_copy(data)}, meta)
        return activity

    def hold(self, actor, held_on, notes, meta):
        self._require_exists()
        require_role(actor, STAFF, "record a supervision activity")
        self._require_status(["planned"], "recorded as held")
        self.record("activity.held", {"held_on": held_on, "notes": notes}, meta)

    def cancel(self, actor, reason, meta):
        self._require_exists()
        require_role(actor, STAFF, "cancel a supervision activity")
        self._require_status(["planned"], "cancelled")
        self.record("activity.cancelled", {"reason": reason}, meta)

    def on_planned(self, data, meta):
        self.status = "planned"
        self.data = dict(data)

    def on_held(self, data, meta):
        self.status = "held"
        self.data.update(held_on=data["held_on"], notes=data["notes"])

    def on_cancelled(self, data, meta):
        self.status = "cancelled"

    def snapshot(self):
        return {
            "held_on": None,
            "notes": None,
            **json_copy(self.data),
            "status": self.status,
            "version": self.version,
            "history": json_copy(self.history),
        }


class Account(BudgetAggregate):
    """An account beyond the default chart (a second bank account, a new category)."""

    noun = "account"

    @classmethod
    def open(cls, actor, code, name, meta):
        require_role(actor, ACCOUNTANTS + ("lurah",), "open an account")
        if account_kind(code) not in ACCOUNT_KINDS or "." not in code:
            raise ValidationError(
                {"code": [f"Must be <kind>.<name>, kind one of: {', '.join(ACCOUNT_KINDS)}."]}
            )
        if code in DEFAULT_ACCOUNTS:
            raise Conflict(f"account {code} is in the default chart already")
        account = cls(code)
        account.record(
            "account.opened", {"code": code, "kind": account_kind(code), "name": name}, meta
        )
        return account

    def on_opened(self, data, meta):
        self.status = "open"
        self.data = dict(data)

    def snapshot(self):
        return {**json_copy(self.data), "status": self.status, "version": self.version}
