//! Per-endpoint health: a breaker and a rate-limit cooldown, kept in memory
//! and fed by every attempt's outcome.
//!
//! Breaker: opens after 5 consecutive failures, or when at least half of 10+
//! attempts in the last 30 s failed. Ejection lasts 30 s × times ejected,
//! capped at 300 s, plus up to 50% jitter. After that one probe request is
//! let through (half-open): success closes the breaker, failure re-opens it
//! for longer. 429 is its own signal: the endpoint cools down for
//! Retry-After (default 5 s, at most 60 s) without counting as an outage.
//! Client errors (400/413) never count against an endpoint.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::Rng;

const CONSECUTIVE_TO_OPEN: u32 = 5;
const WINDOW: Duration = Duration::from_secs(30);
const WINDOW_BUCKETS: usize = 6;
const WINDOW_MIN_REQUESTS: u32 = 10;
const BASE_EJECTION: Duration = Duration::from_secs(30);
const MAX_EJECTION: Duration = Duration::from_secs(300);
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(5);
pub const MAX_COOLDOWN: Duration = Duration::from_secs(60);
/// An ejection count is forgotten after this long closed.
const EJECTION_MEMORY: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Open,
    HalfOpen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    /// The one request let through a half-open breaker.
    Probe,
    /// Breaker open (or its probe already out).
    Ejected,
    /// Cooling down after a 429, until this instant.
    CoolingDown(Instant),
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    slot: u64,
    ok: u32,
    failed: u32,
}

#[derive(Debug)]
struct Breaker {
    state: State,
    open_until: Instant,
    probe_out: bool,
    ejections: u32,
    closed_since: Instant,
    consecutive: u32,
    buckets: [Bucket; WINDOW_BUCKETS],
    cooldown_until: Option<Instant>,
}

impl Breaker {
    fn new(now: Instant) -> Breaker {
        Breaker {
            state: State::Closed,
            open_until: now,
            probe_out: false,
            ejections: 0,
            closed_since: now,
            consecutive: 0,
            buckets: [Bucket::default(); WINDOW_BUCKETS],
            cooldown_until: None,
        }
    }
}

/// Outcome of one attempt, as health sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Success,
    Failure,
    RateLimited(Option<Duration>),
    /// The request's own fault, or the client went away: no signal.
    Neutral,
}

pub struct Health {
    epoch: Instant,
    breakers: Mutex<HashMap<String, Breaker>>,
}

impl Default for Health {
    fn default() -> Health {
        Health {
            epoch: Instant::now(),
            breakers: Mutex::new(HashMap::new()),
        }
    }
}

impl Health {
    fn slot(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs()
            / (WINDOW.as_secs() / WINDOW_BUCKETS as u64)
    }

    /// Whether a request may go to `endpoint` now. A `Probe` admission must
    /// be followed by `record` (the probe's outcome decides the breaker).
    pub fn admit(&self, endpoint: &str, now: Instant) -> Admission {
        let mut map = self.breakers.lock().expect("health poisoned");
        let Some(b) = map.get_mut(endpoint) else {
            return Admission::Allowed;
        };
        if let Some(until) = b.cooldown_until {
            if now < until {
                return Admission::CoolingDown(until);
            }
            b.cooldown_until = None;
        }
        match b.state {
            State::Closed => Admission::Allowed,
            State::Open if now < b.open_until => Admission::Ejected,
            State::Open | State::HalfOpen => {
                if b.probe_out {
                    Admission::Ejected
                } else {
                    b.state = State::HalfOpen;
                    b.probe_out = true;
                    Admission::Probe
                }
            }
        }
    }

    /// Whether admission would currently be refused (no side effects).
    pub fn unavailable(&self, endpoint: &str, now: Instant) -> Option<Admission> {
        let map = self.breakers.lock().expect("health poisoned");
        let b = map.get(endpoint)?;
        if let Some(until) = b.cooldown_until.filter(|u| now < *u) {
            return Some(Admission::CoolingDown(until));
        }
        match b.state {
            State::Open if now < b.open_until => Some(Admission::Ejected),
            State::HalfOpen if b.probe_out => Some(Admission::Ejected),
            _ => None,
        }
    }

    /// True when the endpoint failed recently (last 30 s) without being
    /// ejected: load balancing puts it last.
    pub fn recently_failed(&self, endpoint: &str, now: Instant) -> bool {
        let map = self.breakers.lock().expect("health poisoned");
        let Some(b) = map.get(endpoint) else {
            return false;
        };
        let oldest = self.slot(now).saturating_sub(WINDOW_BUCKETS as u64 - 1);
        b.buckets.iter().any(|x| x.slot >= oldest && x.failed > 0) || b.state != State::Closed
    }

    pub fn state(&self, endpoint: &str) -> State {
        self.breakers
            .lock()
            .expect("health poisoned")
            .get(endpoint)
            .map_or(State::Closed, |b| b.state)
    }

