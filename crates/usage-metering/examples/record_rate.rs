//! How fast the embedded store records usage, and how many bytes each
//! request leaves on disk, as the store grows:
//!
//! ```sh
//! cargo run --release -p switchyard-usage-metering --example record_rate -- /tmp/rr 2000000
//! ```
//!
//! Records batches of 500 generations (the router's batch size) shaped like
//! the benchmark's, one batch after another, through the same `Metering`
//! the all-in-one uses, and prints the rate and the file's size every
//! 100,000 records; at the end, how long the account summary takes (what
//! `GET /api/v1/key` asks for), and each table's stored and fragmented
//! bytes (redb's own statistics). The directory must not exist or be empty.

use std::time::Instant;

use redb::{ReadableTableMetadata, TableDefinition};
use switchyard_proto::catalog::v1::Pricing;
use switchyard_proto::metering::v1::UsageEvent;
use switchyard_usage_metering::ledger::Billing;
use switchyard_usage_metering::{Config, Metering};

const BATCH: u64 = 500;
const REPORT_EVERY: u64 = 100_000;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().unwrap_or_else(|| "record-rate".into()));
    let total: u64 = args.next().map_or(Ok(1_000_000), |s| s.parse())?;
    let metering = Metering::open(&Config::embedded(dir.clone())).await?;
    let (_, key) = metering.bootstrap("bench", Billing::Postpaid, 0).await?;
    let (account, hash) = (key.key.account_id.clone(), key.key.hash.clone());
    let file = dir.join("metering.redb");
    let mut window = Instant::now();
    let mut recorded = 0;
    while recorded < total {
        let batch = (recorded..recorded + BATCH)
            .map(|n| event(n, &account, &hash))
            .collect();
        metering.record_usage(batch).await?;
        recorded += BATCH;
        if recorded % REPORT_EVERY == 0 {
            let size = std::fs::metadata(&file)?.len() as f64;
            println!(
                "{recorded} records  {:.0} records/s  file {:.2} GB ({:.0} bytes/record)",
                REPORT_EVERY as f64 / window.elapsed().as_secs_f64(),
                size / 1e9,
                size / recorded as f64,
            );
            window = Instant::now();
        }
    }
    // What `GET /api/v1/key` and `/api/v1/credits` ask of the store.
    let started = Instant::now();
    let summary = metering.account(&account).await?;
    println!(
        "account summary after {recorded} records: {:.1} ms (usage {} nanos)",
        started.elapsed().as_secs_f64() * 1e3,
        summary.total_usage_nanos,
    );
    drop(metering);
    // The usage writer thread lets go of the file when its queue is empty.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let db = redb::Database::open(&file)?;
    let txn = db.begin_read()?;
    for name in ["generations", "transfers"] {
        let table = txn.open_table(TableDefinition::<&str, &[u8]>::new(name))?;
        print_stats(name, table.len()?, table.stats()?);
    }
    let entries = txn.open_table(TableDefinition::<u64, &[u8]>::new("entries"))?;
    print_stats("entries", entries.len()?, entries.stats()?);
    Ok(())
}

fn print_stats(name: &str, rows: u64, stats: redb::TableStats) {
    let rows = rows.max(1) as f64;
    println!(
        "{name}: {rows} rows, {:.0} bytes/row stored, {:.0} bytes/row unused in its pages",
        stats.stored_bytes() as f64 / rows,
        stats.fragmented_bytes() as f64 / rows,
    );
}

/// One non-streaming request to the benchmark's model; the second of the
/// id is the record's number / 20,000 (the all-in-one's rate).
fn event(n: u64, account: &str, key_hash: &str) -> UsageEvent {
    let secs = 1_780_000_000 + (n / 20_000) as i64;
    UsageEvent {
        generation_id: format!("gen-{secs}-{n:020}"),
        account_id: account.to_owned(),
        key_hash: key_hash.to_owned(),
        model: "bench/model".into(),
        endpoint_id: "bench-sim:bench/model".into(),
        provider_slug: "bench-sim".into(),
        provider_name: "Bench Sim".into(),
        upstream_id: format!("chatcmpl-{n}"),
        created_at_ms: secs * 1000,
        prompt_tokens: 12,
        completion_tokens: 24,
        finish_reason: "stop".into(),
        native_finish_reason: "stop".into(),
        latency_ms: 1,
        generation_time_ms: 1,
        api_type: "completions".into(),
        request_id: format!("req-{n}"),
        pricing: Some(Pricing {
            prompt: "0.000001".into(),
            completion: "0.000002".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}
