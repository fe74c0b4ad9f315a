-- The journal is written by the append itself: a row trigger on the event store
-- turns each ``transaction.posted`` event into its ledger entries, its
-- transaction view and (for a first advance) the person's payable account, in
-- the appending statement. A posting is then one prepared statement, and the
-- journal still commits with its events or not at all.

CREATE FUNCTION budget_journal_posted() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    d  jsonb := NEW.data;
BEGIN
    INSERT INTO ledger_entry (transaction_id, position, date, account, debit, credit,
                              line_id, ref_kind, ref_id)
    SELECT (d->>'transaction_id')::uuid, e.position, (d->>'date')::date, e.entry->>'account',
           coalesce((e.entry->>'debit')::bigint, 0), coalesce((e.entry->>'credit')::bigint, 0),
           e.entry->>'line_id', d->'ref'->>'kind', d->'ref'->>'id'
    FROM jsonb_array_elements(d->'entries') WITH ORDINALITY AS e (entry, position);

    INSERT INTO transaction_view (id, date, ref_kind, ref_id, view)
    VALUES ((d->>'transaction_id')::uuid, (d->>'date')::date, d->'ref'->>'kind',
            d->'ref'->>'id', d || jsonb_build_object('version', NEW.version));

    INSERT INTO account_view (code, kind, name)
    SELECT DISTINCT e->>'account', 'payable', 'Utang kepada ' || substr(e->>'account', 9)
    FROM jsonb_array_elements(d->'entries') AS e
    WHERE e->>'account' LIKE 'payable.%'
    ON CONFLICT (code) DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER events_journal AFTER INSERT ON events
    FOR EACH ROW WHEN (NEW.type = 'transaction.posted')
    EXECUTE FUNCTION budget_journal_posted();
