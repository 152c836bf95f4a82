-- The ledger's integrity rules, checked once per INSERT statement instead of
-- once per leg. Every usage batch posts two legs per generation; the foreign
-- keys and the deferred balance trigger ran three queries for each of them,
-- which was over a third of the database's work per recorded request. The
-- rules are the same:
--   * every leg names a transfer and a ledger account that exist;
--   * every transfer's legs sum to zero (all legs of a transfer are posted
--     by one statement, so this holds at the end of each statement);
--   * what legs point at is never deleted or renamed, and legs are
--     append-only.

DROP TRIGGER entries_balanced ON metering.entries;
DROP FUNCTION metering.check_transfer_balanced();
ALTER TABLE metering.entries
    DROP CONSTRAINT entries_transfer_id_fkey,
    DROP CONSTRAINT entries_ledger_account_fkey;

-- A transfer has one leg per ledger account: that pair is the natural key,
-- and its index serves the balance check. The surrogate id, its sequence and
-- the per-account index (nothing looks legs up by account alone; the ledger
-- check aggregates the whole table) were maintained for every leg.
DROP INDEX metering.entries_transfer_idx;
DROP INDEX metering.entries_account_idx;
ALTER TABLE metering.entries DROP CONSTRAINT entries_pkey;
ALTER TABLE metering.entries DROP COLUMN id;
ALTER TABLE metering.entries ADD PRIMARY KEY (transfer_id, ledger_account);

-- Each check looks the statement's distinct ids up by primary key. The
-- function's plans are cached from its first calls, when the tables are
-- small and a sequential scan is cheapest; kept, such a plan would read
-- every transfer or leg ever posted on each batch. Sequential scans are
-- therefore off while it runs (the transition table has no index and is
-- still scanned, as it must be).
CREATE FUNCTION metering.check_new_entries() RETURNS trigger
LANGUAGE plpgsql
SET enable_seqscan = off
AS $$
DECLARE
    transfer_ids text[] := ARRAY(SELECT DISTINCT transfer_id FROM new_entries);
    account_ids text[] := ARRAY(SELECT DISTINCT ledger_account FROM new_entries);
    bad text;
BEGIN
    IF (SELECT count(*) FROM metering.transfers WHERE id = ANY (transfer_ids))
        <> cardinality(transfer_ids) THEN
        SELECT id INTO bad FROM unnest(transfer_ids) AS id
        WHERE id NOT IN (SELECT t.id FROM metering.transfers t WHERE t.id = ANY (transfer_ids))
        LIMIT 1;
        RAISE EXCEPTION 'ledger entry names unknown transfer %', bad
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF (SELECT count(*) FROM metering.ledger_accounts WHERE id = ANY (account_ids))
        <> cardinality(account_ids) THEN
        SELECT id INTO bad FROM unnest(account_ids) AS id
        WHERE id NOT IN (SELECT a.id FROM metering.ledger_accounts a WHERE a.id = ANY (account_ids))
        LIMIT 1;
        RAISE EXCEPTION 'ledger entry names unknown ledger account %', bad
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    SELECT e.transfer_id INTO bad FROM metering.entries e
    WHERE e.transfer_id = ANY (transfer_ids)
    GROUP BY e.transfer_id HAVING SUM(e.amount_nanos) <> 0
    LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'transfer % does not sum to zero', bad
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER entries_checked
    AFTER INSERT ON metering.entries
    REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION metering.check_new_entries();

-- Transfers are facts: posted once, never changed. Ledger accounts keep
-- their id for good (their balance changes, their identity does not).
CREATE FUNCTION metering.forbid_ledger_rewrite() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% of % is not allowed: the ledger is append-only', TG_OP, TG_TABLE_NAME;
END $$;
CREATE TRIGGER transfers_append_only
    BEFORE UPDATE OR DELETE ON metering.transfers
    FOR EACH ROW EXECUTE FUNCTION metering.forbid_ledger_rewrite();
CREATE TRIGGER ledger_accounts_kept
    BEFORE DELETE OR UPDATE OF id ON metering.ledger_accounts
    FOR EACH ROW EXECUTE FUNCTION metering.forbid_ledger_rewrite();
CREATE TRIGGER ledger_truncate_forbidden
    BEFORE TRUNCATE ON metering.entries
    FOR EACH STATEMENT EXECUTE FUNCTION metering.forbid_ledger_rewrite();
CREATE TRIGGER transfers_truncate_forbidden
    BEFORE TRUNCATE ON metering.transfers
    FOR EACH STATEMENT EXECUTE FUNCTION metering.forbid_ledger_rewrite();
CREATE TRIGGER ledger_accounts_truncate_forbidden
    BEFORE TRUNCATE ON metering.ledger_accounts
    FOR EACH STATEMENT EXECUTE FUNCTION metering.forbid_ledger_rewrite();
