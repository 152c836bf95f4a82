//! Endpoint statistics. Requests record outcomes into local aggregates (one
//! short mutex hold, no I/O); a background task flushes them to Redis every
//! second as pipelined `HINCRBY`s into time-bucket hashes with TTLs, so every
//! router replica sees the fleet's view. The same records feed a local
//! 30-second health window that routing reads. Redis is loss-tolerant here:
//! when it is down, batches are dropped and counted, requests never wait.
//!
//! Key layout (hash tags keep one endpoint's keys in one cluster slot):
//! `{prefix}:stats:{<endpoint>}:5s:<unix/5>`  EXPIRE 600   (routing window)
//! `{prefix}:stats:{<endpoint>}:1m:<unix/60>` EXPIRE 90000 (25 h of charts)
//! fields: ok, err, timeout, r429, client_err, ttft_n, ttft_sum_ms,
//! tps_n, tps_sum, ttft_b<i>, tps_b<i> (log buckets, 2% relative error).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchyard_kit::Shutdown;

const WINDOW_BUCKET_SECS: i64 = 5;
const WINDOW_BUCKETS: usize = 6;
const FLUSH_EVERY: Duration = Duration::from_secs(1);
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);
const TTL_5S: i64 = 600;
const TTL_1M: i64 = 90_000;
/// DDSketch gamma for 2% relative accuracy: (1 + a) / (1 - a).
const GAMMA: f64 = 1.02 / 0.98;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    Timeout,
    RateLimited,
    /// The request was bad (400/413): never held against the provider.
    ClientError,
}

#[derive(Default, Debug, Clone)]
struct Agg {
    ok: u64,
    err: u64,
    timeout: u64,
    r429: u64,
    client_err: u64,
    ttft_n: u64,
    ttft_sum_ms: u64,
    tps_n: u64,
    tps_sum: u64,
    ttft_buckets: HashMap<i32, u64>,
    tps_buckets: HashMap<i32, u64>,
}

#[derive(Default, Debug, Clone, Copy)]
struct WindowBucket {
    epoch: i64,
    ok: u32,
    failed: u32,
}

#[derive(Default, Debug)]
struct Window {
    buckets: [WindowBucket; WINDOW_BUCKETS],
    consecutive_failures: u32,
}

#[derive(Default)]
struct Inner {
    pending: Mutex<HashMap<String, Agg>>,
    health: Mutex<HashMap<String, Window>>,
    flushed_batches: AtomicU64,
    dropped_batches: AtomicU64,
}

#[derive(Clone, Default)]
pub struct Stats {
    inner: Arc<Inner>,
}

/// Log bucket index of a positive value (DDSketch).
fn bucket(value: f64) -> i32 {
    if value <= 1.0 {
        0
    } else {
        (value.ln() / GAMMA.ln()).ceil() as i32
    }
}

fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Stats {
    /// Local-only stats (no Redis): health still works per instance.
    pub fn local() -> Stats {
        Stats::default()
    }

    /// Stats flushed to Redis at `url` under `prefix` until `shutdown`
    /// (with one last flush after it).
    pub fn with_redis(url: &str, prefix: String, shutdown: Shutdown) -> anyhow::Result<Stats> {
        let client = redis::Client::open(url)?;
        let stats = Stats::default();
        tokio::spawn(flush_loop(stats.clone(), client, prefix, shutdown));
        Ok(stats)
    }

    pub fn record(
        &self,
        endpoint_id: &str,
        outcome: Outcome,
        ttft: Option<Duration>,
        tokens_per_second: Option<f64>,
    ) {
        {
            let mut pending = self.inner.pending.lock().expect("stats poisoned");
            let agg = pending.entry(endpoint_id.to_owned()).or_default();
            match outcome {
                Outcome::Success => agg.ok += 1,
                Outcome::Failure => agg.err += 1,
                Outcome::Timeout => agg.timeout += 1,
                Outcome::RateLimited => agg.r429 += 1,
                Outcome::ClientError => agg.client_err += 1,
            }
            if let Some(ttft) = ttft {
                let ms = ttft.as_secs_f64() * 1000.0;
                agg.ttft_n += 1;
                agg.ttft_sum_ms += ms.round() as u64;
                *agg.ttft_buckets.entry(bucket(ms)).or_default() += 1;
            }
            if let Some(tps) = tokens_per_second.filter(|t| t.is_finite() && *t > 0.0) {
                agg.tps_n += 1;
                agg.tps_sum += tps.round() as u64;
                *agg.tps_buckets.entry(bucket(tps)).or_default() += 1;
            }
        }
        let failed = matches!(outcome, Outcome::Failure | Outcome::Timeout);
        if failed || outcome == Outcome::Success {
            self.record_health(endpoint_id, failed, now_unix());
        }
    }

    fn record_health(&self, endpoint_id: &str, failed: bool, now: i64) {
        let epoch = now / WINDOW_BUCKET_SECS;
        let mut health = self.inner.health.lock().expect("stats poisoned");
        let window = health.entry(endpoint_id.to_owned()).or_default();
        let slot = &mut window.buckets[(epoch as usize) % WINDOW_BUCKETS];
        if slot.epoch != epoch {
            *slot = WindowBucket {
                epoch,
                ok: 0,
                failed: 0,
            };
        }
        if failed {
            slot.failed += 1;
            window.consecutive_failures += 1;
        } else {
            slot.ok += 1;
            window.consecutive_failures = 0;
        }
    }

    /// True when the endpoint had a significant outage in the last 30 s:
    /// its last 3+ attempts failed, or at least half of 4+ attempts failed.
    pub fn is_degraded(&self, endpoint_id: &str) -> bool {
        self.degraded_at(endpoint_id, now_unix())
    }

    fn degraded_at(&self, endpoint_id: &str, now: i64) -> bool {
        let health = self.inner.health.lock().expect("stats poisoned");
        let Some(window) = health.get(endpoint_id) else {
            return false;
        };
        let oldest = now / WINDOW_BUCKET_SECS - (WINDOW_BUCKETS as i64 - 1);
        let (mut ok, mut failed) = (0u32, 0u32);
        for b in window.buckets.iter().filter(|b| b.epoch >= oldest) {
            ok += b.ok;
            failed += b.failed;
        }
        if failed == 0 {
            return false;
        }
        window.consecutive_failures >= 3 || (ok + failed >= 4 && failed * 2 >= ok + failed)
    }

    pub fn flushed_batches(&self) -> u64 {
        self.inner.flushed_batches.load(Ordering::Relaxed)
    }

    pub fn dropped_batches(&self) -> u64 {
        self.inner.dropped_batches.load(Ordering::Relaxed)
    }

    fn take_pending(&self) -> HashMap<String, Agg> {
        std::mem::take(&mut *self.inner.pending.lock().expect("stats poisoned"))
    }
}

