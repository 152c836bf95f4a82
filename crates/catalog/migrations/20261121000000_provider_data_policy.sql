-- Provider data policy, for routing's `data_collection: deny` and `zdr`.
-- NULL means unknown, which routing treats as the less private answer.
ALTER TABLE catalog.providers
    ADD COLUMN may_train boolean,
    ADD COLUMN retains_prompts boolean,
    ADD COLUMN zero_data_retention boolean;
