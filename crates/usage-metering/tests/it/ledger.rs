//! Credits and the ledger: top-ups, usage debits in the recording
//! transaction, holds and the lease rule, key limits, key management, the
//! rollups — and randomized property tests of the ledger invariants — on
//! both backends.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use switchyard_proto::metering::v1 as pb;
use switchyard_usage_metering::keys::KeyPatch;
use switchyard_usage_metering::ledger::Billing;
use switchyard_usage_metering::{KeyKind, Metering};

use crate::support::event;

crate::on_both_backends!(
    top_ups_post_once_and_usage_debits_the_balance,
    leases_never_reserve_more_than_the_balance,
    recorded_usage_draws_the_hold_down,
    key_limits_cap_leases_per_window,
    postpaid_keys_are_unlimited_but_still_metered,
    keys_are_managed_within_their_account,
    rollups_feed_activity_model_pages_and_rankings,
    ledger_invariants_hold_under_random_operations,
    concurrent_leases_respect_the_balance,
);

const COST: i64 = 1_590_000; // event(..) at gpt-4 prices

async fn account(metering: &Metering, billing: Billing) -> (String, String) {
    let created = metering
        .ensure_key("t", KeyKind::Inference, None, billing)
        .await
        .unwrap();
    (created.key.account_id, created.key.hash)
}

async fn top_up(
    metering: &Metering,
    account: &str,
    nanos: i64,
    key: &str,
) -> pb::PostTransferResponse {
    metering
        .post_transfer(pb::PostTransferRequest {
            account_id: account.into(),
            kind: pb::TransferKind::TopUp.into(),
            amount_nanos: nanos,
            idempotency_key: key.into(),
            memo: "test".into(),
        })
        .await
        .unwrap()
}

async fn lease(
    metering: &Metering,
    account: &str,
    key: &str,
    lease_id: &str,
    want: i64,
) -> pb::AcquireLeaseResponse {
    metering
        .acquire_lease(pb::AcquireLeaseRequest {
            account_id: account.into(),
            key_hash: key.into(),
            holder: "test".into(),
            lease_id: lease_id.into(),
            want_nanos: want,
        })
        .await
        .unwrap()
}

fn usage(id: &str, account: &str, key: &str, lease_id: &str) -> pb::UsageEvent {
    pb::UsageEvent {
        key_hash: key.into(),
        lease_id: lease_id.into(),
        created_at_ms: chrono::Utc::now().timestamp_millis(),
        ..event(id, account)
    }
}

async fn assert_balanced(metering: &Metering) {
    let check = metering.check_ledger().await.unwrap();
    assert!(check.violations.is_empty(), "{:?}", check.violations);
    assert_eq!(check.entries_sum_nanos, 0);
}

