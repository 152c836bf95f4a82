//! usage-metering's Prometheus metrics: usage events recorded and
//! deduplicated, dollars recorded, batch latency and key lookups. No label
//! carries an account, key, model or generation id.

use std::sync::Arc;
use std::time::Duration;

use switchyard_kit::Nanos;
use switchyard_kit::metrics::{Counter, CounterFamily, Histogram, Registry, latency_histogram};

use crate::store::RecordOutcome;

/// Cheap to clone; every clone reports into the same series.
#[derive(Clone)]
pub struct MeteringMetrics {
    inner: Arc<Inner>,
}

struct Inner {
    events: CounterFamily<1>,
    cost_nanos: Counter,
    batch_seconds: Histogram,
    key_lookups: CounterFamily<1>,
}

impl Default for MeteringMetrics {
    fn default() -> MeteringMetrics {
        MeteringMetrics {
            inner: Arc::new(Inner {
                events: CounterFamily::default(),
                cost_nanos: Counter::default(),
                batch_seconds: latency_histogram(),
                key_lookups: CounterFamily::default(),
            }),
        }
    }
}

impl MeteringMetrics {
    pub fn register(&self, registry: &Registry) {
        registry.register(
            "switchyard_metering_usage_events",
            "Usage events received, by result (recorded, duplicate).",
            self.inner.events.clone(),
        );
        registry.register(
            "switchyard_metering_cost_nanodollars",
            "Charges recorded, in nano-dollars (1e-9 USD); duplicates excluded.",
            self.inner.cost_nanos.clone(),
        );
        registry.register(
            "switchyard_metering_record_batch_seconds",
            "Time to price and durably record one usage batch.",
            self.inner.batch_seconds.clone(),
        );
        registry.register(
            "switchyard_metering_key_lookups",
            "API key authentications, by result (found, disabled, not_found).",
            self.inner.key_lookups.clone(),
        );
    }

    pub fn batch_recorded(&self, outcome: &RecordOutcome, elapsed: Duration) {
        self.inner.batch_seconds.observe(elapsed.as_secs_f64());
        for (result, count) in [
            ("recorded", outcome.recorded),
            ("duplicate", outcome.duplicates),
        ] {
            self.inner
                .events
                .get_or_create(&[("result", result.to_owned())])
                .inc_by(u64::from(count));
        }
        self.inner.cost_nanos.inc_by(non_negative(outcome.cost));
    }

    pub fn key_looked_up(&self, result: &'static str) {
        self.inner
            .key_lookups
            .get_or_create(&[("result", result.to_owned())])
            .inc();
    }
}

/// Charges are never negative; a counter must never go down.
fn non_negative(nanos: Nanos) -> u64 {
    u64::try_from(nanos).unwrap_or(0)
}
