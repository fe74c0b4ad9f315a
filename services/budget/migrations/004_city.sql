-- The city node's view of every kelurahan's operational budget, from the
-- replicated events (services/budget/city.py). (Empty on a kelurahan node.)

CREATE TABLE city_lines (
    kelurahan    text NOT NULL,
    line_id      text NOT NULL,
    fiscal_year  integer NOT NULL,
    allocated    bigint NOT NULL,
    PRIMARY KEY (kelurahan, line_id)
);

CREATE TABLE city_spending (
    kelurahan       text NOT NULL,
    transaction_id  uuid NOT NULL,
    position        smallint NOT NULL,
    date            date NOT NULL,
    line_id         text NOT NULL,
    amount          bigint NOT NULL,  -- debit less credit on the line's category
    PRIMARY KEY (kelurahan, transaction_id, position)
);
CREATE INDEX city_spending_line ON city_spending (kelurahan, line_id);

CREATE TABLE city_advances (
    kelurahan    text NOT NULL,
    advance_id   uuid NOT NULL,
    paid_on      date NOT NULL,
    amount       bigint NOT NULL,
    outstanding  bigint NOT NULL,
    PRIMARY KEY (kelurahan, advance_id)
);
