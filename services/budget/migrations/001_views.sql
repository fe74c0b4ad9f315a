-- Read models of the budget service, written in the transaction of their events.

CREATE TABLE fiscal_year_view (
    year     integer PRIMARY KEY,
    status   text NOT NULL,
    version  integer NOT NULL,
    view     jsonb NOT NULL
);

-- Accounts beyond the default chart (services.budget.domain.DEFAULT_ACCOUNTS):
-- opened ones, and a payable for every person who advanced money.
CREATE TABLE account_view (
    code  text PRIMARY KEY,
    kind  text NOT NULL,
    name  text NOT NULL
);

CREATE TABLE line_view (
    id           text PRIMARY KEY,
    fiscal_year  integer NOT NULL,
    activity     text NOT NULL,
    category     text NOT NULL,
    allocated    bigint NOT NULL,
    committed    bigint NOT NULL,
    version      integer NOT NULL,
    view         jsonb NOT NULL
);
CREATE INDEX line_view_year ON line_view (fiscal_year, id);

-- The journal: one row per entry of every posted transaction.
CREATE TABLE ledger_entry (
    transaction_id  uuid NOT NULL,
    position        smallint NOT NULL,
    date            date NOT NULL,
    account         text NOT NULL,
    debit           bigint NOT NULL CHECK (debit >= 0),
    credit          bigint NOT NULL CHECK (credit >= 0),
    line_id         text,
    ref_kind        text NOT NULL,
    ref_id          text NOT NULL,
    PRIMARY KEY (transaction_id, position)
);
CREATE INDEX ledger_entry_account ON ledger_entry (account, date);
CREATE INDEX ledger_entry_line ON ledger_entry (line_id, date) INCLUDE (debit, credit)
    WHERE line_id IS NOT NULL;
CREATE INDEX ledger_entry_ref ON ledger_entry (ref_id) WHERE account LIKE 'payable.%';

CREATE TABLE transaction_view (
    id         uuid PRIMARY KEY,
    date       date NOT NULL,
    ref_kind   text NOT NULL,
    ref_id     text NOT NULL,
    view       jsonb NOT NULL
);

CREATE TABLE expense_view (
    id           uuid PRIMARY KEY,
    fiscal_year  integer NOT NULL,
    line_id      text NOT NULL,
    status       text NOT NULL,
    amount       bigint NOT NULL,
    date         date NOT NULL,
    activity_id  uuid,
    version      integer NOT NULL,
    view         jsonb NOT NULL
);
CREATE INDEX expense_view_list ON expense_view (fiscal_year, status, date, id);
CREATE INDEX expense_view_activity ON expense_view (activity_id) WHERE activity_id IS NOT NULL;

CREATE TABLE advance_view (
    id           uuid PRIMARY KEY,
    person_id    text NOT NULL,
    line_id      text NOT NULL,
    amount       bigint NOT NULL,
    outstanding  bigint NOT NULL,
    paid_on      date NOT NULL,
    status       text NOT NULL,
    activity_id  uuid,
    version      integer NOT NULL,
    view         jsonb NOT NULL
);
CREATE INDEX advance_view_person ON advance_view (person_id, paid_on);
CREATE INDEX advance_view_outstanding ON advance_view (paid_on) WHERE status = 'outstanding';

CREATE TABLE activity_view (
    id           uuid PRIMARY KEY,
    fiscal_year  integer NOT NULL,
    kind         text NOT NULL,
    rw           integer,
    proposal_id  uuid,
    status       text NOT NULL,
    planned_on   date NOT NULL,
    version      integer NOT NULL,
    view         jsonb NOT NULL
);
CREATE INDEX activity_view_year ON activity_view (fiscal_year, rw);
