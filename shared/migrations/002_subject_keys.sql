-- Per-subject data keys for personal data (shared/pii.py): crypto-shredding.
--
-- One row per subject (a resident). `wrapped` is the subject's random 256-bit
-- data key, AES-256-GCM-wrapped under a key derived from the node's
-- PII_MASTER_KEY (12-byte nonce || ciphertext || tag), never the key in clear.
-- Erasing a subject sets `wrapped` to NULL and stamps `erased_at`: the row stays
-- as a tombstone holding no personal data, so no new key is ever made for an
-- erased subject (a new key would make its old sealed blobs fail loudly instead
-- of reading as erased).

CREATE TABLE subject_keys (
    subject_id  text PRIMARY KEY,
    wrapped     bytea,
    created_at  timestamptz NOT NULL DEFAULT now(),
    erased_at   timestamptz,
    CHECK ((wrapped IS NULL) = (erased_at IS NOT NULL))
);
