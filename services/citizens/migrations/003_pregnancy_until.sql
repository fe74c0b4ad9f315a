-- A pregnancy counts until its expected date plus a grace period
-- (services.citizens.domain.PREGNANCY_GRACE, 30 days), and no event marks that
-- day: like an age, it is read against the date asked. Spans and resident views
-- carry the last day it counts; the current monograph's counters leave
-- 'pregnant' out, and the monograph counts it from the open spans at the date.

ALTER TABLE resident_view ADD COLUMN pregnant_until date;
ALTER TABLE resident_periods ADD COLUMN pregnant_until date;

CREATE OR REPLACE FUNCTION monograph_count(removed resident_periods[], added resident_periods[])
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
            SELECT 'vulnerable', unnest(array_remove(array_remove(array_remove(
                       ch.categories, 'child'), 'elderly'), 'pregnant')), ch.delta
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

UPDATE monograph_cells SET n = 0 WHERE dimension = 'vulnerable' AND value = 'pregnant';

UPDATE resident_view
SET pregnant_until = (view->'vulnerability'->'pregnancy'->>'expected_date')::date + 30
WHERE view->'vulnerability'->'pregnancy'->>'expected_date' IS NOT NULL;
-- Spans written before: the resident's current record is the best evidence left.
UPDATE resident_periods p SET pregnant_until = v.pregnant_until
FROM resident_view v WHERE p.resident_id = v.id AND 'pregnant' = ANY (p.categories);

CREATE INDEX resident_periods_pregnant ON resident_periods (pregnant_until)
    WHERE pregnant_until IS NOT NULL;
