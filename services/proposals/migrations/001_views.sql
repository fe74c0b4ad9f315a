-- Read models of the proposals service, written in the transaction of their events.

CREATE TABLE proposal_view (
    id              uuid PRIMARY KEY,
    kelurahan       text NOT NULL,
    year            integer NOT NULL,
    rw              integer,
    status          text NOT NULL,
    sector          text NOT NULL,
    score_total     double precision,
    rank            integer,
    submitted_at    timestamptz NOT NULL,
    version         integer NOT NULL,
    view            jsonb NOT NULL
);
CREATE INDEX proposal_view_list ON proposal_view (kelurahan, year, status, submitted_at, id);
CREATE INDEX proposal_view_rw ON proposal_view (kelurahan, rw);
CREATE INDEX proposal_view_sector ON proposal_view (sector);

CREATE TABLE forum_view (
    id         text PRIMARY KEY,
    kelurahan  text NOT NULL,
    year       integer NOT NULL,
    version    integer NOT NULL,
    view       jsonb NOT NULL
);
