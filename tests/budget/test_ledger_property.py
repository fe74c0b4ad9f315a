"""Random histories against the running service: the books balance at every point in time.

Hypothesis draws histories of journal postings (some unbalanced), expenses
(some beyond their line), advances and reimbursements. The test keeps its own
model of what the service should have accepted, entry by entry; after each
history the trial balance as of every date in it must equal the model's sums,
and the journal's debits must equal its credits.
"""

from collections import defaultdict
from datetime import date

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nameko.exceptions import RemoteError

from services.budget.reports import balance
from tests import factories as f
from tests.budget.conftest import YEAR, expense_payload

OPERATOR, LURAH, BENDAHARA = f.operator(), f.lurah(), f.bendahara()
JOURNAL_ACCOUNTS = ("asset.cash", "asset.bank", "source.apbd", "source.other", "expense.other")
LINES = {
    "2027-binwas-transport": ("expense.transport", 2_000_000),
    "2027-binwas-consumption": ("expense.consumption", 1_000_000),
}
PEOPLE = ("u-lurah", "u-sekel", "u-kasi")

days = st.dates(date(YEAR, 1, 5), date(YEAR, 12, 31)).map(date.isoformat)
amounts = st.integers(1, 900_000)  # the lines hold 2 and 1 million: some go over


@st.composite
def journal_posting(draw):
    """Debits and credits over the journal accounts; unbalanced one time in five."""
    total = draw(st.integers(2, 900_000))
    cut = draw(st.integers(1, total - 1))
    debit_accounts = draw(st.lists(st.sampled_from(JOURNAL_ACCOUNTS), min_size=1, max_size=2))
    credit_account = draw(st.sampled_from(JOURNAL_ACCOUNTS))
    debits = [total] if len(debit_accounts) == 1 else [cut, total - cut]
    skew = draw(st.sampled_from([0, 0, 0, 0, draw(st.integers(1, 1000))]))
    entries = [{"account": a, "debit": d} for a, d in zip(debit_accounts, debits, strict=True)]
    entries.append({"account": credit_account, "credit": total + skew})
    return ("journal", draw(days), entries)


operations = st.one_of(
    journal_posting(),
    st.tuples(st.just("expense"), days, st.sampled_from(sorted(LINES)), amounts),
    st.tuples(
        st.just("advance"), days, st.sampled_from(sorted(LINES)), amounts, st.sampled_from(PEOPLE)
    ),
    st.tuples(st.just("reimburse"), days, st.integers(0, 50), st.integers(1, 100)),
)


class Books:
    """What the service should hold: every accepted posting, and each line's commitments."""

    def __init__(self):
        self.postings = [
            ("2027-01-05", [("asset.bank", 10_000_000, 0), ("source.apbd", 0, 10_000_000)])
        ]
        self.committed = defaultdict(int)
        self.advances = []  # [advance_id, person, paid_on, outstanding]
        self.numbers = 0

    def post(self, day, *entries):
        self.postings.append((day, list(entries)))

    def fits(self, line_id, amount):
        return self.committed[line_id] + amount <= LINES[line_id][1]

    def balances(self, as_of):
        sums = defaultdict(lambda: [0, 0])
        for day, entries in self.postings:
            if day <= as_of:
                for account, debit, credit in entries:
                    sums[account][0] += debit
                    sums[account][1] += credit
        return {account: balance(account, d, c) for account, (d, c) in sums.items()}


def refused(call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except RemoteError as error:
        assert error.exc_type in ("ValidationError", "Conflict"), error.value
        return True
    return False


def test_the_books_balance_at_every_point_in_time(opened):
    books = Books()
    with opened(OPERATOR) as op, opened(LURAH) as lurah, opened(BENDAHARA) as bendahara:

        def journal(day, entries):
            debits = sum(e.get("debit", 0) for e in entries)
            unbalanced = debits != sum(e.get("credit", 0) for e in entries)
            post = bendahara.post_transaction
            assert refused(post, date=day, description="Jurnal", entries=entries) == unbalanced
            if not unbalanced:
                books.post(
                    day, *((e["account"], e.get("debit", 0), e.get("credit", 0)) for e in entries)
                )

        def expense(day, line_id, amount):
            fits = books.fits(line_id, amount)
            try:
                recorded = op.record_expense(**expense_payload(line_id, amount, date=day))
            except RemoteError as error:
                assert not fits and error.exc_type == "Conflict", error.value
                return
            assert fits
            books.committed[line_id] += amount
            lurah.approve_expense(expense_id=recorded["expense_id"])
            bendahara.pay_expense(expense_id=recorded["expense_id"], paid_on=day)
            books.post(day, (LINES[line_id][0], amount, 0), ("asset.bank", 0, amount))

        def advance(day, line_id, amount, person):
            fits = books.fits(line_id, amount)
            try:
                recorded = op.record_advance(
                    person_id=person,
                    line_id=line_id,
                    amount=amount,
                    paid_on=day,
                    description="Dibayar dulu",
                )
            except RemoteError as error:
                assert not fits and error.exc_type == "Conflict", error.value
                return
            assert fits
            books.committed[line_id] += amount
            books.advances.append([recorded["advance_id"], person, day, amount])
            books.post(day, (LINES[line_id][0], amount, 0), (f"payable.{person}", 0, amount))

        def reimburse(day, pick, percent):
            owed = [a for a in books.advances if a[3] > 0]
            if not owed:
                return
            entry = owed[pick % len(owed)]
            advance_id, person, paid_on, outstanding = entry
            amount, day = max(1, outstanding * percent // 100), max(day, paid_on)
            books.numbers += 1
            bendahara.reimburse_advance(
                advance_id=advance_id, number=f"PG-{books.numbers}", amount=amount, paid_on=day
            )
            entry[3] -= amount
            books.post(day, (f"payable.{person}", amount, 0), ("asset.bank", 0, amount))

        steps = {"journal": journal, "expense": expense, "advance": advance, "reimburse": reimburse}

        @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
        @given(st.lists(operations, min_size=1, max_size=8))
        def history(ops):
            for kind, *args in ops:
                steps[kind](*args)
            for as_of in sorted({day for _, day, *_ in ops} | {f"{YEAR}-12-31"}):
                report = lurah.trial_balance(as_of=as_of)
                assert report["totals"]["debit"] == report["totals"]["credit"]
                got = {r["account"]: r["balance"] for r in report["accounts"]}
                assert got == books.balances(as_of), as_of

        history()
