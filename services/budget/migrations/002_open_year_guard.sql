-- The journal takes no entry dated in a fiscal year that is not open: checked in
-- the appending transaction, so a posting and the closing of its year never both
-- win. Refusals raise RB412, which the store turns into a Conflict.

CREATE FUNCTION budget_refuse_entries_outside_open_years() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    bad_year  integer;
    state     text;
BEGIN
    SELECT y.year, f.status INTO bad_year, state
    FROM (SELECT DISTINCT extract(year FROM date)::integer AS year FROM new_entries) y
    LEFT JOIN fiscal_year_view f ON f.year = y.year
    WHERE f.status IS DISTINCT FROM 'open'
    LIMIT 1;
    IF bad_year IS NOT NULL THEN
        RAISE EXCEPTION 'fiscal year % %; the journal takes no posting dated in it', bad_year,
            CASE WHEN state IS NULL THEN 'was never opened' ELSE 'is closed' END
            USING ERRCODE = 'RB412';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER ledger_entry_open_year
    AFTER INSERT ON ledger_entry REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION budget_refuse_entries_outside_open_years();
