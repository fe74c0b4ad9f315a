-- A merged duplicate's proposer keeps hearing of the proposal it was merged into
-- (both proposers are kept): the survivor remembers the pseudonymous ids of its
-- co-proposers and their RWs (for their RW chairs).
ALTER TABLE known_proposals
    ADD COLUMN co_proposers text[] NOT NULL DEFAULT '{}',
    ADD COLUMN co_rws integer[] NOT NULL DEFAULT '{}';
