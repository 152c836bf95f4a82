//! Prometheus metrics: one [`Registry`] per process (or per service in
//! tests), metric types with fixed low-cardinality label sets, and a tiny
//! HTTP server for `GET /metrics` in the Prometheus text format.
//!
//! Label values are only ever bounded sets: provider slugs, endpoint ids and
//! method names (all from the catalog or the protos, and guarded by
//! [`BoundedLabel`]), outcome kinds and status classes. Never model names a
//! user typed, keys, generation ids or anything from a prompt.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use tokio::net::TcpListener;

use crate::Shutdown;

pub use prometheus_client::metrics::counter::Counter;
pub use prometheus_client::metrics::family::Family;
pub use prometheus_client::metrics::gauge::Gauge;
pub use prometheus_client::metrics::histogram::Histogram;

/// A label set: fixed keys, bounded values.
pub type Labels<const N: usize> = [(&'static str, String); N];
/// Counters keyed by a fixed label set.
pub type CounterFamily<const N: usize> = Family<Labels<N>, Counter>;
/// Gauges keyed by a fixed label set.
pub type GaugeFamily<const N: usize> = Family<Labels<N>, Gauge>;
/// Histograms keyed by a fixed label set; build with [`latency_family`].
pub type HistogramFamily<const N: usize> = Family<Labels<N>, Histogram, fn() -> Histogram>;

/// The content type Prometheus scrapers expect for the text format.
pub const CONTENT_TYPE_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Bucket bounds (seconds) shared by every latency histogram, from a fast
/// in-process call to a long generation.
pub const LATENCY_BUCKETS: [f64; 15] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// A histogram with [`LATENCY_BUCKETS`].
pub fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// A family of latency histograms with [`LATENCY_BUCKETS`].
pub fn latency_family<const N: usize>() -> HistogramFamily<N> {
    Family::new_with_constructor(latency_histogram as fn() -> Histogram)
}

/// A shared, cheaply cloned metrics registry. Metrics are registered once
/// at start-up; the registry is only read again when scraped.
#[derive(Clone, Default)]
pub struct Registry {
    inner: Arc<Mutex<prometheus_client::registry::Registry>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Registers `metric` (a clone shares its values) under `name`. Counter
    /// names get `_total` appended when encoded.
    pub fn register(
        &self,
        name: &str,
        help: &str,
        metric: impl prometheus_client::registry::Metric,
    ) {
        self.lock().register(name, help, metric);
    }

    /// The registry in the Prometheus/OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.lock());
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, prometheus_client::registry::Registry> {
        // A panic while registering leaves nothing half-written worth refusing.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// An axum router serving `GET /metrics` from `registry`; the router (or
/// any HTTP service) can merge it into its own app.
pub fn routes<S>(registry: Registry) -> axum::Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let body = registry.encode();
            async move { ([(CONTENT_TYPE, CONTENT_TYPE_TEXT)], body).into_response() }
        }),
    )
}

/// Serves `GET /metrics` on `listener` until `shutdown`.
pub async fn serve_metrics(
    listener: TcpListener,
    registry: Registry,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    axum::serve(crate::http::nodelay(listener), routes(registry))
        .with_graceful_shutdown(async move { shutdown.wait().await })
        .await?;
    Ok(())
}

/// Binds `addr` (port 0 picks a free port) and returns the listener with
/// its actual address, for services that print or test it.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener = crate::grpc::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// Keeps a label's values bounded even when they come from a peer: the
/// first `limit` distinct well-formed values pass through, later ones and
/// malformed ones become `"other"`. Catalog-derived values (provider slugs,
/// endpoint ids) stay well under any sensible limit.
#[derive(Debug)]
pub struct BoundedLabel {
    seen: Mutex<HashSet<String>>,
    limit: usize,
}

/// What [`BoundedLabel`] reports once the limit is reached.
pub const OTHER: &str = "other";
const MAX_LABEL_CHARS: usize = 128;

impl BoundedLabel {
    pub fn new(limit: usize) -> BoundedLabel {
        BoundedLabel {
            seen: Mutex::new(HashSet::new()),
            limit,
        }
    }

    pub fn get(&self, value: &str) -> String {
        let well_formed = !value.is_empty()
            && value.len() <= MAX_LABEL_CHARS
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._:/@-".contains(&b));
        if !well_formed {
            return OTHER.to_owned();
        }
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains(value) {
            return value.to_owned();
        }
        if seen.len() < self.limit {
            seen.insert(value.to_owned());
            return value.to_owned();
        }
        OTHER.to_owned()
    }
}

/// `"2xx"`, `"4xx"`, ... for an HTTP status: the label for HTTP responses.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_registered_metrics() {
        let registry = Registry::new();
        let requests = CounterFamily::<2>::default();
        registry.register("demo_requests", "Requests.", requests.clone());
        let latency = latency_family::<1>();
        registry.register("demo_latency_seconds", "Latency.", latency.clone());
        requests
            .get_or_create(&[("provider", "sim".into()), ("outcome", "ok".into())])
            .inc();
        latency
            .get_or_create(&[("provider", "sim".into())])
            .observe(0.2);
        let text = registry.encode();
        assert!(
            text.contains(r#"demo_requests_total{provider="sim",outcome="ok"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"demo_latency_seconds_bucket{le="0.25",provider="sim"} 1"#),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn bounded_label_caps_distinct_values() {
        let label = BoundedLabel::new(2);
        assert_eq!(label.get("a"), "a");
        assert_eq!(label.get("b"), "b");
        assert_eq!(label.get("c"), OTHER);
        assert_eq!(label.get("a"), "a");
        assert_eq!(label.get("has space"), OTHER);
        assert_eq!(label.get(""), OTHER);
        assert_eq!(label.get(&"x".repeat(200)), OTHER);
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(200), "2xx");
        assert_eq!(status_class(429), "4xx");
        assert_eq!(status_class(503), "5xx");
    }
}
