-- Accounts own keys; the credits ledger will hang off this table later.
CREATE SCHEMA IF NOT EXISTS metering;

CREATE TABLE metering.accounts (
    id          text PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Only the peppered HMAC of a key is stored; the key text never is.
CREATE TABLE metering.api_keys (
    hash        text PRIMARY KEY,
    account_id  text NOT NULL REFERENCES metering.accounts (id),
    name        text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('inference', 'management')),
    disabled    boolean NOT NULL DEFAULT false,
    label       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_keys_account_idx ON metering.api_keys (account_id);

CREATE TABLE metering.apps (
    id            bigserial PRIMARY KEY,
    http_referer  text NOT NULL UNIQUE,
    title         text,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- One row per generation; the primary key is the idempotency key. No foreign
-- key to accounts: a billable fact is recorded even if the account is odd.
CREATE TABLE metering.generations (
    id                        text PRIMARY KEY,
    account_id                text NOT NULL,
    key_hash                  text NOT NULL,
    model                     text NOT NULL,
    endpoint_id               text NOT NULL,
    provider_slug             text NOT NULL,
    provider_name             text NOT NULL,
    upstream_id               text NOT NULL,
    created_at                timestamptz NOT NULL,
    prompt_tokens             bigint NOT NULL,
    completion_tokens         bigint NOT NULL,
    reasoning_tokens          bigint NOT NULL,
    cached_tokens             bigint NOT NULL,
    cache_write_tokens        bigint NOT NULL,
    latency_ms                bigint NOT NULL,
    ttft_ms                   bigint,
    generation_time_ms        bigint NOT NULL,
    streamed                  boolean NOT NULL,
    cancelled                 boolean NOT NULL,
    finish_reason             text NOT NULL,
    native_finish_reason      text NOT NULL,
    http_referer              text,
    app_title                 text,
    user_agent                text,
    app_id                    bigint REFERENCES metering.apps (id),
    api_type                  text NOT NULL,
    session_id                text,
    external_user             text,
    -- Prices pinned at routing time, USD per unit; all NULL when unpriced.
    price_prompt              numeric,
    price_completion          numeric,
    price_request             numeric,
    price_image               numeric,
    price_input_cache_read    numeric,
    price_input_cache_write   numeric,
    price_internal_reasoning  numeric,
    attempts                  jsonb NOT NULL DEFAULT '[]',
    prompt_cost_nanos         bigint NOT NULL,
    completion_cost_nanos     bigint NOT NULL,
    total_cost_nanos          bigint NOT NULL,
    recorded_at               timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX generations_account_created_idx ON metering.generations (account_id, created_at DESC);