async fn top_ups_post_once_and_usage_debits_the_balance(metering: Metering) {
    let (account, key) = account(&metering, Billing::Prepaid).await;
    let first = top_up(&metering, &account, 10_000_000_000, "order-1").await;
    assert!(!first.duplicate);
    assert_eq!(first.balance_nanos, 10_000_000_000);
    let again = top_up(&metering, &account, 10_000_000_000, "order-1").await;
    assert!(again.duplicate);
    assert_eq!(again.balance_nanos, 10_000_000_000);

    metering
        .record_usage(vec![
            usage("gen-a", &account, &key, ""),
            usage("gen-b", &account, &key, ""),
        ])
        .await
        .unwrap();
    // Replays change nothing.
    metering
        .record_usage(vec![usage("gen-a", &account, &key, "")])
        .await
        .unwrap();
    let summary = metering.account(&account).await.unwrap();
    assert_eq!(summary.balance_nanos, 10_000_000_000 - 2 * COST);
    assert_eq!(summary.total_credits_nanos, 10_000_000_000);
    assert_eq!(summary.total_usage_nanos, 2 * COST);

    let refund = metering
        .post_transfer(pb::PostTransferRequest {
            account_id: account.clone(),
            kind: pb::TransferKind::Refund.into(),
            amount_nanos: COST,
            idempotency_key: "refund-gen-a".into(),
            memo: "bad answer".into(),
        })
        .await
        .unwrap();
    assert_eq!(refund.balance_nanos, 10_000_000_000 - COST);
    assert_eq!(
        metering.account(&account).await.unwrap().total_usage_nanos,
        COST
    );

    // Bad transfers are refused and change nothing.
    for (amount, idem, kind) in [
        (0, "z", pb::TransferKind::TopUp),
        (-5, "n", pb::TransferKind::TopUp),
        (5, "", pb::TransferKind::TopUp),
        (5, "u", pb::TransferKind::Unspecified),
    ] {
        let err = metering
            .post_transfer(pb::PostTransferRequest {
                account_id: account.clone(),
                kind: kind.into(),
                amount_nanos: amount,
                idempotency_key: idem.into(),
                memo: String::new(),
            })
            .await;
        assert!(err.is_err(), "{amount} {idem:?} accepted");
    }
    assert!(
        metering
            .post_transfer(pb::PostTransferRequest {
                account_id: "acct-nope".into(),
                kind: pb::TransferKind::TopUp.into(),
                amount_nanos: 5,
                idempotency_key: "k".into(),
                memo: String::new(),
            })
            .await
            .is_err()
    );
    assert_eq!(
        metering.account(&account).await.unwrap().balance_nanos,
        10_000_000_000 - COST
    );
    assert_balanced(&metering).await;
}

