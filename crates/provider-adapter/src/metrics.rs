//! The adapter's Prometheus metrics: upstream calls by provider and
//! outcome, time to first token and total time by provider. Provider slugs
//! come from the catalog via the router; [`BoundedLabel`] caps them anyway.

use std::sync::Arc;
use std::time::Duration;

use switchyard_kit::metrics::{
    BoundedLabel, CounterFamily, HistogramFamily, Registry, latency_family,
};
use switchyard_proto::provider::v1::UpstreamErrorKind;

/// Distinct provider slugs tracked before the rest count as `other`.
const MAX_PROVIDERS: usize = 256;

/// How an upstream call ended, as a label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// The router went away first; the upstream call was dropped.
    Cancelled,
    Failed(UpstreamErrorKind),
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Cancelled => "cancelled",
            Outcome::Failed(kind) => match kind {
                UpstreamErrorKind::Unspecified => "unspecified",
                UpstreamErrorKind::RateLimited => "rate_limited",
                UpstreamErrorKind::Overloaded => "overloaded",
                UpstreamErrorKind::Unavailable => "unavailable",
                UpstreamErrorKind::Timeout => "timeout",
                UpstreamErrorKind::ContextLengthExceeded => "context_length_exceeded",
                UpstreamErrorKind::InvalidRequest => "invalid_request",
                UpstreamErrorKind::Authentication => "authentication",
                UpstreamErrorKind::PermissionDenied => "permission_denied",
                UpstreamErrorKind::ContentFilter => "content_filter",
                UpstreamErrorKind::NotFound => "not_found",
                UpstreamErrorKind::BadResponse => "bad_response",
            },
        }
    }
}

/// Cheap to clone; every clone records into the same series.
#[derive(Clone)]
pub struct AdapterMetrics {
    inner: Arc<Inner>,
}

struct Inner {
    requests: CounterFamily<2>,
    ttft: HistogramFamily<1>,
    duration: HistogramFamily<2>,
    providers: BoundedLabel,
}

impl Default for AdapterMetrics {
    fn default() -> AdapterMetrics {
        AdapterMetrics {
            inner: Arc::new(Inner {
                requests: CounterFamily::default(),
                ttft: latency_family(),
                duration: latency_family(),
                providers: BoundedLabel::new(MAX_PROVIDERS),
            }),
        }
    }
}

impl AdapterMetrics {
    pub fn register(&self, registry: &Registry) {
        registry.register(
            "switchyard_adapter_upstream_requests",
            "Upstream provider calls, by provider slug and outcome (ok, cancelled or error kind).",
            self.inner.requests.clone(),
        );
        registry.register(
            "switchyard_adapter_upstream_ttft_seconds",
            "Time from sending an upstream request to its first content, by provider slug.",
            self.inner.ttft.clone(),
        );
        registry.register(
            "switchyard_adapter_upstream_duration_seconds",
            "Time from sending an upstream request to its end, by provider slug and outcome.",
            self.inner.duration.clone(),
        );
    }

    /// The label value for a provider slug.
    pub fn provider(&self, slug: &str) -> String {
        self.inner.providers.get(slug)
    }

    pub fn first_token(&self, provider: &str, elapsed: Duration) {
        self.inner
            .ttft
            .get_or_create(&[("provider", provider.to_owned())])
            .observe(elapsed.as_secs_f64());
    }

    pub fn finished(&self, provider: &str, outcome: Outcome, elapsed: Duration) {
        let labels = [
            ("provider", provider.to_owned()),
            ("outcome", outcome.as_str().to_owned()),
        ];
        self.inner.requests.get_or_create(&labels).inc();
        self.inner
            .duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_labels_are_snake_case() {
        assert_eq!(Outcome::Ok.as_str(), "ok");
        assert_eq!(
            Outcome::Failed(UpstreamErrorKind::RateLimited).as_str(),
            "rate_limited"
        );
        let metrics = AdapterMetrics::default();
        let registry = Registry::new();
        metrics.register(&registry);
        metrics.finished(
            "sim",
            Outcome::Failed(UpstreamErrorKind::Timeout),
            Duration::from_millis(5),
        );
        let text = registry.encode();
        assert!(
            text.contains(
                r#"switchyard_adapter_upstream_requests_total{provider="sim",outcome="timeout"} 1"#
            ),
            "{text}"
        );
    }
}
