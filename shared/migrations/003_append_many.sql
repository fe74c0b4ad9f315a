-- Append events to many streams in one statement: the set-based form of rembug_append,
-- for a command that touches many streams at once (a bulk import of new residents).
--   p_streams[k], p_expected[k]: stream k and the version its writer decided on
--   (0: a new stream; NULL: append at the end wherever it is);
--   p_events -> (k - 1): the events of stream k, as rembug_append takes them;
--   p_command_id: stamped on every event; a retried command appends nothing.
-- The log head is updated once, after every stream row, so its lock is still taken
-- last and held until commit: sequences stay gap-free and in commit order.
-- Returns the last sequence and each stream's version before its first event.
-- A wrong expected version raises SQLSTATE RB409, a command already done RB208;
-- either aborts the transaction, so nothing of it is written.
CREATE FUNCTION rembug_append_many(p_command_id text, p_streams text[], p_expected integer[],
                                   p_events jsonb, OUT last_seq bigint, OUT bases integer[])
LANGUAGE plpgsql AS $$
DECLARE
    total     integer;
    wanted    integer;
    fresh     text[];
    taken     text;
    s         record;
    base      integer;
BEGIN
    IF cardinality(p_streams) IS DISTINCT FROM cardinality(p_expected)
       OR cardinality(p_streams) IS DISTINCT FROM jsonb_array_length(p_events) THEN
        RAISE EXCEPTION 'rembug_append_many needs one expected version and one event list '
                        'per stream';
    END IF;

    IF p_command_id IS NOT NULL THEN
        INSERT INTO commands (command_id) VALUES (p_command_id) ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'command % was already done', p_command_id USING ERRCODE = 'RB208';
        END IF;
    END IF;

    -- every new stream in one insert; one that exists already (or is named twice) conflicts
    WITH made AS (
        INSERT INTO streams (stream, version)
        SELECT u.stream, jsonb_array_length(p_events -> (u.k - 1)::integer)
        FROM unnest(p_streams, p_expected) WITH ORDINALITY AS u(stream, expected, k)
        WHERE u.expected = 0
        ORDER BY u.k
        ON CONFLICT DO NOTHING
        RETURNING stream
    )
    SELECT coalesce(array_agg(stream), '{}') INTO fresh FROM made;
    SELECT count(*) INTO wanted FROM unnest(p_expected) AS e WHERE e = 0;
    IF cardinality(fresh) < wanted THEN
        SELECT u.stream INTO taken
        FROM unnest(p_streams, p_expected) WITH ORDINALITY AS u(stream, expected, k)
        WHERE u.expected = 0
        ORDER BY u.stream = ANY(fresh), u.k
        LIMIT 1;
        RAISE EXCEPTION 'stream % already exists', taken USING ERRCODE = 'RB409';
    END IF;

    bases := array_fill(0, ARRAY[cardinality(p_streams)]);
    -- streams that exist, one by one in the given order, as rembug_append does them
    FOR s IN
        SELECT u.stream, u.expected, u.k::integer AS k,
               jsonb_array_length(p_events -> (u.k - 1)::integer) AS n
        FROM unnest(p_streams, p_expected) WITH ORDINALITY AS u(stream, expected, k)
        WHERE u.expected IS DISTINCT FROM 0
        ORDER BY u.k
    LOOP
        IF s.expected IS NULL THEN
            INSERT INTO streams AS t (stream, version) VALUES (s.stream, s.n)
            ON CONFLICT (stream) DO UPDATE SET version = t.version + s.n
            RETURNING t.version - s.n INTO base;
        ELSE
            UPDATE streams SET version = version + s.n
            WHERE stream = s.stream AND version = s.expected;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'stream % is not at version %', s.stream, s.expected
                    USING ERRCODE = 'RB409';
            END IF;
            base := s.expected;
        END IF;
        bases[s.k] := base;
    END LOOP;

    SELECT count(*) INTO total
    FROM jsonb_array_elements(p_events) AS a(evs), jsonb_array_elements(a.evs) AS e(ev);
    UPDATE log_head SET sequence = sequence + total RETURNING sequence INTO last_seq;

    INSERT INTO events (sequence, id, stream, version, type, time, data, data_version,
                        correlation_id, causation_id, actor, command_id)
    SELECT last_seq - total + row_number() OVER (ORDER BY a.k, e.ord),
           (e.ev->>'id')::uuid, p_streams[a.k], bases[a.k] + e.ord::integer,
           e.ev->>'type', (e.ev->>'time')::timestamptz, e.ev->'data',
           (e.ev->>'data_version')::integer, e.ev->>'correlation_id', e.ev->>'causation_id',
           e.ev->'actor', p_command_id
    FROM jsonb_array_elements(p_events) WITH ORDINALITY AS a(evs, k),
         jsonb_array_elements(a.evs) WITH ORDINALITY AS e(ev, ord);

    PERFORM pg_notify('rembug_events:' || current_schema(), last_seq::text);
END
$$;
