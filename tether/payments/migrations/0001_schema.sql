-- Payments: per-case confirmed state, candidates waiting for a receipt, the order outbox,
-- the inbound message log and the status log. Schema `pay`.

CREATE SCHEMA IF NOT EXISTS pay;

-- One row per case. active_uids NULL = the case never paid; '{}' = it paid, nothing is active.
-- inflight_order: the order at the payment system (sent or about to be), whose receipt later
-- messages of this case wait for.
CREATE TABLE pay.sak (
    fagsystem        text NOT NULL,
    sak_id           text NOT NULL,
    active_uids      text[],
    has_order_before boolean NOT NULL DEFAULT false,
    inflight_order   uuid,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (fagsystem, sak_id)
);

-- The last confirmed utbetaling per uid (kept after a delete: a uid coming back chains to it).
CREATE TABLE pay.utbetaling (
    uid          text PRIMARY KEY,
    fagsystem    text NOT NULL,
    sak_id       text NOT NULL,
    klassekode   text NOT NULL,
    periods      jsonb NOT NULL,
    last_line_id text NOT NULL,
    last_line    jsonb NOT NULL,
    data         jsonb NOT NULL,
    confirmed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX utbetaling_case ON pay.utbetaling (fagsystem, sak_id);

-- Every message by original key. waiting = queued behind an order of its case.
CREATE TABLE pay.inbound (
    seq          bigserial PRIMARY KEY,
    original_key text NOT NULL UNIQUE,
    content_hash text NOT NULL,
    fagsystem    text,
    sak_id       text,
    body         bytea NOT NULL,
    dryrun       boolean NOT NULL DEFAULT false,
    state        text NOT NULL CHECK (state IN ('waiting', 'done')),
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inbound_waiting ON pay.inbound (fagsystem, sak_id, seq) WHERE state = 'waiting';

-- The outbox: one order per case per message, exactly the XML sent.
CREATE TABLE pay.oppdrag (
    id            uuid PRIMARY KEY,
    fagsystem     text NOT NULL,
    sak_id        text NOT NULL,
    original_key  text NOT NULL,
    xml           text NOT NULL,
    sha256        text NOT NULL,
    uids          text[] NOT NULL,
    details       jsonb NOT NULL,
    state         text NOT NULL CHECK (state IN ('MOTTATT', 'HOS_OPPDRAG', 'OK', 'FEILET')),
    message_id    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    send_due_at   timestamptz,
    send_attempts int NOT NULL DEFAULT 0,
    last_error    text,
    sent_at       timestamptz,
    chase_due_at  timestamptz,  -- no receipt by then: ask the payment system about the order
    receipt_at    timestamptz,
    receipt_code  text,
    receipt_text  text
);
CREATE INDEX oppdrag_case ON pay.oppdrag (fagsystem, sak_id, created_at);
CREATE INDEX oppdrag_due ON pay.oppdrag (send_due_at) WHERE state = 'MOTTATT';
CREATE INDEX oppdrag_waiting ON pay.oppdrag (sent_at) WHERE state = 'HOS_OPPDRAG';

-- What the case's confirmed state becomes per uid if the order's receipt is 00/04.
CREATE TABLE pay.candidate (
    oppdrag_id   uuid NOT NULL REFERENCES pay.oppdrag (id),
    uid          text NOT NULL,
    klassekode   text NOT NULL,
    periods      jsonb NOT NULL,
    last_line_id text NOT NULL,
    last_line    jsonb NOT NULL,
    data         jsonb NOT NULL,
    PRIMARY KEY (oppdrag_id, uid)
);

-- Every status published under an original key; published_at NULL = not on NATS yet.
CREATE TABLE pay.status (
    id           bigserial PRIMARY KEY,
    original_key text NOT NULL,
    status       text NOT NULL CHECK (status IN ('MOTTATT', 'HOS_OPPDRAG', 'OK', 'FEILET')),
    body         jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX status_key ON pay.status (original_key, id);
CREATE INDEX status_unpublished ON pay.status (id) WHERE published_at IS NULL;

-- Receipts that match no order (or cannot be read): kept for an operator, never a crash.
CREATE TABLE pay.stray_receipt (
    id          bigserial PRIMARY KEY,
    order_id    text,
    reason      text NOT NULL,
    body        text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
