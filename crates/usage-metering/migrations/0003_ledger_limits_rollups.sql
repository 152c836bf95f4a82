-- Credits: accounts pay prepaid (credit must cover a request's worst case)
-- or postpaid (metered, never refused for credit). Accounts that existed
-- before credits were introduced keep working as postpaid.
ALTER TABLE metering.accounts
    ADD COLUMN billing text NOT NULL DEFAULT 'postpaid'
        CHECK (billing IN ('prepaid', 'postpaid'));
ALTER TABLE metering.accounts ALTER COLUMN billing SET DEFAULT 'prepaid';

-- Key settings of the management API.
ALTER TABLE metering.api_keys
    ADD COLUMN limit_nanos bigint CHECK (limit_nanos >= 0),
    ADD COLUMN limit_reset text CHECK (limit_reset IN ('daily', 'weekly', 'monthly')),
    ADD COLUMN include_byok_in_limit boolean NOT NULL DEFAULT false,
    ADD COLUMN rate_limit_rpm integer CHECK (rate_limit_rpm > 0),
    ADD COLUMN updated_at timestamptz,
    ADD COLUMN expires_at timestamptz,
    ADD COLUMN deleted_at timestamptz,
    ADD COLUMN usage_nanos bigint NOT NULL DEFAULT 0,
    ADD COLUMN last_used_at timestamptz;

-- The double-entry ledger. Every customer account has a ledger account of
-- the same id; 'system:funding' is where credits come from (it goes
-- negative by everything ever issued) and 'system:revenue' where usage goes.
-- Balances are a cache of the entries, updated in the same transaction.
CREATE TABLE metering.ledger_accounts (
    id             text PRIMARY KEY,
    kind           text NOT NULL CHECK (kind IN ('customer', 'funding', 'revenue')),
    balance_nanos  bigint NOT NULL DEFAULT 0,
    version        bigint NOT NULL DEFAULT 0
);
INSERT INTO metering.ledger_accounts (id, kind) VALUES
    ('system:funding', 'funding'), ('system:revenue', 'revenue');
INSERT INTO metering.ledger_accounts (id, kind) SELECT id, 'customer' FROM metering.accounts;

-- One row per money movement. The id is deterministic ('usage:<gen id>',
-- 'top_up:<idempotency key>', 'refund:<idempotency key>'), so a transfer
-- can never be posted twice.
CREATE TABLE metering.transfers (
    id            text PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ('top_up', 'refund', 'usage')),
    account_id    text NOT NULL,
    amount_nanos  bigint NOT NULL CHECK (amount_nanos > 0),
    memo          text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX transfers_account_idx ON metering.transfers (account_id, kind);

-- Append-only legs of transfers; each transfer's legs sum to zero.
CREATE TABLE metering.entries (
    id             bigserial PRIMARY KEY,
    transfer_id    text NOT NULL REFERENCES metering.transfers (id),
    ledger_account text NOT NULL REFERENCES metering.ledger_accounts (id),
    amount_nanos   bigint NOT NULL CHECK (amount_nanos <> 0)
);
CREATE INDEX entries_transfer_idx ON metering.entries (transfer_id);
CREATE INDEX entries_account_idx ON metering.entries (ledger_account);

CREATE FUNCTION metering.check_transfer_balanced() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT COALESCE(SUM(amount_nanos), 0) FROM metering.entries
        WHERE transfer_id = NEW.transfer_id) <> 0 THEN
        RAISE EXCEPTION 'transfer % does not sum to zero', NEW.transfer_id;
    END IF;
    RETURN NULL;
END $$;
-- Checked at commit, once every leg of the transfer is in.
CREATE CONSTRAINT TRIGGER entries_balanced
    AFTER INSERT ON metering.entries
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION metering.check_transfer_balanced();

CREATE FUNCTION metering.forbid_entry_changes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger entries are append-only';
END $$;
CREATE TRIGGER entries_append_only
    BEFORE UPDATE OR DELETE ON metering.entries
    FOR EACH ROW EXECUTE FUNCTION metering.forbid_entry_changes();

-- Holds: credit reserved for a router's lease, drawn down as usage naming
-- the lease is recorded, released on expiry. Not ledger entries: a hold
-- only lowers what can be spent, never the balance.
CREATE TABLE metering.holds (
    id            text PRIMARY KEY,
    account_id    text NOT NULL,
    key_hash      text NOT NULL,
    holder        text NOT NULL,
    amount_nanos  bigint NOT NULL CHECK (amount_nanos >= 0),
    open          boolean NOT NULL DEFAULT true,
    expires_at    timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX holds_open_account_idx ON metering.holds (account_id) WHERE open;
CREATE INDEX holds_open_key_idx ON metering.holds (key_hash) WHERE open;

-- Rollups, maintained in the transaction that records the usage.
CREATE TABLE metering.usage_daily (
    day                date NOT NULL,
    account_id         text NOT NULL,
    key_hash           text NOT NULL,
    model              text NOT NULL,
    endpoint_id        text NOT NULL,
    provider_name      text NOT NULL,
    requests           bigint NOT NULL,
    prompt_tokens      bigint NOT NULL,
    completion_tokens  bigint NOT NULL,
    reasoning_tokens   bigint NOT NULL,
    cached_tokens      bigint NOT NULL,
    usage_nanos        bigint NOT NULL,
    PRIMARY KEY (account_id, day, key_hash, model, endpoint_id)
);
CREATE INDEX usage_daily_model_idx ON metering.usage_daily (model, day);
CREATE INDEX usage_daily_day_idx ON metering.usage_daily (day);
CREATE INDEX usage_daily_key_idx ON metering.usage_daily (key_hash, day);

CREATE TABLE metering.app_usage_daily (
    day       date NOT NULL,
    app_id    bigint NOT NULL REFERENCES metering.apps (id),
    model     text NOT NULL,
    requests  bigint NOT NULL,
    tokens    bigint NOT NULL,
    PRIMARY KEY (day, app_id, model)
);
CREATE INDEX app_usage_daily_model_idx ON metering.app_usage_daily (model, day);

CREATE TABLE metering.price_hourly (
    hour                   timestamptz NOT NULL,
    model                  text NOT NULL,
    endpoint_id            text NOT NULL,
    provider_name          text NOT NULL,
    requests               bigint NOT NULL,
    prompt_tokens          bigint NOT NULL,
    completion_tokens      bigint NOT NULL,
    cached_tokens          bigint NOT NULL,
    prompt_cost_nanos      bigint NOT NULL,
    completion_cost_nanos  bigint NOT NULL,
    PRIMARY KEY (model, hour, endpoint_id)
);

ALTER TABLE metering.generations
    ADD COLUMN lease_id text NOT NULL DEFAULT '',
    ADD COLUMN request_id text NOT NULL DEFAULT '',
    ADD COLUMN origin text;
