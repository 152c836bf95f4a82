//! Per-key request rate limits, shared by every router replica.
//!
//! GCRA (the generic cell rate algorithm): one number per key, the
//! theoretical arrival time (TAT), kept in Redis and updated by one Lua
//! script per request with Redis's own clock, so replicas agree without
//! talking to each other. A limit of `rpm` requests per minute allows a
//! burst of 10% of it (at least 1). When Redis is unreachable (or slow) each
//! replica enforces `rpm / replicas` on its own: credits, not rate limits,
//! protect money, so the limiter fails open to a local approximation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::ApiError;

const REDIS_TIMEOUT: Duration = Duration::from_millis(50);
/// After a Redis failure, stay local for this long before trying again.
const REDIS_BACKOFF: Duration = Duration::from_secs(5);
const MAX_LOCAL_KEYS: usize = 100_000;

const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if now < tat - tolerance then
  return {0, tat - tolerance - now, tat, now}
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(new_tat - now + tolerance) + 1000)
return {1, 0, new_tat, now}
";

/// What a limit decided, for the `X-RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    pub retry_after_ms: u64,
    /// Unix ms when the key's allowance is full again.
    pub reset_at_ms: u64,
}

/// GCRA parameters for `rpm` requests per minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rate {
    interval_ms: u64,
    tolerance_ms: u64,
}

impl Rate {
    fn per_minute(rpm: u32) -> Rate {
        let rpm = u64::from(rpm.max(1));
        let interval_ms = (60_000 / rpm).max(1);
        let burst = (rpm / 10).max(1);
        Rate {
            interval_ms,
            tolerance_ms: interval_ms * (burst - 1),
        }
    }

    /// One GCRA step on `tat`; returns the verdict and the new TAT.
    fn step(self, tat: u64, now: u64, limit: u32) -> (Verdict, u64) {
        let tat = tat.max(now);
        if now + self.tolerance_ms < tat {
            let retry = tat - self.tolerance_ms - now;
            return (
                Verdict {
                    allowed: false,
                    limit,
                    remaining: 0,
                    retry_after_ms: retry,
                    reset_at_ms: tat,
                },
                tat,
            );
        }
        let new_tat = tat + self.interval_ms;
        (
            Verdict {
                allowed: true,
                limit,
                remaining: self.remaining(new_tat, now),
                retry_after_ms: 0,
                reset_at_ms: new_tat,
            },
            new_tat,
        )
    }

