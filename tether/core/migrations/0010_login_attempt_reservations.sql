-- /login reserves an attempt in tether.login_failure before it tries the credential, and gives
-- it back when the credential was right (core/throttle.py): counting only after the try let
-- concurrent guesses of one address all pass the check before any of them was counted. A key
-- whose attempts in the window all succeeded keeps its row at 0 until the window ends and a
-- purge deletes it, so 0 is now a valid count.
ALTER TABLE tether.login_failure
    DROP CONSTRAINT login_failure_failures_check,
    ADD CONSTRAINT login_failure_failures_check CHECK (failures >= 0);
