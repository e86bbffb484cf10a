-- Person ids are stored only as keyed hashes ('hmac:' and 64 hex digits, see pii.py); organisation
-- numbers stay readable. The new check holds for every row written from now on. Existing rows
-- with a clear 11-digit id are converted by the service when it starts (build() in service.py,
-- one set-based UPDATE under a table lock): the key lives in the configuration, never in the
-- database, and the embedded PostgreSQL has no pgcrypto. The constraint is NOT VALID so that the
-- migration itself needs no key; an owner may VALIDATE it once a service has started.
ALTER TABLE ap.end_user DROP CONSTRAINT end_user_business_id_check;
ALTER TABLE ap.end_user ADD CONSTRAINT end_user_business_id_check
    CHECK (business_id ~ '^[1-9][0-9]{8}$|^hmac:[0-9a-f]{64}$') NOT VALID;
