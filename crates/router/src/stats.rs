//! Endpoint statistics. Requests record outcomes into local aggregates (one
//! short mutex hold, no I/O); a background task flushes them to Redis every
//! second as pipelined `HINCRBY`s into time-bucket hashes with TTLs, so every
//! router replica sees the fleet's view; the last 30 minutes also stay in
//! process for when Redis is away. Redis is loss-tolerant here:
//! when it is down, batches are dropped and counted, requests never wait.
//!
//! Key layout (hash tags keep one endpoint's keys in one cluster slot):
//! `{prefix}:stats:{<endpoint>}:5s:<unix/5>`  EXPIRE 600   (routing window)
//! `{prefix}:stats:{<endpoint>}:1m:<unix/60>` EXPIRE 90000 (25 h of charts)
//! `{prefix}:stats:{<endpoint>}:1h:<unix/3600>` EXPIRE 345600 (4 days of
//! hourly history for the web pages)
//! fields: ok, err, timeout, r429, client_err, ttft_n, ttft_sum_ms,
//! tps_n, tps_sum, ttft_b<i>, tps_b<i> (log buckets, 2% relative error).
//! `{prefix}:avail:{<model>}:1h:<unix/3600>` EXPIRE 345600: requests per
//! model (`total`), those served after any fallbacks (`served`) and those
//! the first endpoint tried served (`first_ok`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchyard_kit::Shutdown;

const FLUSH_EVERY: Duration = Duration::from_secs(1);
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);
const TTL_5S: i64 = 600;
const TTL_1M: i64 = 90_000;
const TTL_1H: i64 = 4 * 86_400;
/// Hours of history kept in process (for deployments without Redis).
const LOCAL_HOURS: i64 = 72;
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

/// Counts and sketches of one endpoint over some time; merge by addition.
#[derive(Default, Debug, Clone, PartialEq)]
pub struct Agg {
    pub ok: u64,
    pub err: u64,
    pub timeout: u64,
    pub r429: u64,
    pub client_err: u64,
    pub ttft_n: u64,
    pub ttft_sum_ms: u64,
    pub tps_n: u64,
    pub tps_sum: u64,
    /// Time to first token, milliseconds, log buckets.
    pub ttft_buckets: HashMap<i32, u64>,
    /// Tokens per second, log buckets.
    pub tps_buckets: HashMap<i32, u64>,
}

impl Agg {
    pub fn merge(&mut self, other: &Agg) {
        self.ok += other.ok;
        self.err += other.err;
        self.timeout += other.timeout;
        self.r429 += other.r429;
        self.client_err += other.client_err;
        self.ttft_n += other.ttft_n;
        self.ttft_sum_ms += other.ttft_sum_ms;
        self.tps_n += other.tps_n;
        self.tps_sum += other.tps_sum;
        for (b, n) in &other.ttft_buckets {
            *self.ttft_buckets.entry(*b).or_default() += n;
        }
        for (b, n) in &other.tps_buckets {
            *self.tps_buckets.entry(*b).or_default() += n;
        }
    }

    /// Reads a stats hash as flushed to Redis (unknown fields ignored).
    pub fn from_fields(fields: &HashMap<String, u64>) -> Agg {
        let mut agg = Agg::default();
        for (k, v) in fields {
            match k.as_str() {
                "ok" => agg.ok = *v,
                "err" => agg.err = *v,
                "timeout" => agg.timeout = *v,
                "r429" => agg.r429 = *v,
                "client_err" => agg.client_err = *v,
                "ttft_n" => agg.ttft_n = *v,
                "ttft_sum_ms" => agg.ttft_sum_ms = *v,
                "tps_n" => agg.tps_n = *v,
                "tps_sum" => agg.tps_sum = *v,
                other => {
                    if let Some(b) = other.strip_prefix("ttft_b").and_then(|b| b.parse().ok()) {
                        agg.ttft_buckets.insert(b, *v);
                    } else if let Some(b) = other.strip_prefix("tps_b").and_then(|b| b.parse().ok())
                    {
                        agg.tps_buckets.insert(b, *v);
                    }
                }
            }
        }
        agg
    }

    /// Attempts that count for uptime: successes, failures and timeouts
    /// (429s and client errors are excluded).
    pub fn counted(&self) -> u64 {
        self.ok + self.err + self.timeout
    }

    /// Uptime in percent, or None without counted attempts.
    pub fn uptime(&self) -> Option<f64> {
        let n = self.counted();
        (n > 0).then(|| self.ok as f64 * 100.0 / n as f64)
    }

    /// Time to first token (ms) at quantile `q` in [0, 1].
    pub fn ttft_quantile(&self, q: f64) -> Option<f64> {
        quantile(&self.ttft_buckets, q)
    }

