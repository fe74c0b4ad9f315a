-- Read models and the outbox of the notify service.

-- The contact registry (a view of the contact-<user id> streams): who holds which role
-- where, how to reach them, and what they want. Addresses are personal data: they are
-- sealed in the event store and held in clear here only, on this node; erasing a
-- contact deletes its row. `phone_token` is a keyed hash of the phone number (to find
-- the contact of an inbound SMS without an index of numbers in clear).
CREATE TABLE contacts (
    user_id       text PRIMARY KEY,
    role          text NOT NULL,
    kelurahan     text NOT NULL,
    rw            integer,
    rt            integer,
    phone         text,
    email         text,
    phone_token   text,
    channels      text[] NOT NULL,          -- preferred channels, first = most preferred
    opted_out     text[] NOT NULL DEFAULT '{}',
    whatsapp_opt_in boolean NOT NULL DEFAULT false,
    version       integer NOT NULL
);
CREATE INDEX contacts_role ON contacts (kelurahan, role, rw, rt);
CREATE INDEX contacts_phone_token ON contacts (phone_token) WHERE phone_token IS NOT NULL;

-- What notify needs to remember of other services' entities to address later events.
CREATE TABLE known_proposals (
    id         text PRIMARY KEY,
    kelurahan  text NOT NULL,
    title      text NOT NULL,
    rw         integer,
    proposer   text NOT NULL                -- the pseudonymous user who submitted it
);

CREATE TABLE known_forums (
    id         text PRIMARY KEY,
    kelurahan  text NOT NULL,
    year       integer NOT NULL,
    delegates  text[] NOT NULL DEFAULT '{}'
);

-- Open service-desk requests, to tell the operator when one passes its 24-hour target.
CREATE TABLE desk_requests (
    id              text PRIMARY KEY,
    kelurahan       text NOT NULL,
    kind            text NOT NULL,
    rw              integer,
    due_at          timestamptz NOT NULL,
    closed          boolean NOT NULL DEFAULT false,
    breach_noticed  boolean NOT NULL DEFAULT false
);
CREATE INDEX desk_requests_due ON desk_requests (due_at) WHERE NOT closed AND NOT breach_noticed;

-- One row per (cause, person): the notification and its delivery. `cause` is the
-- event's source + id (or a derived cause, e.g. a breach); the unique key makes one
-- cause notify one person once. `address`, `content` hold personal data until
-- `purged_at`; the rest is the history, without personal data.
CREATE TABLE notifications (
    id                  uuid PRIMARY KEY,
    cause               text NOT NULL,
    user_id             text NOT NULL,
    event_type          text NOT NULL,
    template            text NOT NULL,
    template_version    integer NOT NULL,
    channel             text NOT NULL,
    state               text NOT NULL,
    attempts            integer NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL,
    next_attempt_at     timestamptz NOT NULL,
    held_until          timestamptz,
    lease_until         timestamptz,
    provider            text,
    provider_message_id text,
    sms_segments        integer,
    address             text,
    content             jsonb,
    read_at             timestamptz,
    purged_at           timestamptz,
    last_error          text,
    history             jsonb NOT NULL DEFAULT '[]',
    UNIQUE (cause, user_id)
);
CREATE INDEX notifications_due ON notifications (next_attempt_at)
    WHERE state IN ('created', 'temporary_failure', 'sending');
CREATE INDEX notifications_person ON notifications (user_id, created_at);
CREATE INDEX notifications_purge ON notifications (created_at) WHERE purged_at IS NULL;
