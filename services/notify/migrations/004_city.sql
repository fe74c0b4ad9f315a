-- On the city node: where each kelurahan's forwarded proposals stand, to tell the camat
-- of the kecamatan (awaiting the Musrenbang Kecamatan) and bappeda (accepted there,
-- awaiting the city's decision). `told`: the stage was in a notice already.
CREATE TABLE city_proposals (
    id           text PRIMARY KEY,
    kelurahan    text NOT NULL,
    kecamatan    text NOT NULL,
    year         integer NOT NULL,
    stage        text NOT NULL,          -- kecamatan, city, done
    stage_since  timestamptz NOT NULL,
    told         boolean NOT NULL DEFAULT false
);
CREATE INDEX city_proposals_untold ON city_proposals (stage_since) WHERE NOT told;