    /// Throughput (tokens/s) that a share `q` of requests met or exceeded:
    /// "p90" throughput is the 10th percentile of the distribution.
    pub fn throughput_at_least(&self, q: f64) -> Option<f64> {
        quantile(&self.tps_buckets, 1.0 - q)
    }
}

/// The value at quantile `q` of a log-bucketed sketch (bucket midpoints, so
/// within 2% of the true value).
pub fn quantile(buckets: &HashMap<i32, u64>, q: f64) -> Option<f64> {
    let total: u64 = buckets.values().sum();
    if total == 0 {
        return None;
    }
    let mut sorted: Vec<(&i32, &u64)> = buckets.iter().collect();
    sorted.sort_by_key(|(b, _)| **b);
    let rank = (q.clamp(0.0, 1.0) * (total - 1) as f64).round() as u64;
    let mut seen = 0;
    for (b, n) in sorted {
        seen += n;
        if seen > rank {
            return Some(bucket_value(*b));
        }
    }
    None
}

/// Representative value of a bucket: the midpoint of (γ^(i-1), γ^i].
fn bucket_value(b: i32) -> f64 {
    if b <= 0 {
        1.0
    } else {
        GAMMA.powi(b) * 2.0 / (1.0 + GAMMA)
    }
}

/// The last `LOCAL_MINUTES` minutes of each endpoint, kept in process so
/// routing has numbers even when Redis is down.
const LOCAL_MINUTES: i64 = 30;

/// Whether requests for a model were served, with and without fallbacks.
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Availability {
    pub total: u64,
    pub served: u64,
    pub first_ok: u64,
}

impl Availability {
    pub fn merge(&mut self, other: &Availability) {
        self.total += other.total;
        self.served += other.served;
        self.first_ok += other.first_ok;
    }

    pub fn from_fields(fields: &HashMap<String, u64>) -> Availability {
        let get = |k: &str| fields.get(k).copied().unwrap_or(0);
        Availability {
            total: get("total"),
            served: get("served"),
            first_ok: get("first_ok"),
        }
    }
}

/// Hour-by-hour history, for the web pages.
#[derive(Default, Debug, Clone)]
pub struct Hourly {
    /// endpoint -> (hour start, unix seconds; aggregate), oldest first.
    pub endpoints: HashMap<String, Vec<(i64, Agg)>>,
    /// model -> (hour start; availability).
    pub models: HashMap<String, Vec<(i64, Availability)>>,
}

#[derive(Default)]
struct Inner {
    pending: Mutex<HashMap<String, Agg>>,
    pending_avail: Mutex<HashMap<String, Availability>>,
    hours: Mutex<HashMap<String, Vec<(i64, Agg)>>>,
    avail_hours: Mutex<HashMap<String, Vec<(i64, Availability)>>>,
    minutes: Mutex<HashMap<String, Vec<(i64, Agg)>>>,
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
    /// Local-only stats (no Redis).
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
        let mut one = Agg::default();
        {
            let agg = &mut one;
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
        let now = now_unix();
        self.inner
            .pending
            .lock()
            .expect("stats poisoned")
            .entry(endpoint_id.to_owned())
            .or_default()
            .merge(&one);
        {
            let minute = now / 60;
            let mut minutes = self.inner.minutes.lock().expect("stats poisoned");
            let ring = minutes.entry(endpoint_id.to_owned()).or_default();
            match ring.last_mut() {
                Some((m, agg)) if *m == minute => agg.merge(&one),
                _ => ring.push((minute, one.clone())),
            }
            ring.retain(|(m, _)| *m > minute - LOCAL_MINUTES);
        }
        {
            let hour = now / 3600;
            let mut hours = self.inner.hours.lock().expect("stats poisoned");
            let ring = hours.entry(endpoint_id.to_owned()).or_default();
            match ring.last_mut() {
                Some((h, agg)) if *h == hour => agg.merge(&one),
                _ => ring.push((hour, one)),
            }
            ring.retain(|(h, _)| *h > hour - LOCAL_HOURS);
        }
    }

    /// One request for `model` ended: `served` after any fallbacks, and
    /// whether the first endpoint tried served it.
    pub fn record_request(&self, model: &str, served: bool, first_ok: bool) {
        let one = Availability {
            total: 1,
            served: u64::from(served),
            first_ok: u64::from(first_ok),
        };
        self.inner
            .pending_avail
            .lock()
            .expect("stats poisoned")
            .entry(model.to_owned())
            .or_default()
            .merge(&one);
        let hour = now_unix() / 3600;
        let mut hours = self.inner.avail_hours.lock().expect("stats poisoned");
        let ring = hours.entry(model.to_owned()).or_default();
        match ring.last_mut() {
            Some((h, a)) if *h == hour => a.merge(&one),
            _ => ring.push((hour, one)),
        }
        ring.retain(|(h, _)| *h > hour - LOCAL_HOURS);
    }