    fn remaining(self, tat: u64, now: u64) -> u32 {
        let slack = (now + self.tolerance_ms + self.interval_ms).saturating_sub(tat);
        u32::try_from(slack / self.interval_ms).unwrap_or(u32::MAX)
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[derive(Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    redis: Option<(redis::Client, String)>,
    connection: tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
    script: redis::Script,
    default_rpm: u32,
    replicas: u32,
    local: Mutex<HashMap<String, u64>>,
    redis_down_until: Mutex<Option<std::time::Instant>>,
}

impl RateLimiter {
    /// `redis`: URL and key prefix; None = this replica alone (embedded).
    pub fn new(
        redis: Option<(&str, &str)>,
        default_rpm: u32,
        replicas: u32,
    ) -> anyhow::Result<RateLimiter> {
        let redis = match redis {
            Some((url, prefix)) => Some((redis::Client::open(url)?, prefix.to_owned())),
            None => None,
        };
        Ok(RateLimiter {
            inner: Arc::new(Inner {
                redis,
                connection: tokio::sync::Mutex::new(None),
                script: redis::Script::new(SCRIPT),
                default_rpm,
                replicas: replicas.max(1),
                local: Mutex::new(HashMap::new()),
                redis_down_until: Mutex::new(None),
            }),
        })
    }

    /// Admits one request of the key, or refuses it with 429.
    pub async fn check(
        &self,
        key_hash: &str,
        key_rpm: Option<u32>,
    ) -> Result<Option<Verdict>, ApiError> {
        let rpm = key_rpm.unwrap_or(self.inner.default_rpm);
        if rpm == 0 {
            return Ok(None);
        }
        let verdict = match self.check_redis(key_hash, rpm).await {
            Some(v) => v,
            None => self.check_local(key_hash, rpm),
        };
        if verdict.allowed {
            Ok(Some(verdict))
        } else {
            Err(ApiError::RateLimited {
                limit: rpm,
                retry_after_ms: verdict.retry_after_ms.max(1),
                reset_at_ms: now_ms() + verdict.retry_after_ms,
            })
        }
    }

    async fn check_redis(&self, key_hash: &str, rpm: u32) -> Option<Verdict> {
        let (client, prefix) = self.inner.redis.as_ref()?;
        if self
            .inner
            .redis_down_until
            .lock()
            .expect("limiter poisoned")
            .is_some_and(|until| std::time::Instant::now() < until)
        {
            return None;
        }
        let rate = Rate::per_minute(rpm);
        let key = format!("{prefix}:ratelimit:{{{key_hash}}}");
        let attempt = async {
            let mut slot = self.inner.connection.lock().await;
            if slot.is_none() {
                *slot = Some(client.get_multiplexed_async_connection().await?);
            }
            let mut conn = slot.clone().expect("just set");
            drop(slot);
            let result: Vec<u64> = self
                .inner
                .script
                .key(&key)
                .arg(rate.interval_ms)
                .arg(rate.tolerance_ms)
                .invoke_async(&mut conn)
                .await?;
            anyhow::Ok(result)
        };
        match tokio::time::timeout(REDIS_TIMEOUT, attempt).await {
            Ok(Ok(r)) if r.len() == 4 => {
                let (allowed, retry, tat, now) = (r[0] == 1, r[1], r[2], r[3]);
                Some(Verdict {
                    allowed,
                    limit: rpm,
                    remaining: if allowed { rate.remaining(tat, now) } else { 0 },
                    retry_after_ms: retry,
                    reset_at_ms: tat,
                })
            }
            outcome => {
                match outcome {
                    Ok(Err(err)) => {
                        tracing::warn!(%err, "rate limiter: Redis failed; limiting locally")
                    }
                    _ => tracing::warn!("rate limiter: Redis timed out; limiting locally"),
                }
                *self.inner.connection.lock().await = None;
                *self
                    .inner
                    .redis_down_until
                    .lock()
                    .expect("limiter poisoned") = Some(std::time::Instant::now() + REDIS_BACKOFF);
                None
            }
        }
    }

    /// This replica's share of the limit, in memory.
    fn check_local(&self, key_hash: &str, rpm: u32) -> Verdict {
        let share = if self.inner.redis.is_some() {
            (rpm / self.inner.replicas).max(1)
        } else {
            rpm
        };
        let rate = Rate::per_minute(share);
        let now = now_ms();
        let mut local = self.inner.local.lock().expect("limiter poisoned");
        if local.len() >= MAX_LOCAL_KEYS {
            local.retain(|_, tat| *tat > now);
        }
        let tat = local.get(key_hash).copied().unwrap_or(now);
        let (mut verdict, new_tat) = rate.step(tat, now, share);
        verdict.limit = rpm;
        local.insert(key_hash.to_owned(), new_tat);
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_allows_the_burst_then_one_per_interval() {
        // 600/min: one every 100 ms, burst 60.
        let rate = Rate::per_minute(600);
        assert_eq!(
            rate,
            Rate {
                interval_ms: 100,
                tolerance_ms: 5_900
            }
        );
        let mut tat = 0;
        let now = 1_000_000;
        let mut allowed = 0;
        for _ in 0..100 {
            let (v, t) = rate.step(tat, now, 600);
            tat = t;
            if v.allowed {
                allowed += 1;
            } else {
                assert_eq!(v.retry_after_ms, 100, "next slot in one interval");
            }
        }
        assert_eq!(allowed, 60);
        // 100 ms later exactly one more fits.
        assert!(rate.step(tat, now + 100, 600).0.allowed);
    }

    #[test]
    fn remaining_counts_down_within_the_burst() {
        let rate = Rate::per_minute(100); // burst 10
        let (v, tat) = rate.step(0, 50_000, 100);
        assert_eq!(v.remaining, 9);
        let (v, _) = rate.step(tat, 50_000, 100);
        assert_eq!(v.remaining, 8);
    }

    #[tokio::test]
    async fn without_redis_the_replica_enforces_the_whole_limit() {
        let limiter = RateLimiter::new(None, 0, 3).unwrap();
        assert_eq!(
            limiter.check("k", None).await.unwrap(),
            None,
            "no limit set"
        );
        let mut ok = 0;
        let mut refused = None;
        for _ in 0..5 {
            match limiter.check("k", Some(20)).await {
                Ok(_) => ok += 1,
                Err(e) => refused = Some(e),
            }
        }
        assert_eq!(ok, 2, "burst of 10% of 20/min");
        let err = refused.unwrap();
        assert_eq!(err.status(), 429);
        assert!(err.retry_after_secs().unwrap() >= 1);
    }
}
