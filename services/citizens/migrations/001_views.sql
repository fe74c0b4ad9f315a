-- Read models of the citizens service, written in the transaction of their events.
-- They hold personal data in clear (node only): erasure deletes a resident's rows.

CREATE TABLE resident_view (
    id          uuid PRIMARY KEY,
    kelurahan   text NOT NULL,
    status      text NOT NULL,
    rw          integer,
    rt          integer,
    sex         text,
    birth_date  date,
    family_id   uuid,
    categories  text[] NOT NULL DEFAULT '{}',
    version     integer NOT NULL,
    view        jsonb NOT NULL
);
CREATE INDEX resident_view_place ON resident_view (rw, rt, status);
CREATE INDEX resident_view_family ON resident_view (family_id);
CREATE INDEX resident_view_categories ON resident_view USING gin (categories);

-- NIK and No. KK uniqueness without the numbers: token = Protector.pseudonym(number).
CREATE TABLE nik_index (
    token        text PRIMARY KEY,
    resident_id  uuid NOT NULL
);
CREATE INDEX nik_index_resident ON nik_index (resident_id);

CREATE TABLE kk_index (
    token      text PRIMARY KEY,
    family_id  uuid NOT NULL
);

CREATE TABLE family_view (
    id         uuid PRIMARY KEY,
    kelurahan  text NOT NULL,
    status     text NOT NULL,
    rw         integer,
    version    integer NOT NULL,
    view       jsonb NOT NULL
);

CREATE TABLE request_view (
    id           uuid PRIMARY KEY,
    kelurahan    text NOT NULL,
    rw           integer NOT NULL,
    status       text NOT NULL,
    kind         text NOT NULL,
    resident_id  uuid NOT NULL,
    assigned_to  text,
    raised_at    timestamptz NOT NULL,
    due_at       timestamptz NOT NULL,
    closed_at    timestamptz,
    version      integer NOT NULL,
    view         jsonb NOT NULL
);
CREATE INDEX request_view_list ON request_view (rw, status, raised_at);
CREATE INDEX request_view_resident ON request_view (resident_id);

-- The monograph's history: one row per span of a resident's presence with the same
-- attributes, [valid_from, valid_to); valid_to NULL is the open (current) span. A
-- death or a move out closes the span and opens none.
CREATE TABLE resident_periods (
    resident_id     uuid NOT NULL,
    valid_from      date NOT NULL,
    valid_to        date,
    rw              integer NOT NULL,
    rt              integer NOT NULL,
    sex             text NOT NULL,
    birth_date      date NOT NULL,
    religion        text NOT NULL,
    education       text NOT NULL,
    occupation      text NOT NULL,
    marital_status  text NOT NULL,
    family_id       uuid,
    categories      text[] NOT NULL DEFAULT '{}',
    status          text NOT NULL,
    -- the birth date as yyyymmdd: whole years of age at D are (D as yyyymmdd - this) / 10000
    birth_key       integer GENERATED ALWAYS AS (
        (extract(year FROM birth_date) * 10000 + extract(month FROM birth_date) * 100
         + extract(day FROM birth_date))::integer) STORED
);
CREATE INDEX resident_periods_resident ON resident_periods (resident_id) WHERE valid_to IS NULL;
CREATE INDEX resident_periods_all_of ON resident_periods (resident_id);
CREATE INDEX resident_periods_span ON resident_periods (valid_from, valid_to);

-- The current monograph, kept up to date by a trigger as spans open and close (the
-- as-of monograph scans resident_periods instead). Counts of open spans by
-- dimension and value; by birth date (ages move on daily: bands are computed when
-- read); by family and RW. A row whose count fell to 0 stays, and is not read.
CREATE TABLE monograph_cells (
    dimension  text NOT NULL,
    value      text NOT NULL,
    n          integer NOT NULL,
    PRIMARY KEY (dimension, value)
);
CREATE TABLE monograph_births (
    birth_key  integer PRIMARY KEY,
    n          integer NOT NULL
);
CREATE TABLE monograph_families (
    family_id  uuid NOT NULL,
    rw         integer NOT NULL,
    n          integer NOT NULL,
    PRIMARY KEY (family_id, rw)
);

CREATE FUNCTION monograph_add(p resident_periods, delta integer) RETURNS void AS $$
BEGIN
    INSERT INTO monograph_cells AS c (dimension, value, n)
    SELECT d, v, delta FROM (VALUES
        ('rw', p.rw::text), ('rt', p.rw || '/' || p.rt), ('sex', p.sex),
        ('religion', p.religion), ('education', p.education), ('occupation', p.occupation),
        ('marital_status', p.marital_status), ('status', p.status)) AS x (d, v)
    UNION ALL
    SELECT 'vulnerable', unnest(array_remove(array_remove(p.categories, 'child'), 'elderly')), delta
    ON CONFLICT (dimension, value) DO UPDATE SET n = c.n + excluded.n;
    INSERT INTO monograph_births AS b (birth_key, n) VALUES (p.birth_key, delta)
    ON CONFLICT (birth_key) DO UPDATE SET n = b.n + excluded.n;
    IF p.family_id IS NOT NULL THEN
        INSERT INTO monograph_families AS f (family_id, rw, n) VALUES (p.family_id, p.rw, delta)
        ON CONFLICT (family_id, rw) DO UPDATE SET n = f.n + excluded.n;
    END IF;
END
$$ LANGUAGE plpgsql;

CREATE FUNCTION resident_periods_counted() RETURNS trigger AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.valid_to IS NULL THEN
        PERFORM monograph_add(OLD, -1);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.valid_to IS NULL THEN
        PERFORM monograph_add(NEW, 1);
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER resident_periods_counted AFTER INSERT OR UPDATE OR DELETE ON resident_periods
    FOR EACH ROW EXECUTE FUNCTION resident_periods_counted();
