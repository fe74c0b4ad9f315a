-- Replication (shared/replication.py). On the city node: the events replicated
-- from each kelurahan's log, stored once per source and sequence, and how far
-- each source has come. (Empty on a kelurahan node.)

CREATE TABLE replica_events (
    source          text NOT NULL,
    sequence        bigint NOT NULL,
    id              uuid NOT NULL,
    stream          text NOT NULL,
    version         integer,
    type            text NOT NULL,
    time            timestamptz NOT NULL,
    data            jsonb NOT NULL,
    data_version    integer NOT NULL,
    correlation_id  text,
    causation_id    text,
    actor_id        text,
    actor_role      text,
    PRIMARY KEY (source, sequence)
);
CREATE INDEX replica_events_stream ON replica_events (source, stream, version);

-- ``position``: the last sequence stored, every lower one stored too;
-- ``source_head``: the highest sequence seen from that source.
CREATE TABLE replication_positions (
    source               text PRIMARY KEY,
    position             bigint NOT NULL,
    source_head          bigint NOT NULL,
    received_at          timestamptz NOT NULL DEFAULT now(),
    resend_requested_at  timestamptz
);
