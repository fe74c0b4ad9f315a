-- The event store: one log per service, gap-free sequence, one writer per stream.

CREATE TABLE events (
    sequence        bigint PRIMARY KEY,          -- position in this source's log, gap-free
    id              uuid NOT NULL UNIQUE,
    stream          text NOT NULL,
    version         integer NOT NULL,            -- position in the stream, from 1
    type            text NOT NULL,
    time            timestamptz NOT NULL,
    data            jsonb NOT NULL,
    data_version    integer NOT NULL,
    correlation_id  text,
    causation_id    text,
    actor           jsonb NOT NULL,
    command_id      text,
    UNIQUE (stream, version)
);
CREATE INDEX events_command_id ON events (command_id) WHERE command_id IS NOT NULL;

CREATE TABLE streams (
    stream   text PRIMARY KEY,
    version  integer NOT NULL
);

-- The single row whose lock orders all appends: a sequence is handed out only
-- after every lower one has committed or rolled back, so a reader tailing by
-- sequence can never pass an event that commits late.
CREATE TABLE log_head (
    only_row  boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    sequence  bigint NOT NULL
);
INSERT INTO log_head VALUES (true, 0);

CREATE TABLE commands (
    command_id  text PRIMARY KEY,
    done_at     timestamptz NOT NULL DEFAULT now()
);

-- Where each consumer of another source's log has got to (exactly-once effects).
CREATE TABLE consumer_positions (
    consumer  text NOT NULL,
    source    text NOT NULL,
    position  bigint NOT NULL,
    PRIMARY KEY (consumer, source)
);

-- Events a consumer gave up on after repeated failure, with the reason.
CREATE TABLE parked_events (
    consumer   text NOT NULL,
    source     text NOT NULL,
    sequence   bigint NOT NULL,
    event      jsonb NOT NULL,
    reason     text NOT NULL,
    attempts   integer NOT NULL,
    parked_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, source, sequence)
);

-- How far the relay has published this log to each target exchange (confirmed).
CREATE TABLE relay_positions (
    target    text PRIMARY KEY,
    position  bigint NOT NULL
);

-- Append events to one stream, atomically, in one round trip.
--   p_expected: the stream version the caller decided on; NULL appends at the end.
--   p_command_id: stamped on every event; when p_check_command, a retried
--   command with the same id appends nothing (the first stream of a command checks).
-- Returns the last sequence and the stream version before the first event.
-- A wrong expected version raises SQLSTATE RB409, a command already done RB208;
-- either aborts the transaction, so nothing of it is written.
CREATE FUNCTION rembug_append(p_stream text, p_expected integer, p_command_id text,
                              p_check_command boolean, p_events jsonb,
                              OUT last_seq bigint, OUT base integer)
LANGUAGE plpgsql AS $$
DECLARE
    n  integer := jsonb_array_length(p_events);
BEGIN
    IF p_command_id IS NOT NULL AND p_check_command THEN
        INSERT INTO commands (command_id) VALUES (p_command_id) ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'command % was already done', p_command_id USING ERRCODE = 'RB208';
        END IF;
    END IF;

    IF p_expected IS NULL THEN
        INSERT INTO streams AS s (stream, version) VALUES (p_stream, n)
        ON CONFLICT (stream) DO UPDATE SET version = s.version + n
        RETURNING s.version - n INTO base;
    ELSIF p_expected = 0 THEN
        INSERT INTO streams (stream, version) VALUES (p_stream, n) ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'stream % already exists', p_stream USING ERRCODE = 'RB409';
        END IF;
        base := 0;
    ELSE
        UPDATE streams SET version = version + n WHERE stream = p_stream AND version = p_expected;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'stream % is not at version %', p_stream, p_expected
                USING ERRCODE = 'RB409';
        END IF;
        base := p_expected;
    END IF;

    UPDATE log_head SET sequence = sequence + n RETURNING sequence INTO last_seq;

    INSERT INTO events (sequence, id, stream, version, type, time, data, data_version,
                        correlation_id, causation_id, actor, command_id)
    SELECT last_seq - n + e.ord, (e.ev->>'id')::uuid, p_stream, base + e.ord::integer,
           e.ev->>'type', (e.ev->>'time')::timestamptz, e.ev->'data',
           (e.ev->>'data_version')::integer, e.ev->>'correlation_id', e.ev->>'causation_id',
           e.ev->'actor', p_command_id
    FROM jsonb_array_elements(p_events) WITH ORDINALITY AS e(ev, ord);

    PERFORM pg_notify('rembug_events:' || current_schema(), last_seq::text);
END
$$;