async fn leases_never_reserve_more_than_the_balance(metering: Metering) {
    let (account, key) = account(&metering, Billing::Prepaid).await;
    // No credit at all: nothing granted, and a denial.
    let none = lease(&metering, &account, &key, "", 1_000).await;
    assert_eq!(none.granted_nanos, 0);
    assert_eq!(none.denial(), pb::LeaseDenial::InsufficientCredits);

    top_up(&metering, &account, 1_000, "c").await;
    let a = lease(&metering, &account, &key, "", 600).await;
    assert_eq!((a.granted_nanos, a.denial()), (600, pb::LeaseDenial::None));
    assert!(!a.lease_id.is_empty() && !a.unlimited);
    // A second holder (another router) only gets what is left.
    let b = lease(&metering, &account, &key, "", 600).await;
    assert_eq!(b.granted_nanos, 400);
    assert_eq!(b.denial(), pb::LeaseDenial::InsufficientCredits);
    assert_ne!(a.lease_id, b.lease_id);
    // Extending the first lease gets nothing more.
    let a2 = lease(&metering, &account, &key, &a.lease_id, 100).await;
    assert_eq!(
        (a2.lease_id.as_str(), a2.granted_nanos),
        (a.lease_id.as_str(), 0)
    );
    assert_eq!(metering.account(&account).await.unwrap().held_nanos, 1_000);
    // Releasing gives it back.
    assert_eq!(metering.release_lease(&b.lease_id).await.unwrap(), 400);
    let a3 = lease(&metering, &account, &key, &a.lease_id, 100).await;
    assert_eq!(a3.granted_nanos, 100);
    // Unknown keys and keys of other accounts get nothing.
    let (other_account, other_key) = self::account(&metering, Billing::Prepaid).await;
    let foreign = lease(&metering, &account, &other_key, "", 10).await;
    assert_eq!(foreign.denial(), pb::LeaseDenial::KeyUnknown);
    let _ = other_account;
    // A disabled key cannot lease.
    metering
        .update_key(
            &account,
            &key,
            KeyPatch {
                disabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let disabled = lease(&metering, &account, &key, "", 10).await;
    assert_eq!(disabled.denial(), pb::LeaseDenial::KeyUnknown);
    assert_balanced(&metering).await;
}

async fn recorded_usage_draws_the_hold_down(metering: Metering) {
    let (account, key) = account(&metering, Billing::Prepaid).await;
    top_up(&metering, &account, 5 * COST, "c").await;
    let l = lease(&metering, &account, &key, "", 3 * COST).await;
    assert_eq!(l.granted_nanos, 3 * COST);
    metering
        .record_usage(vec![usage("gen-1", &account, &key, &l.lease_id)])
        .await
        .unwrap();
    let summary = metering.account(&account).await.unwrap();
    assert_eq!(summary.balance_nanos, 4 * COST);
    assert_eq!(summary.held_nanos, 2 * COST, "the hold shrank by the cost");
    // Available = balance - held = 2 COST: exactly what a new lease gets.
    let other = lease(&metering, &account, &key, "", 10 * COST).await;
    assert_eq!(other.granted_nanos, 2 * COST);
    // A duplicate delivery does not draw again.
    metering
        .record_usage(vec![usage("gen-1", &account, &key, &l.lease_id)])
        .await
        .unwrap();
    assert_eq!(
        metering.account(&account).await.unwrap().held_nanos,
        4 * COST
    );
    // Expired holds are released by the sweeper; nothing expires early.
    assert_eq!(metering.expire_holds().await.unwrap(), 0);
    assert_balanced(&metering).await;
}

async fn key_limits_cap_leases_per_window(metering: Metering) {
    let (account, key) = account(&metering, Billing::Prepaid).await;
    top_up(&metering, &account, 100 * COST, "c").await;
    metering
        .update_key(
            &account,
            &key,
            KeyPatch {
                limit_nanos: Some(Some(3 * COST)),
                limit_reset: Some(Some(switchyard_usage_metering::keys::LimitReset::Daily)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    metering
        .record_usage(vec![usage("gen-1", &account, &key, "")])
        .await
        .unwrap();
    let l = lease(&metering, &account, &key, "", 10 * COST).await;
    assert_eq!(l.granted_nanos, 2 * COST);
    assert_eq!(l.denial(), pb::LeaseDenial::KeyLimit);
    let details = metering.key_details(&account, &key).await.unwrap();
    assert_eq!(details.usage.daily, COST);
    assert_eq!(details.usage.total, COST);
    assert_eq!(details.limit_remaining(), Some(2 * COST));
    // Usage of yesterday does not count against a daily limit.
    let mut old = usage("gen-old", &account, &key, "");
    old.created_at_ms -= 86_400_000;
    metering.record_usage(vec![old]).await.unwrap();
    let details = metering.key_details(&account, &key).await.unwrap();
    assert_eq!(details.usage.daily, COST);
    assert_eq!(details.usage.total, 2 * COST);
}

async fn postpaid_keys_are_unlimited_but_still_metered(metering: Metering) {
    let (account, key) = account(&metering, Billing::Postpaid).await;
    let l = lease(&metering, &account, &key, "", 1_000_000_000).await;
    assert!(l.unlimited);
    assert_eq!(l.denial(), pb::LeaseDenial::None);
    metering
        .record_usage(vec![usage("gen-1", &account, &key, "")])
        .await
        .unwrap();
    let summary = metering.account(&account).await.unwrap();
    assert_eq!(
        summary.balance_nanos, -COST,
        "postpaid balances go negative"
    );
    assert_eq!(summary.billing, Billing::Postpaid);
    // A limit still applies to a postpaid key.
    metering
        .update_key(
            &account,
            &key,
            KeyPatch {
                limit_nanos: Some(Some(COST)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let limited = lease(&metering, &account, &key, "", 10).await;
    assert!(!limited.unlimited);
    assert_eq!(limited.granted_nanos, 0);
    assert_eq!(limited.denial(), pb::LeaseDenial::KeyLimit);
    assert_balanced(&metering).await;
}

async fn keys_are_managed_within_their_account(metering: Metering) {
    let (management, _) = metering
        .bootstrap("ops", Billing::Prepaid, 5_000_000_000)
        .await
        .unwrap();
    let account = management.key.account_id.clone();
    assert!(management.key_text.starts_with("sk-sy-mgmt-v1-"));
    assert_eq!(
        metering.account(&account).await.unwrap().balance_nanos,
        5_000_000_000
    );
    let keys = metering.list_keys(&account, true, 0, 0).await.unwrap();
    assert_eq!(keys.len(), 2, "management + inference key");
    let inference = keys
        .iter()
        .find(|k| k.key.kind == KeyKind::Inference)
        .unwrap()
        .key
        .hash
        .clone();
    // An empty patch is refused, a real one applies.
    assert!(
        metering
            .update_key(&account, &inference, KeyPatch::default())
            .await
            .is_err()
    );
    let renamed = metering
        .update_key(
            &account,
            &inference,
            KeyPatch {
                name: Some("renamed".into()),
                disabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.key.name, "renamed");
    assert!(renamed.key.disabled && renamed.key.updated_at.is_some());
    assert_eq!(
        metering
            .list_keys(&account, false, 0, 0)
            .await
            .unwrap()
            .len(),
        1
    );
    // Another account's management key sees none of this.
    let (other, _) = self::account(&metering, Billing::Prepaid).await;
    assert!(metering.key_details(&other, &inference).await.is_err());
    assert!(metering.delete_key(&other, &inference).await.is_err());
    // Deleting: gone from listings and from authentication.
    metering.delete_key(&account, &inference).await.unwrap();
    assert!(metering.key_details(&account, &inference).await.is_err());
    assert_eq!(
        metering
            .list_keys(&account, true, 0, 0)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(metering.delete_key(&account, &inference).await.is_err());
}

async fn rollups_feed_activity_model_pages_and_rankings(metering: Metering) {
    let (account, key) = account(&metering, Billing::Postpaid).await;
    let yesterday = chrono::Utc::now() - chrono::Duration::days(1);
    let mut events = Vec::new();
    for i in 0..3 {
        let mut e = usage(&format!("gen-{i}"), &account, &key, "");
        e.created_at_ms = yesterday.timestamp_millis();
        e.reasoning_tokens = 2;
        e.http_referer = Some(
            if i < 2 {
                "https://a.example"
            } else {
                "https://b.example"
            }
            .into(),
        );
        e.app_title = Some(format!("App {}", if i < 2 { "A" } else { "B" }));
        events.push(e);
    }
    metering.record_usage(events).await.unwrap();

    let rows = metering
        .activity(&pb::GetActivityRequest {
            account_id: account.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row.date, yesterday.date_naive().to_string());
    assert_eq!(
        (row.requests, row.prompt_tokens, row.completion_tokens),
        (3, 111, 24)
    );
    assert_eq!((row.reasoning_tokens, row.usage_nanos), (6, 3 * COST));
    assert_eq!(row.provider_name, "OpenAI");
    // Another account sees nothing; a day outside the window is refused.
    let (other, _) = self::account(&metering, Billing::Prepaid).await;
    let none = metering
        .activity(&pb::GetActivityRequest {
            account_id: other,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(none.is_empty());
    assert!(
        metering
            .activity(&pb::GetActivityRequest {
                account_id: account.clone(),
                date: chrono::Utc::now().date_naive().to_string(),
                ..Default::default()
            })
            .await
            .is_err()
    );

    let usage = metering
        .model_usage(&pb::GetModelUsageRequest {
            model: "openai/gpt-4".into(),
            days: 7,
            now_ms: 0,
        })
        .await
        .unwrap();
    assert_eq!(usage.daily.len(), 1);
    assert_eq!(usage.daily[0].completion_tokens, 24);
    assert_eq!(usage.daily[0].reasoning_tokens, 6);
    let apps: Vec<(&str, u64)> = usage
        .top_apps
        .iter()
        .map(|a| (a.title.as_str(), a.tokens))
        .collect();
    if yesterday.date_naive().format("%m").to_string()
        == chrono::Utc::now().format("%m").to_string()
    {
        assert_eq!(apps, [("App A", 90), ("App B", 45)]);
    }
    assert_eq!(usage.prices.len(), 1);
    assert_eq!(usage.prices[0].prompt_tokens, 111);
    assert_eq!(usage.prices[0].prompt_cost_nanos, 3 * 1_110_000);

    let rankings = metering.rankings("", "").await.unwrap();
    assert_eq!(rankings.len(), 1);
    assert_eq!(rankings[0].model, "openai/gpt-4");
    let apps = metering.app_rankings("", "", "").await.unwrap();
    assert_eq!(apps[0].http_referer, "https://a.example");
    assert_eq!(apps[0].requests, 2);
    assert!(metering.rankings("2026-02-01", "2026-01-01").await.is_err());
    assert!(metering.rankings("2020-01-01", "2026-01-01").await.is_err());
}

/// Random interleavings of top-ups (some replayed), usage (some replayed,
/// some free), leases and releases: afterwards every invariant holds and
/// each account's balance is exactly credits minus usage.
async fn ledger_invariants_hold_under_random_operations(metering: Metering) {
    for seed in 0..3u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut accounts = Vec::new();
        for _ in 0..3 {
            accounts.push(account(&metering, Billing::Prepaid).await);
        }
        let mut expected = vec![(0i64, 0i64); accounts.len()]; // (credits, usage)
        let mut leases: Vec<String> = Vec::new();
        let mut generations = 0;
        for step in 0..40 {
            let which = rng.random_range(0..accounts.len());
            let (account, key) = &accounts[which];
            match rng.random_range(0..5) {
                0 => {
                    let amount = rng.random_range(1..10_000_000i64);
                    let idem = format!("s{seed}-t{}", rng.random_range(0..10));
                    let posted = top_up(&metering, account, amount, &idem).await;
                    if !posted.duplicate {
                        expected[which].0 += amount;
                    }
                }
                1 | 2 => {
                    let replay = generations > 0 && rng.random_bool(0.3);
                    let id = if replay {
                        format!("gen-s{seed}-{}-{}", which, rng.random_range(0..generations))
                    } else {
                        generations += 1;
                        format!("gen-s{seed}-{which}-{}", generations - 1)
                    };
                    let mut e = usage(&id, account, key, leases.last().map_or("", |s| s));
                    if rng.random_bool(0.2) {
                        e.completion_tokens = 0; // insured: free
                    }
                    let free = e.completion_tokens == 0;
                    let outcome = metering.record_usage(vec![e]).await.unwrap();
                    if outcome.recorded == 1 && !free {
                        expected[which].1 += COST;
                    }
                }
                3 => {
                    let l =
                        lease(&metering, account, key, "", rng.random_range(0..5_000_000)).await;
                    if !l.lease_id.is_empty() {
                        leases.push(l.lease_id);
                    }
                }
                _ => {
                    if let Some(id) = leases.pop() {
                        metering.release_lease(&id).await.unwrap();
                    }
                }
            }
            if step % 10 == 9 {
                assert_balanced(&metering).await;
            }
        }
        assert_balanced(&metering).await;
        for (i, (account, _)) in accounts.iter().enumerate() {
            let summary = metering.account(account).await.unwrap();
            let (credits, usage) = expected[i];
            assert_eq!(summary.total_credits_nanos, credits, "seed {seed}");
            assert_eq!(summary.total_usage_nanos, usage, "seed {seed}");
            assert_eq!(summary.balance_nanos, credits - usage, "seed {seed}");
            assert!(summary.held_nanos >= 0);
        }
    }
}

async fn concurrent_leases_respect_the_balance(metering: Metering) {
    let (account, key) = account(&metering, Billing::Prepaid).await;
    top_up(&metering, &account, 10_000, "c").await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (m, a, k) = (metering.clone(), account.clone(), key.clone());
        tasks.push(tokio::spawn(
            async move { lease(&m, &a, &k, "", 1_000).await },
        ));
    }
    let mut granted = 0;
    for task in tasks {
        granted += task.await.unwrap().granted_nanos;
    }
    assert_eq!(granted, 10_000, "exactly the balance, never more");
    assert_eq!(metering.account(&account).await.unwrap().held_nanos, 10_000);
}

/// The database itself refuses what would corrupt the ledger, whatever the
/// code above it does: legs must name a real transfer and ledger account,
/// each transfer's legs must sum to zero, and transfers and ledger accounts
/// cannot be removed or renamed. A batch of balanced transfers in one
/// statement passes.
#[tokio::test]
async fn postgres_refuses_writes_that_would_corrupt_the_ledger() {
    use sqlx::Connection;
    let config = crate::support::postgres_config().await;
    let url = config.database_url.clone().expect("a Postgres URL");
    let metering = Metering::open(&config)
        .await
        .expect("open Postgres metering");
    let (account, _) = account(&metering, Billing::Prepaid).await;
    top_up(&metering, &account, 5_000_000, "seed").await;
    let mut db = sqlx::PgConnection::connect(&url).await.unwrap();

    /// Runs `sql` in a transaction that must fail with `why`.
    async fn refused(db: &mut sqlx::PgConnection, sql: &str, why: &str) {
        let err = sqlx::raw_sql(&format!("BEGIN; {sql}; COMMIT;"))
            .execute(&mut *db)
            .await
            .expect_err(sql);
        let text = err.to_string();
        assert!(text.contains(why), "{sql}: {text}");
        sqlx::raw_sql("ROLLBACK").execute(&mut *db).await.unwrap();
    }
    let transfer = |id: &str| {
        format!(
            "INSERT INTO metering.transfers (id, kind, account_id, amount_nanos)
             VALUES ('{id}', 'top_up', '{account}', 7);"
        )
    };

    // Unbalanced, in one statement or split over two.
    let t1 = transfer("t-1");
    let unbalanced = format!(
        "{t1} INSERT INTO metering.entries VALUES
         ('t-1', 'system:funding', -7), ('t-1', '{account}', 6)"
    );
    refused(&mut db, &unbalanced, "does not sum to zero").await;
    let split = format!(
        "{t1} INSERT INTO metering.entries VALUES ('t-1', 'system:funding', -7);
         INSERT INTO metering.entries VALUES ('t-1', '{account}', 7)"
    );
    refused(&mut db, &split, "does not sum to zero").await;
    // A leg naming a transfer or a ledger account that does not exist.
    let dangling = format!(
        "INSERT INTO metering.entries VALUES
         ('nope', 'system:funding', -7), ('nope', '{account}', 7)"
    );
    refused(&mut db, &dangling, "unknown transfer nope").await;
    let ghost = format!(
        "{t1} INSERT INTO metering.entries VALUES
         ('t-1', 'system:funding', -7), ('t-1', 'ghost', 7)"
    );
    refused(&mut db, &ghost, "unknown ledger account ghost").await;

    // Balanced transfers, several per statement, go in.
    sqlx::raw_sql(&format!(
        "BEGIN; {} {} INSERT INTO metering.entries VALUES
         ('t-4', 'system:funding', -7), ('t-4', '{account}', 7),
         ('t-5', 'system:funding', -7), ('t-5', '{account}', 7);
         UPDATE metering.ledger_accounts SET balance_nanos = balance_nanos - 14
         WHERE id = 'system:funding';
         UPDATE metering.ledger_accounts SET balance_nanos = balance_nanos + 14
         WHERE id = '{account}'; COMMIT;",
        transfer("t-4"),
        transfer("t-5")
    ))
    .execute(&mut db)
    .await
    .unwrap();
    // A zero leg, or a second leg on an account a transfer already has.
    let zero = format!("INSERT INTO metering.entries VALUES ('t-4', '{account}', 0)");
    refused(&mut db, &zero, "entries_amount_nanos_check").await;
    let twice = format!(
        "INSERT INTO metering.entries VALUES ('t-4', '{account}', 5), ('t-4', '{account}', -5)"
    );
    refused(&mut db, &twice, "entries_pkey").await;

    // Nothing a leg points at can go away or change.
    for sql in [
        "DELETE FROM metering.transfers WHERE id = 't-4'".to_owned(),
        "UPDATE metering.transfers SET amount_nanos = 1 WHERE id = 't-4'".to_owned(),
        format!("DELETE FROM metering.ledger_accounts WHERE id = '{account}'"),
        format!("UPDATE metering.ledger_accounts SET id = 'renamed' WHERE id = '{account}'"),
        "DELETE FROM metering.entries WHERE transfer_id = 't-4'".to_owned(),
        "TRUNCATE metering.entries".to_owned(),
        "TRUNCATE metering.transfers CASCADE".to_owned(),
    ] {
        refused(&mut db, &sql, "append-only").await;
    }
    assert_balanced(&metering).await;

    // The account's totals follow transfers however they are inserted (a
    // trigger keeps them, not the service), and drift is reported.
    let summary = metering.account(&account).await.unwrap();
    assert_eq!(summary.total_credits_nanos, 5_000_000 + 14);
    let nudge = |by: i64| {
        format!(
            "UPDATE metering.account_totals SET amount_nanos = amount_nanos + {by}
             WHERE account_id = '{account}' AND kind = 'top_up'"
        )
    };
    sqlx::raw_sql(&nudge(1)).execute(&mut db).await.unwrap();
    let summary = metering.account(&account).await.unwrap();
    assert_eq!(
        summary.total_credits_nanos,
        5_000_000 + 15,
        "read from the totals"
    );
    let check = metering.check_ledger().await.unwrap();
    assert_eq!(check.violations.len(), 1, "{:?}", check.violations);
    assert!(
        check.violations[0].contains(&account),
        "{:?}",
        check.violations
    );
    sqlx::raw_sql(&nudge(-1)).execute(&mut db).await.unwrap();
    assert_balanced(&metering).await;

    // The checks keep index lookups however small the tables were when
    // their plans were cached (a cached sequential scan would read the whole
    // ledger on every batch).
    let settings: Vec<String> = sqlx::query_scalar(
        "SELECT unnest(proconfig) FROM pg_proc WHERE proname = 'check_new_entries'",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert_eq!(settings, ["enable_seqscan=off"]);
}

/// A database that already holds transfers when the totals arrive
/// (migration 0005) gets them summed up, and later ones are added.
#[tokio::test]
async fn postgres_totals_cover_transfers_posted_before_they_existed() {
    use sqlx::Connection;
    let config = crate::support::postgres_config().await;
    let url = config.database_url.clone().expect("a Postgres URL");
    let mut db = sqlx::PgConnection::connect(&url).await.unwrap();
    let all = sqlx::migrate!("./migrations");
    let before = sqlx::migrate::Migrator {
        migrations: all
            .migrations
            .iter()
            .filter(|m| m.version < 5)
            .cloned()
            .collect::<Vec<_>>()
            .into(),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    before.run(&mut db).await.unwrap();
    sqlx::raw_sql(
        "INSERT INTO metering.transfers (id, kind, account_id, amount_nanos) VALUES
         ('top_up:a1', 'top_up', 'acct-a', 100), ('top_up:a2', 'top_up', 'acct-a', 50),
         ('usage:g1', 'usage', 'acct-a', 7), ('refund:r1', 'refund', 'acct-a', 3),
         ('usage:g2', 'usage', 'acct-b', 9)",
    )
    .execute(&mut db)
    .await
    .unwrap();
    all.run(&mut db).await.unwrap();
    sqlx::raw_sql(
        "INSERT INTO metering.transfers (id, kind, account_id, amount_nanos)
         VALUES ('usage:g3', 'usage', 'acct-a', 11)",
    )
    .execute(&mut db)
    .await
    .unwrap();
    let totals: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT account_id, kind, amount_nanos FROM metering.account_totals
         ORDER BY account_id, kind",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    let expected = [
        ("acct-a", "refund", 3),
        ("acct-a", "top_up", 150),
        ("acct-a", "usage", 18),
        ("acct-b", "usage", 9),
    ];
    assert_eq!(
        totals,
        expected
            .iter()
            .map(|(a, k, n)| (a.to_string(), k.to_string(), *n))
            .collect::<Vec<_>>()
    );
}
