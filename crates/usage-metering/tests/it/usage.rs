//! Usage recording: idempotency, atomic batches, exact costs, insurance,
//! visibility, app attribution and concurrent writers — on both backends.

use std::collections::HashSet;

use switchyard_kit::ErrorKind;
use switchyard_kit::error::ServiceError;
use switchyard_proto::metering::v1 as pb;
use switchyard_usage_metering::Metering;
use switchyard_usage_metering::store::RecordOutcome;

use crate::support::{event, full_event};

crate::on_both_backends!(
    recording_is_idempotent_per_generation_id,
    a_malformed_event_records_nothing,
    costs_are_exact,
    empty_or_errored_generations_are_free,
    generations_are_visible_only_to_their_account,
    every_field_survives_storage,
    apps_are_attributed_by_referer,
    concurrent_overlapping_batches_record_each_id_once,
);

/// What recording `event(..)`s yields: each new one costs $0.00159.
fn outcome(recorded: u32, duplicates: u32) -> RecordOutcome {
    RecordOutcome {
        recorded,
        duplicates,
        cost: i64::from(recorded) * 1_590_000,
    }
}

async fn generation(metering: &Metering, id: &str, account: &str) -> pb::Generation {
    metering
        .get_generation(id, account)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{id} not found"))
        .into()
}

async fn recording_is_idempotent_per_generation_id(metering: Metering) {
    let batch = vec![event("gen-a", "acct-1"), event("gen-b", "acct-1")];
    assert_eq!(
        metering.record_usage(batch.clone()).await.unwrap(),
        outcome(2, 0)
    );
    let first = generation(&metering, "gen-a", "acct-1").await;

    // A replay with different numbers changes nothing.
    let mut replay = batch.clone();
    replay[0].prompt_tokens = 1_000_000;
    assert_eq!(metering.record_usage(replay).await.unwrap(), outcome(0, 2));
    assert_eq!(generation(&metering, "gen-a", "acct-1").await, first);
    assert_eq!(first.total_cost_nanos, 1_590_000);

    // A repeat inside one batch is a duplicate too.
    let batch = vec![
        event("gen-c", "acct-1"),
        event("gen-c", "acct-1"),
        event("gen-a", "acct-1"),
    ];
    assert_eq!(metering.record_usage(batch).await.unwrap(), outcome(1, 2));
    assert_eq!(metering.record_usage(vec![]).await.unwrap(), outcome(0, 0));
}

async fn a_malformed_event_records_nothing(metering: Metering) {
    let mut bad_price = event("gen-bad", "acct-1");
    bad_price.pricing.as_mut().unwrap().completion = "sixty".into();
    let mut bad_id = event("chatcmpl-1", "acct-1");
    bad_id.prompt_tokens = 1;
    let mut no_account = event("gen-no-account", "");
    no_account.prompt_tokens = 1;
    for bad in [bad_price, bad_id, no_account] {
        let err = metering
            .record_usage(vec![event("gen-good", "acct-1"), bad])
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
        assert!(
            metering
                .get_generation("gen-good", "acct-1")
                .await
                .unwrap()
                .is_none()
        );
    }
    // The good event alone goes through.
    assert_eq!(
        metering
            .record_usage(vec![event("gen-good", "acct-1")])
            .await
            .unwrap(),
        outcome(1, 0)
    );
}

async fn costs_are_exact(metering: Metering) {
    let mut with_request = event("gen-request", "acct-1");
    with_request.pricing.as_mut().unwrap().request = Some("0.0005".into());
    let mut unpriced = event("gen-unpriced", "acct-1");
    unpriced.pricing = None;
    let mut tiny = event("gen-tiny", "acct-1");
    tiny.pricing = Some(switchyard_proto::catalog::v1::Pricing {
        prompt: "0.0000000000375".into(),
        completion: "0.0000000000375".into(),
        ..Default::default()
    });
    tiny.prompt_tokens = 13; // 0.4875 nano each side: each rounds to 0, the sum to 1
    tiny.completion_tokens = 13;
    let batch = vec![event("gen-gpt4", "acct-1"), with_request, unpriced, tiny];
    metering.record_usage(batch).await.unwrap();

    let gpt4 = generation(&metering, "gen-gpt4", "acct-1").await;
    assert_eq!(
        (
            gpt4.prompt_cost_nanos,
            gpt4.completion_cost_nanos,
            gpt4.total_cost_nanos
        ),
        (1_110_000, 480_000, 1_590_000)
    );
    assert_eq!(
        generation(&metering, "gen-request", "acct-1")
            .await
            .total_cost_nanos,
        2_090_000
    );
    assert_eq!(
        generation(&metering, "gen-unpriced", "acct-1")
            .await
            .total_cost_nanos,
        0
    );
    let tiny = generation(&metering, "gen-tiny", "acct-1").await;
    assert_eq!(
        (
            tiny.prompt_cost_nanos,
            tiny.completion_cost_nanos,
            tiny.total_cost_nanos
        ),
        (0, 0, 1)
    );
}

