//! Time limits for one upstream call: until the first token, between
//! chunks, and in total. Each timeout names the limit that fired, so the
//! router (and a human reading the message) can tell a hang from a slow stream.

use std::time::Duration;

use tokio::time::Instant;

use crate::call::UpstreamCall;
use crate::errors::UpstreamFailure;

/// Adapter-wide timeout defaults; requests may set the first two.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub first_token: Duration,
    pub total: Duration,
    pub idle: Duration,
}

#[derive(Debug, Clone, Copy)]
pub enum Limit {
    FirstToken,
    Idle,
    Total,
}

pub struct Deadlines {
    pub first_token: Instant,
    pub total: Instant,
    first_token_timeout: Duration,
    total_timeout: Duration,
    idle: Duration,
}

impl Deadlines {
    pub fn new(timeouts: &Timeouts, call: &UpstreamCall) -> Deadlines {
        let now = Instant::now();
        let total_timeout = call.total_timeout.unwrap_or(timeouts.total);
        // A whole body is its own first token: without an explicit limit the
        // streaming default would cut long non-streaming answers short.
        let first_token_timeout = match (call.first_token_timeout, call.stream) {
            (Some(explicit), _) => explicit,
            (None, true) => timeouts.first_token,
            (None, false) => total_timeout,
        };
        Deadlines {
            first_token: now + first_token_timeout.min(total_timeout),
            total: now + total_timeout,
            first_token_timeout,
            total_timeout,
            idle: timeouts.idle,
        }
    }

    pub fn before_first_token(&self) -> (Instant, Limit) {
        if self.first_token < self.total {
            (self.first_token, Limit::FirstToken)
        } else {
            (self.total, Limit::Total)
        }
    }

    /// The deadline for the next chunk.
    pub fn next_chunk(&self, first_token_seen: bool) -> (Instant, Limit) {
        let idle = Instant::now() + self.idle;
        let (mut deadline, mut limit) = (self.total, Limit::Total);
        if !first_token_seen && self.first_token < deadline {
            (deadline, limit) = (self.first_token, Limit::FirstToken);
        }
        if idle < deadline {
            (deadline, limit) = (idle, Limit::Idle);
        }
        (deadline, limit)
    }

    pub fn failure(&self, limit: Limit) -> UpstreamFailure {
        UpstreamFailure::timeout(match limit {
            Limit::FirstToken => format!(
                "no first token from upstream within {} ms",
                self.first_token_timeout.as_millis()
            ),
            Limit::Idle => format!("upstream sent nothing for {} s", self.idle.as_secs()),
            Limit::Total => format!(
                "upstream did not finish within {} ms",
                self.total_timeout.as_millis()
            ),
        })
    }
}
