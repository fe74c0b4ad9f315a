-- Replication (shared/replication.py): a source whose log no longer matches the
-- history the city holds (a kelurahan store reset or restored from a backup) is
-- marked here when the city finds it, with the first sequence at which the event
-- it sent differs from the one stored; the city refuses its events from then on,
-- until an operator decides.

ALTER TABLE replication_positions
    ADD COLUMN diverged_at timestamptz,
    ADD COLUMN diverged_sequence bigint;
