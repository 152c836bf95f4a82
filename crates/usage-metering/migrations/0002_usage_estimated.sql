-- Token counts the router estimated because the provider reported none.
ALTER TABLE metering.generations
    ADD COLUMN usage_estimated boolean NOT NULL DEFAULT false;
