-- What the city's lists and ranking select and group by: the kecamatan of a proposal's
-- kelurahan (its code's first three parts, e.g. 32.75.05) and its target agency (OPD).
-- Both are generated from what the projection already writes, so no projection changes.

ALTER TABLE proposal_view
    ADD COLUMN kecamatan text GENERATED ALWAYS AS (left(kelurahan, 8)) STORED,
    ADD COLUMN target_agency text GENERATED ALWAYS AS (view->>'target_agency') STORED;

CREATE INDEX proposal_view_kecamatan ON proposal_view (kecamatan, year, status);
CREATE INDEX proposal_view_target_agency ON proposal_view (target_agency);
-- the city ranking: proposals a kelurahan forum forwarded (only forwarding sets a rank)
CREATE INDEX proposal_view_forwarded ON proposal_view (year) WHERE rank IS NOT NULL;
