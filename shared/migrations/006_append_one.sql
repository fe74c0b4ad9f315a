-- Append one event to one stream: rembug_append for the commonest command (one event),
-- with the event's envelope as typed parameters instead of a JSON array the function
-- would parse and iterate. Same checks, same order, same guarantees:
--   p_expected: the stream version the caller decided on (0: a new stream; NULL: at the
--   end); p_command_id: stamped on the event; a command already done appends nothing.
-- The log head is updated after the stream row, so its lock is taken last and held until
-- commit: sequences stay gap-free and in commit order. Returns the event's sequence and
-- the stream version before it. A wrong expected version raises SQLSTATE RB409, a command
-- already done RB208; either aborts the transaction, so nothing of it is written.
CREATE FUNCTION rembug_append_one(p_stream text, p_expected integer, p_command_id text,
                                  p_id uuid, p_type text, p_time timestamptz, p_data jsonb,
                                  p_data_version integer, p_correlation_id text,
                                  p_causation_id text, p_actor jsonb,
                                  OUT last_seq bigint, OUT base integer)
LANGUAGE plpgsql AS $$
BEGIN
    IF p_command_id IS NOT NULL THEN
        INSERT INTO commands (command_id) VALUES (p_command_id) ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'command % was already done', p_command_id USING ERRCODE = 'RB208';
        END IF;
    END IF;

    IF p_expected IS NULL THEN
        INSERT INTO streams AS s (stream, version) VALUES (p_stream, 1)
        ON CONFLICT (stream) DO UPDATE SET version = s.version + 1
        RETURNING s.version - 1 INTO base;
    ELSIF p_expected = 0 THEN
        INSERT INTO streams (stream, version) VALUES (p_stream, 1) ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'stream % already exists', p_stream USING ERRCODE = 'RB409';
        END IF;
        base := 0;
    ELSE
        UPDATE streams SET version = version + 1 WHERE stream = p_stream AND version = p_expected;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'stream % is not at version %', p_stream, p_expected
                USING ERRCODE = 'RB409';
        END IF;
        base := p_expected;
    END IF;

    UPDATE log_head SET sequence = sequence + 1 RETURNING sequence INTO last_seq;

    INSERT INTO events (sequence, id, stream, version, type, time, data, data_version,
                        correlation_id, causation_id, actor, command_id)
    VALUES (last_seq, p_id, p_stream, base + 1, p_type, p_time, p_data, p_data_version,
            p_correlation_id, p_causation_id, p_actor, p_command_id);

    PERFORM pg_notify('rembug_events:' || current_schema(), last_seq::text);
END
$$;
