-- The current monograph's counts kept per statement rather than per row: a statement
-- that opens or closes the spans of many residents at once (an import batch of
-- hundreds) adds their counts up and updates each counter once, in key order.
-- The counts are the same as before: open spans (valid_to IS NULL) by dimension and
-- value, by birth date, by family and RW.

DROP TRIGGER resident_periods_counted ON resident_periods;
DROP FUNCTION resident_periods_counted();
DROP FUNCTION monograph_add(resident_periods, integer);

-- Take the spans of ``removed`` out of the counts and put those of ``added`` in
-- (closed spans, valid_to set, count in neither).
CREATE FUNCTION monograph_count(removed resident_periods[], added resident_periods[])
RETURNS void AS $$
    WITH changed AS (
        SELECT p.*, -1 AS delta FROM unnest(removed) AS p WHERE p.valid_to IS NULL
        UNION ALL
        SELECT p.*, 1 AS delta FROM unnest(added) AS p WHERE p.valid_to IS NULL
    ),
    cells AS (
        INSERT INTO monograph_cells AS c (dimension, value, n)
        SELECT d, v, sum(delta) FROM (
            SELECT x.d, x.v, ch.delta
            FROM changed AS ch,
                 LATERAL (VALUES
                    ('rw', ch.rw::text), ('rt', ch.rw || '/' || ch.rt), ('sex', ch.sex),
                    ('religion', ch.religion), ('education', ch.education),
                    ('occupation', ch.occupation), ('marital_status', ch.marital_status),
                    ('status', ch.status)) AS x (d, v)
            UNION ALL
            SELECT 'vulnerable', unnest(array_remove(array_remove(ch.categories, 'child'),
                                                     'elderly')), ch.delta
            FROM changed AS ch
        ) AS s (d, v, delta)
        GROUP BY d, v HAVING sum(delta) <> 0 ORDER BY d, v
        ON CONFLICT (dimension, value) DO UPDATE SET n = c.n + excluded.n
    ),
    births AS (
        INSERT INTO monograph_births AS b (birth_key, n)
        SELECT birth_key, sum(delta) FROM changed
        GROUP BY birth_key HAVING sum(delta) <> 0 ORDER BY birth_key
        ON CONFLICT (birth_key) DO UPDATE SET n = b.n + excluded.n
    )
    INSERT INTO monograph_families AS f (family_id, rw, n)
    SELECT family_id, rw, sum(delta) FROM changed WHERE family_id IS NOT NULL
    GROUP BY family_id, rw HAVING sum(delta) <> 0 ORDER BY family_id, rw
    ON CONFLICT (family_id, rw) DO UPDATE SET n = f.n + excluded.n;
$$ LANGUAGE sql;

CREATE FUNCTION resident_periods_inserted() RETURNS trigger AS $$
BEGIN
    PERFORM monograph_count('{}', ARRAY(SELECT a::resident_periods FROM added AS a));
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE FUNCTION resident_periods_updated() RETURNS trigger AS $$
BEGIN
    PERFORM monograph_count(ARRAY(SELECT r::resident_periods FROM removed AS r),
                            ARRAY(SELECT a::resident_periods FROM added AS a));
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE FUNCTION resident_periods_deleted() RETURNS trigger AS $$
BEGIN
    PERFORM monograph_count(ARRAY(SELECT r::resident_periods FROM removed AS r), '{}');
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER resident_periods_inserted AFTER INSERT ON resident_periods
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION resident_periods_inserted();
CREATE TRIGGER resident_periods_updated AFTER UPDATE ON resident_periods
    REFERENCING OLD TABLE AS removed NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION resident_periods_updated();
CREATE TRIGGER resident_periods_deleted AFTER DELETE ON resident_periods
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION resident_periods_deleted();
