-- The catalog: providers, models and endpoints (model x provider), plus a
-- version counter that every committed change bumps, so watchers and read
-- replicas can tell whether their copy is current.

CREATE TABLE catalog.version (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version bigint NOT NULL CHECK (version >= 0)
);
INSERT INTO catalog.version (singleton, version) VALUES (true, 0);

CREATE TABLE catalog.providers (
    slug text PRIMARY KEY,
    name text NOT NULL,
    wire_format text NOT NULL CHECK (wire_format IN ('openai', 'anthropic', 'gemini')),
    base_url text NOT NULL,
    credential_ref text NOT NULL,
    privacy_policy_url text,
    terms_of_service_url text,
    status_page_url text,
    headquarters text,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE catalog.models (
    id text PRIMARY KEY,
    canonical_slug text NOT NULL,
    name text NOT NULL,
    created timestamptz NOT NULL,
    description text NOT NULL,
    context_length integer NOT NULL CHECK (context_length > 0),
    modality text NOT NULL,
    input_modalities text[] NOT NULL,
    output_modalities text[] NOT NULL,
    tokenizer text NOT NULL,
    instruct_type text,
    knowledge_cutoff date,
    supported_parameters text[] NOT NULL,
    hugging_face_id text,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE catalog.endpoints (
    id text PRIMARY KEY,
    model_id text NOT NULL REFERENCES catalog.models (id),
    provider_slug text NOT NULL REFERENCES catalog.providers (slug),
    tag text NOT NULL,
    upstream_model text NOT NULL,
    -- USD per unit, exact.
    price_prompt numeric NOT NULL CHECK (price_prompt >= 0),
    price_completion numeric NOT NULL CHECK (price_completion >= 0),
    price_request numeric CHECK (price_request >= 0),
    price_image numeric CHECK (price_image >= 0),
    price_input_cache_read numeric CHECK (price_input_cache_read >= 0),
    price_input_cache_write numeric CHECK (price_input_cache_write >= 0),
    price_internal_reasoning numeric CHECK (price_internal_reasoning >= 0),
    context_length integer NOT NULL CHECK (context_length > 0),
    max_completion_tokens integer,
    quantization text,
    supported_parameters text[] NOT NULL,
    status integer NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX endpoints_model_id ON catalog.endpoints (model_id);
CREATE INDEX endpoints_provider_slug ON catalog.endpoints (provider_slug);