    /// This instance's hourly history for these endpoints and models over
    /// the last `hours` hours.
    pub fn local_hourly(&self, endpoints: &[String], models: &[String], hours: i64) -> Hourly {
        let since = now_unix() / 3600 - hours + 1;
        let stored = self.inner.hours.lock().expect("stats poisoned");
        let endpoints = endpoints
            .iter()
            .map(|e| {
                let ring = stored.get(e).map_or_else(Vec::new, |r| {
                    r.iter()
                        .filter(|(h, _)| *h >= since)
                        .map(|(h, a)| (h * 3600, a.clone()))
                        .collect()
                });
                (e.clone(), ring)
            })
            .collect();
        drop(stored);
        let stored = self.inner.avail_hours.lock().expect("stats poisoned");
        let models = models
            .iter()
            .map(|m| {
                let ring = stored.get(m).map_or_else(Vec::new, |r| {
                    r.iter()
                        .filter(|(h, _)| *h >= since)
                        .map(|(h, a)| (h * 3600, *a))
                        .collect()
                });
                (m.clone(), ring)
            })
            .collect();
        Hourly { endpoints, models }
    }

    /// This instance's own numbers for `endpoint_id` over the last
    /// `minutes` minutes (at most 30).
    pub fn local_window(&self, endpoint_id: &str, minutes: i64) -> Agg {
        let since = now_unix() / 60 - minutes.min(LOCAL_MINUTES) + 1;
        let mut out = Agg::default();
        if let Some(ring) = self
            .inner
            .minutes
            .lock()
            .expect("stats poisoned")
            .get(endpoint_id)
        {
            for (_, agg) in ring.iter().filter(|(m, _)| *m >= since) {
                out.merge(agg);
            }
        }
        out
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
        let avail = std::mem::take(&mut *stats.inner.pending_avail.lock().expect("stats poisoned"));
        if !batch.is_empty() || !avail.is_empty() {
            match flush(&client, &mut conn, &prefix, &batch, &avail, now_unix()).await {
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
    avail: &HashMap<String, Availability>,
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
            (
                format!("{prefix}:stats:{{{endpoint}}}:1h:{}", now / 3600),
                TTL_1H,
            ),
        ] {
            for (field, value) in fields(agg) {
                pipe.hincr(&key, field, value).ignore();
            }
            pipe.expire(&key, ttl).ignore();
        }
    }
    for (model, a) in avail {
        let key = format!("{prefix}:avail:{{{model}}}:1h:{}", now / 3600);
        for (field, value) in [
            ("total", a.total),
            ("served", a.served),
            ("first_ok", a.first_ok),
        ] {
            if value > 0 {
                pipe.hincr(&key, field, value).ignore();
            }
        }
        pipe.expire(&key, TTL_1H).ignore();
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
    fn quantiles_come_back_within_two_percent() {
        let mut agg = Agg::default();
        for ms in 1..=1000 {
            *agg.ttft_buckets.entry(bucket(ms as f64)).or_default() += 1;
        }
        for (q, truth) in [(0.5, 500.0), (0.9, 900.0), (0.99, 990.0)] {
            let got = agg.ttft_quantile(q).unwrap();
            assert!((got - truth).abs() / truth < 0.03, "q{q}: {got} vs {truth}");
        }
        assert_eq!(quantile(&HashMap::new(), 0.5), None);
    }

    #[test]
    fn aggregates_round_trip_through_redis_fields() {
        let stats = Stats::local();
        stats.record(
            "a",
            Outcome::Success,
            Some(Duration::from_millis(120)),
            Some(40.0),
        );
        stats.record("a", Outcome::Timeout, None, None);
        let agg = stats.take_pending().remove("a").unwrap();
        let fields: HashMap<String, u64> = super::fields(&agg).into_iter().collect();
        assert_eq!(Agg::from_fields(&fields), agg);
        assert_eq!(agg.uptime(), Some(50.0));
        assert_eq!(stats.local_window("a", 5).counted(), 2);
    }

    #[test]
    fn client_errors_and_rate_limits_are_counted_apart() {
        let stats = Stats::local();
        for _ in 0..10 {
            stats.record("a", Outcome::ClientError, None, None);
            stats.record("a", Outcome::RateLimited, None, None);
        }
        assert_eq!(
            stats.local_window("a", 1).uptime(),
            None,
            "not counted for uptime"
        );
        let pending = stats.take_pending();
        assert_eq!(pending["a"].client_err, 10);
        assert_eq!(pending["a"].r429, 10);
    }
}