async fn flush_loop(stats: Stats, client: redis::Client, prefix: String, shutdown: Shutdown) {
    let mut conn: Option<redis::aio::MultiplexedConnection> = None;
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = shutdown.wait() => true,
        };
        let batch = stats.take_pending();
        if !batch.is_empty() {
            match flush(&client, &mut conn, &prefix, &batch, now_unix()).await {
                Ok(()) => {
                    stats.inner.flushed_batches.fetch_add(1, Ordering::Relaxed);
                }
                Err(err) => {
                    conn = None;
                    stats.inner.dropped_batches.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%err, "stats flush to Redis failed; batch dropped");
                }
            }
        }
        if stopping {
            return;
        }
    }
}

async fn flush(
    client: &redis::Client,
    conn: &mut Option<redis::aio::MultiplexedConnection>,
    prefix: &str,
    batch: &HashMap<String, Agg>,
    now: i64,
) -> anyhow::Result<()> {
    if conn.is_none() {
        let fresh = tokio::time::timeout(REDIS_TIMEOUT, client.get_multiplexed_async_connection())
            .await
            .map_err(|_| anyhow::anyhow!("connect timed out"))??;
        *conn = Some(fresh);
    }
    let conn = conn.as_mut().expect("set above");
    let mut pipe = redis::pipe();
    for (endpoint, agg) in batch {
        for (key, ttl) in [
            (
                format!("{prefix}:stats:{{{endpoint}}}:5s:{}", now / 5),
                TTL_5S,
            ),
            (
                format!("{prefix}:stats:{{{endpoint}}}:1m:{}", now / 60),
                TTL_1M,
            ),
        ] {
            for (field, value) in fields(agg) {
                pipe.hincr(&key, field, value).ignore();
            }
            pipe.expire(&key, ttl).ignore();
        }
    }
    tokio::time::timeout(REDIS_TIMEOUT, pipe.query_async::<()>(conn))
        .await
        .map_err(|_| anyhow::anyhow!("flush timed out"))??;
    Ok(())
}

fn fields(agg: &Agg) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = [
        ("ok", agg.ok),
        ("err", agg.err),
        ("timeout", agg.timeout),
        ("r429", agg.r429),
        ("client_err", agg.client_err),
        ("ttft_n", agg.ttft_n),
        ("ttft_sum_ms", agg.ttft_sum_ms),
        ("tps_n", agg.tps_n),
        ("tps_sum", agg.tps_sum),
    ]
    .into_iter()
    .filter(|(_, v)| *v > 0)
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    out.extend(
        agg.ttft_buckets
            .iter()
            .map(|(b, n)| (format!("ttft_b{b}"), *n)),
    );
    out.extend(
        agg.tps_buckets
            .iter()
            .map(|(b, n)| (format!("tps_b{b}"), *n)),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_log_spaced_with_two_percent_error() {
        for v in [5.0, 120.0, 999.0, 30_000.0] {
            let b = bucket(v);
            let upper = GAMMA.powi(b);
            let lower = GAMMA.powi(b - 1);
            assert!(lower < v && v <= upper, "{v}");
            assert!((upper - lower) / upper < 0.05);
        }
    }

    #[test]
    fn health_window_flags_outages_and_forgets_them() {
        let stats = Stats::local();
        let t = 1_000_000;
        stats.record_health("a", true, t);
        stats.record_health("a", true, t);
        assert!(
            !stats.degraded_at("a", t),
            "two failures are not an outage yet"
        );
        stats.record_health("a", true, t);
        assert!(stats.degraded_at("a", t));
        assert!(
            !stats.degraded_at("a", t + 31),
            "outages older than 30 s are forgotten"
        );
        // A success breaks the streak, but a 50% failure rate still counts.
        stats.record_health("a", false, t);
        assert!(stats.degraded_at("a", t));
        for _ in 0..10 {
            stats.record_health("a", false, t);
        }
        assert!(!stats.degraded_at("a", t));
        assert!(!stats.degraded_at("unknown", t));
    }

    #[test]
    fn client_errors_do_not_count_against_health() {
        let stats = Stats::local();
        for _ in 0..10 {
            stats.record("a", Outcome::ClientError, None, None);
            stats.record("a", Outcome::RateLimited, None, None);
        }
        assert!(!stats.is_degraded("a"));
        let pending = stats.take_pending();
        assert_eq!(pending["a"].client_err, 10);
        assert_eq!(pending["a"].r429, 10);
    }
}