async fn empty_or_errored_generations_are_free(metering: Metering) {
    let mut empty = event("gen-empty", "acct-1");
    empty.completion_tokens = 0;
    empty.finish_reason.clear();
    let mut errored = event("gen-error", "acct-1");
    errored.finish_reason = "error".into();
    errored.completion_tokens = 0;
    let mut cut = event("gen-cut", "acct-1");
    cut.finish_reason = "error".into();
    let mut stopped_early = event("gen-stop", "acct-1");
    stopped_early.completion_tokens = 0;
    metering
        .record_usage(vec![empty, errored, stopped_early, cut])
        .await
        .unwrap();

    // Nothing generated, or the request ended in an error (also after
    // partial output): zero-completion insurance, nothing charged.
    for id in ["gen-empty", "gen-error", "gen-cut", "gen-stop"] {
        let g = generation(&metering, id, "acct-1").await;
        assert_eq!(
            (
                g.prompt_cost_nanos,
                g.completion_cost_nanos,
                g.total_cost_nanos
            ),
            (0, 0, 0),
            "{id}"
        );
        assert_eq!(
            g.event.unwrap().prompt_tokens,
            37,
            "the row is still recorded"
        );
    }
    let check = metering.check_ledger().await.unwrap();
    assert!(check.violations.is_empty(), "{:?}", check.violations);
    assert_eq!(check.transfers, 0, "free generations post no debit");
}

async fn generations_are_visible_only_to_their_account(metering: Metering) {
    metering
        .record_usage(vec![event("gen-mine", "acct-1")])
        .await
        .unwrap();
    assert!(
        metering
            .get_generation("gen-mine", "acct-1")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        metering
            .get_generation("gen-mine", "acct-2")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        metering
            .get_generation("gen-mine", "")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        metering
            .get_generation("gen-nope", "acct-1")
            .await
            .unwrap()
            .is_none()
    );
}

async fn every_field_survives_storage(metering: Metering) {
    let sent = full_event("gen-full", "acct-1");
    metering.record_usage(vec![sent.clone()]).await.unwrap();
    let stored = generation(&metering, "gen-full", "acct-1").await;
    assert_eq!(stored.event.as_ref(), Some(&sent));
    assert!(stored.app_id.is_some());
    // 37 × 0.00003 + 8 × 0.00006 + 0.001 per request.
    assert_eq!(stored.total_cost_nanos, 2_590_000);
}

async fn apps_are_attributed_by_referer(metering: Metering) {
    let with_referer = |id: &str, referer: &str, title: Option<&str>| pb::UsageEvent {
        http_referer: Some(referer.into()),
        app_title: title.map(Into::into),
        ..event(id, "acct-1")
    };
    metering
        .record_usage(vec![
            with_referer("gen-1", "https://a.example", Some("A")),
            with_referer("gen-2", "https://b.example", None),
            event("gen-3", "acct-1"),
        ])
        .await
        .unwrap();
    metering
        .record_usage(vec![with_referer("gen-4", "https://a.example", Some("A2"))])
        .await
        .unwrap();

    let app = |g: pb::Generation| g.app_id;
    let a1 = app(generation(&metering, "gen-1", "acct-1").await).unwrap();
    let b = app(generation(&metering, "gen-2", "acct-1").await).unwrap();
    let a2 = app(generation(&metering, "gen-4", "acct-1").await).unwrap();
    assert_eq!(a1, a2);
    assert_ne!(a1, b);
    assert_eq!(app(generation(&metering, "gen-3", "acct-1").await), None);
}

async fn concurrent_overlapping_batches_record_each_id_once(metering: Metering) {
    // Batch i holds ids i..i+5 in shuffled order; together 24 distinct ids.
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let metering = metering.clone();
            let mut ids: Vec<usize> = (i..i + 5).collect();
            ids.rotate_left(i % 5);
            if i % 2 == 0 {
                ids.reverse();
            }
            // Referers on a few events only, so most batches contend on
            // generation rows alone.
            let batch = ids
                .iter()
                .map(|n| pb::UsageEvent {
                    http_referer: (n % 8 == 0).then(|| format!("https://app{}.example", n % 16)),
                    ..event(&format!("gen-{n}"), "acct-1")
                })
                .collect();
            tokio::spawn(async move { metering.record_usage(batch).await })
        })
        .collect();
    let mut total = RecordOutcome::default();
    for task in tasks {
        let outcome = task.await.unwrap().expect("batch recorded");
        total.recorded += outcome.recorded;
        total.duplicates += outcome.duplicates;
        total.cost += outcome.cost;
    }
    assert_eq!(total, outcome(24, 20 * 5 - 24));
    let mut apps = HashSet::new();
    for n in 0..24 {
        let g = generation(&metering, &format!("gen-{n}"), "acct-1").await;
        assert_eq!(g.total_cost_nanos, 1_590_000);
        assert_eq!(g.app_id.is_some(), n % 8 == 0);
        apps.extend(g.app_id);
    }
    assert_eq!(
        apps.len(),
        2,
        "gen-0 and gen-16 share one app, gen-8 has another"
    );
}
