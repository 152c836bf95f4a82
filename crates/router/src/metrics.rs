//! The router's Prometheus metrics. Labels stay low-cardinality: API and
//! stream mode, error types and failure kinds from fixed vocabularies,
//! provider slugs and endpoint ids from the catalog (bounded) — never model
//! names as sent by users, keys or generation ids.

use switchyard_kit::metrics::{
    BoundedLabel, Counter, CounterFamily, Gauge, GaugeFamily, HistogramFamily, Registry,
    latency_family,
};

/// Endpoint ids beyond this many share the label "other".
const MAX_ENDPOINT_LABELS: usize = 2000;

#[derive(Clone)]
pub struct RouterMetrics {
    completions: CounterFamily<2>,
    errors: CounterFamily<1>,
    ttft: HistogramFamily<1>,
    duration: HistogramFamily<1>,
    attempts: CounterFamily<2>,
    fallbacks: CounterFamily<1>,
    breaker_open: GaugeFamily<1>,
    endpoint_label: std::sync::Arc<BoundedLabel>,
    pub spool_frames: Gauge,
    pub metering_lag_seconds: Gauge,
    cost: Counter,
}

fn stream_label(stream: bool) -> String {
    if stream { "true" } else { "false" }.to_owned()
}

impl RouterMetrics {
    pub fn register(registry: &Registry) -> RouterMetrics {
        let m = RouterMetrics {
            completions: CounterFamily::default(),
            errors: CounterFamily::default(),
            ttft: latency_family(),
            duration: latency_family(),
            attempts: CounterFamily::default(),
            fallbacks: CounterFamily::default(),
            breaker_open: GaugeFamily::default(),
            endpoint_label: std::sync::Arc::new(BoundedLabel::new(MAX_ENDPOINT_LABELS)),
            spool_frames: Gauge::default(),
            metering_lag_seconds: Gauge::default(),
            cost: Counter::default(),
        };
        registry.register(
            "switchyard_router_completions",
            "Completions that reached a provider, by stream mode and finish (stop, length, tool_calls, error, cancelled, ...).",
            m.completions.clone(),
        );
        registry.register(
            "switchyard_router_errors",
            "Requests answered with an error before any content, by OpenRouter error_type.",
            m.errors.clone(),
        );
        registry.register(
            "switchyard_router_ttft_seconds",
            "Time from request to first token, by stream mode.",
            m.ttft.clone(),
        );
        registry.register(
            "switchyard_router_duration_seconds",
            "Time from request to the end of the completion, by stream mode.",
            m.duration.clone(),
        );
        registry.register(
            "switchyard_router_attempts",
            "Upstream attempts by provider slug and outcome (ok or the failure kind).",
            m.attempts.clone(),
        );
        registry.register(
            "switchyard_router_fallbacks",
            "Moves to another endpoint after a failed attempt, by the failure kind.",
            m.fallbacks.clone(),
        );
        registry.register(
            "switchyard_router_breaker_open",
            "1 while an endpoint's breaker is open on this router.",
            m.breaker_open.clone(),
        );
        registry.register(
            "switchyard_router_usage_spool_frames",
            "Usage batches waiting in the durable spool for usage-metering.",
            m.spool_frames.clone(),
        );
        registry.register(
            "switchyard_router_metering_lag_seconds",
            "Age of the oldest usage batch not yet acknowledged by usage-metering (0 when none).",
            m.metering_lag_seconds.clone(),
        );
        registry.register(
            "switchyard_router_cost_nanodollars",
            "Cost of completions served, in nano-dollars.",
            m.cost.clone(),
        );
        m
    }

    pub fn completion(&self, stream: bool, finish: &str) {
        let finish = match finish {
            "" => "none",
            "stop" | "length" | "tool_calls" | "content_filter" | "error" | "cancelled" => finish,
            _ => "other",
        };
        self.completions
            .get_or_create(&[
                ("stream", stream_label(stream)),
                ("finish", finish.to_owned()),
            ])
            .inc();
    }

    pub fn error(&self, error_type: &'static str) {
        self.errors
            .get_or_create(&[("error_type", error_type.to_owned())])
            .inc();
    }

    pub fn timings(
        &self,
        stream: bool,
        ttft: Option<std::time::Duration>,
        total: std::time::Duration,
    ) {
        if let Some(ttft) = ttft {
            self.ttft
                .get_or_create(&[("stream", stream_label(stream))])
                .observe(ttft.as_secs_f64());
        }
        self.duration
            .get_or_create(&[("stream", stream_label(stream))])
            .observe(total.as_secs_f64());
    }

    pub fn attempt(&self, provider: &str, outcome: &str) {
        self.attempts
            .get_or_create(&[
                ("provider", provider.to_owned()),
                ("outcome", outcome.to_owned()),
            ])
            .inc();
    }

    pub fn fallback(&self, reason: &str) {
        self.fallbacks
            .get_or_create(&[("reason", reason.to_owned())])
            .inc();
    }

    pub fn breaker(&self, endpoint: &str, open: bool) {
        self.breaker_open
            .get_or_create(&[("endpoint", self.endpoint_label.get(endpoint))])
            .set(i64::from(open));
    }

    pub fn cost(&self, nanos: i64) {
        self.cost.inc_by(nanos.max(0) as u64);
    }
}

/// Snake-case name of an upstream failure kind, for labels.
pub fn kind_label(kind: switchyard_proto::provider::v1::UpstreamErrorKind) -> String {
    kind.as_str_name()
        .trim_start_matches("UPSTREAM_ERROR_KIND_")
        .to_lowercase()
}
