//! Endpoint performance as routing sees it: a snapshot of the last five
//! minutes per endpoint (successes, failures, latency and throughput
//! sketches), refreshed every two seconds from Redis — the fleet's view,
//! written by every router replica — or, when Redis is unreachable, from
//! this instance's own numbers. Requests only read the current snapshot.
//!
//! The same buckets answer the endpoints API (30-minute percentiles, uptime
//! over 5 minutes, 30 minutes and a day).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use switchyard_kit::Shutdown;

use crate::catalog_view::CatalogView;
use crate::stats::{Agg, Stats};

pub const ROUTING_MINUTES: i64 = 5;
const REFRESH_EVERY: Duration = Duration::from_secs(2);
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Debug, Default)]
pub struct PerfSnapshot {
    pub endpoints: HashMap<String, Agg>,
    /// Whether this came from Redis (fleet) or local numbers only.
    pub fleet: bool,
}

impl PerfSnapshot {
    pub fn get(&self, endpoint: &str) -> Option<&Agg> {
        self.endpoints.get(endpoint)
    }
}

/// Where stats live in Redis, and how to read them back.
#[derive(Clone)]
pub struct RedisStats {
    client: redis::Client,
    prefix: String,
}

impl RedisStats {
    pub fn new(url: &str, prefix: String) -> anyhow::Result<RedisStats> {
        Ok(RedisStats {
            client: redis::Client::open(url)?,
            prefix,
        })
    }

    fn minute_key(&self, endpoint: &str, minute: i64) -> String {
        format!("{}:stats:{{{endpoint}}}:1m:{minute}", self.prefix)
    }

    /// Hour-by-hour history of the fleet over the last `hours` hours.
    pub async fn hourly(
        &self,
        endpoints: &[String],
        models: &[String],
        hours: i64,
    ) -> anyhow::Result<crate::stats::Hourly> {
        let now = chrono::Utc::now().timestamp() / 3600;
        let mut conn = tokio::time::timeout(
            REDIS_TIMEOUT,
            self.client.get_multiplexed_async_connection(),
        )
        .await
        .map_err(|_| anyhow::anyhow!("Redis connect timed out"))??;
        let mut pipe = redis::pipe();
        for endpoint in endpoints {
            for h in (now - hours + 1)..=now {
                pipe.hgetall(format!("{}:stats:{{{endpoint}}}:1h:{h}", self.prefix));
            }
        }
        for model in models {
            for h in (now - hours + 1)..=now {
                pipe.hgetall(format!("{}:avail:{{{model}}}:1h:{h}", self.prefix));
            }
        }
        let replies: Vec<HashMap<String, u64>> =
            tokio::time::timeout(REDIS_TIMEOUT * 4, pipe.query_async(&mut conn))
                .await
                .map_err(|_| anyhow::anyhow!("Redis read timed out"))??;
        let mut out = crate::stats::Hourly::default();
        let mut replies = replies.into_iter();
        for endpoint in endpoints {
            let ring = ((now - hours + 1)..=now)
                .zip(replies.by_ref())
                .filter(|(_, f)| !f.is_empty())
                .map(|(h, f)| (h * 3600, Agg::from_fields(&f)))
                .collect();
            out.endpoints.insert(endpoint.clone(), ring);
        }
        for model in models {
            let ring = ((now - hours + 1)..=now)
                .zip(replies.by_ref())
                .filter(|(_, f)| !f.is_empty())
                .map(|(h, f)| (h * 3600, crate::stats::Availability::from_fields(&f)))
                .collect();
            out.models.insert(model.clone(), ring);
        }
        Ok(out)
    }

    /// The merged 1-minute buckets of each endpoint over the last `minutes`.
    pub async fn window(
        &self,
        endpoints: &[String],
        minutes: i64,
    ) -> anyhow::Result<HashMap<String, Agg>> {
        let now = chrono::Utc::now().timestamp() / 60;
        let mut conn = tokio::time::timeout(
            REDIS_TIMEOUT,
            self.client.get_multiplexed_async_connection(),
        )
        .await
        .map_err(|_| anyhow::anyhow!("Redis connect timed out"))??;
        let mut pipe = redis::pipe();
        for endpoint in endpoints {
            for m in (now - minutes + 1)..=now {
                pipe.hgetall(self.minute_key(endpoint, m));
            }
        }
        let timeout = REDIS_TIMEOUT * (1 + (endpoints.len() as i64 * minutes / 5_000) as u32);
        let replies: Vec<HashMap<String, u64>> =
            tokio::time::timeout(timeout, pipe.query_async(&mut conn))
                .await
                .map_err(|_| anyhow::anyhow!("Redis read timed out"))??;
        let mut out = HashMap::with_capacity(endpoints.len());
        for (i, endpoint) in endpoints.iter().enumerate() {
            let mut agg = Agg::default();
            for fields in &replies[i * minutes as usize..(i + 1) * minutes as usize] {
                agg.merge(&Agg::from_fields(fields));
            }
            out.insert(endpoint.clone(), agg);
        }
        Ok(out)
    }
}

/// The current snapshot, cheap to read from any request.
#[derive(Clone)]
pub struct PerfView {
    current: Arc<RwLock<Arc<PerfSnapshot>>>,
    stats: Stats,
    redis: Option<RedisStats>,
}

impl PerfView {
    pub fn new(stats: Stats, redis: Option<RedisStats>) -> PerfView {
        PerfView {
            current: Arc::new(RwLock::new(Arc::new(PerfSnapshot::default()))),
            stats,
            redis,
        }
    }

    pub fn snapshot(&self) -> Arc<PerfSnapshot> {
        self.current.read().expect("perf poisoned").clone()
    }

    /// Refreshes every two seconds until `shutdown`.
    pub fn follow(&self, catalog: CatalogView, shutdown: Shutdown) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REFRESH_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = shutdown.wait() => return,
                }
                let endpoints: Vec<String> = catalog
                    .current()
                    .models
                    .values()
                    .flat_map(|m| m.endpoints.iter().map(|e| e.id.clone()))
                    .collect();
                this.refresh(&endpoints).await;
            }
        });
    }

    pub async fn refresh(&self, endpoints: &[String]) {
        let snapshot = self.read(endpoints, ROUTING_MINUTES).await;
        *self.current.write().expect("perf poisoned") = Arc::new(snapshot);
    }

    /// Hourly history for the web pages: the fleet's from Redis when it
    /// answers, this instance's otherwise.
    pub async fn hourly(
        &self,
        endpoints: &[String],
        models: &[String],
        hours: i64,
    ) -> crate::stats::Hourly {
        if let Some(redis) = &self.redis {
            match redis.hourly(endpoints, models, hours).await {
                Ok(h) => return h,
                Err(err) => {
                    tracing::debug!(%err, "hourly stats read from Redis failed; using local")
                }
            }
        }
        self.stats.local_hourly(endpoints, models, hours)
    }

    /// A window of `minutes` for these endpoints: fleet numbers from Redis
    /// when it answers, this instance's otherwise.
    pub async fn read(&self, endpoints: &[String], minutes: i64) -> PerfSnapshot {
        if let Some(redis) = &self.redis {
            match redis.window(endpoints, minutes).await {
                Ok(endpoints) => {
                    return PerfSnapshot {
                        endpoints,
                        fleet: true,
                    };
                }
                Err(err) => {
                    tracing::debug!(%err, "stats read from Redis failed; using local stats")
                }
            }
        }
        PerfSnapshot {
            endpoints: endpoints
                .iter()
                .map(|e| (e.clone(), self.stats.local_window(e, minutes)))
                .collect(),
            fleet: false,
        }
    }
}
