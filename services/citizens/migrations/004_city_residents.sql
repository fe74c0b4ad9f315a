-- The city node's view of every kelurahan's residents, from replicated public
-- parts only (services/citizens/city.py): a random resident token, the
-- kelurahan, RW, sex, age band and vulnerability categories. Nothing here
-- identifies anyone. (Empty on a kelurahan node.)

CREATE TABLE city_residents (
    resident_id  uuid PRIMARY KEY,
    kelurahan    text NOT NULL,
    kecamatan    text NOT NULL,
    rw           integer,
    sex          text,
    age_band     text,
    categories   text[] NOT NULL DEFAULT '{}',
    present      boolean NOT NULL,
    updated_at   timestamptz NOT NULL
);
CREATE INDEX city_residents_present ON city_residents (kecamatan, kelurahan) WHERE present;