    pub fn record(&self, endpoint: &str, signal: Signal, now: Instant) {
        let slot = self.slot(now);
        let mut map = self.breakers.lock().expect("health poisoned");
        let b = map
            .entry(endpoint.to_owned())
            .or_insert_with(|| Breaker::new(now));
        match signal {
            Signal::Neutral => {
                // A probe that ended neutral frees the probe slot.
                b.probe_out = false;
            }
            Signal::RateLimited(retry_after) => {
                let wait = retry_after.unwrap_or(DEFAULT_COOLDOWN).min(MAX_COOLDOWN);
                b.cooldown_until = Some(now + wait);
                b.probe_out = false;
            }
            Signal::Success => {
                bump(&mut b.buckets, slot, false);
                b.consecutive = 0;
                if b.state != State::Closed {
                    b.state = State::Closed;
                    b.closed_since = now;
                }
                b.probe_out = false;
                if now.saturating_duration_since(b.closed_since) > EJECTION_MEMORY {
                    b.ejections = 0;
                }
            }
            Signal::Failure => {
                bump(&mut b.buckets, slot, true);
                b.consecutive += 1;
                let oldest = slot.saturating_sub(WINDOW_BUCKETS as u64 - 1);
                let (ok, failed) = b
                    .buckets
                    .iter()
                    .filter(|x| x.slot >= oldest)
                    .fold((0, 0), |(o, f), x| (o + x.ok, f + x.failed));
                let trips = b.consecutive >= CONSECUTIVE_TO_OPEN
                    || (ok + failed >= WINDOW_MIN_REQUESTS && failed * 2 >= ok + failed);
                if b.state == State::HalfOpen || (b.state == State::Closed && trips) {
                    b.ejections += 1;
                    let base = (BASE_EJECTION * b.ejections).min(MAX_EJECTION);
                    let jitter = base.mul_f64(rand::rng().random_range(0.0..0.5));
                    b.state = State::Open;
                    b.open_until = now + base + jitter;
                    b.probe_out = false;
                    tracing::warn!(
                        endpoint,
                        ejections = b.ejections,
                        seconds = (base + jitter).as_secs(),
                        "breaker opened"
                    );
                }
            }
        }
    }
}

fn bump(buckets: &mut [Bucket; WINDOW_BUCKETS], slot: u64, failed: bool) {
    let b = &mut buckets[(slot % WINDOW_BUCKETS as u64) as usize];
    if b.slot != slot {
        *b = Bucket {
            slot,
            ok: 0,
            failed: 0,
        };
    }
    if failed {
        b.failed += 1;
    } else {
        b.ok += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_consecutive_failures_open_then_one_probe_closes() {
        let h = Health::default();
        let t = Instant::now();
        for i in 0..4 {
            h.record("a", Signal::Failure, t);
            assert_eq!(
                h.admit("a", t),
                Admission::Allowed,
                "after {} failures",
                i + 1
            );
        }
        h.record("a", Signal::Failure, t);
        assert_eq!(h.state("a"), State::Open);
        assert_eq!(
            h.admit("a", t + Duration::from_secs(29)),
            Admission::Ejected
        );
        // 30 s base, at most +50% jitter.
        let later = t + Duration::from_secs(46);
        assert_eq!(h.admit("a", later), Admission::Probe);
        assert_eq!(
            h.admit("a", later),
            Admission::Ejected,
            "only one probe at a time"
        );
        h.record("a", Signal::Success, later);
        assert_eq!(h.state("a"), State::Closed);
        assert_eq!(h.admit("a", later), Admission::Allowed);
    }

    #[test]
    fn a_failed_probe_ejects_for_longer() {
        let h = Health::default();
        let t = Instant::now();
        for _ in 0..5 {
            h.record("a", Signal::Failure, t);
        }
        let probe_at = t + Duration::from_secs(46);
        assert_eq!(h.admit("a", probe_at), Admission::Probe);
        h.record("a", Signal::Failure, probe_at);
        assert_eq!(h.state("a"), State::Open);
        // Second ejection: 60 s base.
        assert_eq!(
            h.admit("a", probe_at + Duration::from_secs(59)),
            Admission::Ejected
        );
        assert_eq!(
            h.admit("a", probe_at + Duration::from_secs(91)),
            Admission::Probe
        );
    }

    #[test]
    fn half_failures_over_ten_requests_open() {
        let h = Health::default();
        let t = Instant::now();
        for _ in 0..5 {
            h.record("a", Signal::Success, t);
            h.record("a", Signal::Failure, t);
        }
        assert_eq!(h.state("a"), State::Open);
        let h = Health::default();
        for _ in 0..6 {
            h.record("b", Signal::Success, t);
        }
        for _ in 0..4 {
            h.record("b", Signal::Failure, t);
        }
        assert_eq!(h.state("b"), State::Closed, "40% is not enough");
    }

    #[test]
    fn rate_limits_cool_down_without_counting_as_failures() {
        let h = Health::default();
        let t = Instant::now();
        for _ in 0..20 {
            h.record("a", Signal::RateLimited(Some(Duration::from_secs(2))), t);
        }
        assert_eq!(h.state("a"), State::Closed);
        assert!(matches!(
            h.admit("a", t + Duration::from_secs(1)),
            Admission::CoolingDown(_)
        ));
        assert_eq!(h.admit("a", t + Duration::from_secs(3)), Admission::Allowed);
        h.record("a", Signal::RateLimited(Some(Duration::from_secs(3600))), t);
        assert_eq!(
            h.admit("a", t + Duration::from_secs(61)),
            Admission::Allowed,
            "capped at 60 s"
        );
        for _ in 0..20 {
            h.record("a", Signal::Neutral, t);
        }
        assert_eq!(h.state("a"), State::Closed);
    }
}
