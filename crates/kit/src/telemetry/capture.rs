//! Test helper: record finished spans in memory instead of exporting them.
//! The subscriber is installed for the current thread only, so use it from
//! a current-thread runtime (`#[tokio::test]`'s default), where every task
//! the test spawns — servers included — runs on that thread and no other
//! test in the binary is affected.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tracing::subscriber::DefaultGuard;

pub use opentelemetry::trace::SpanKind;
pub use opentelemetry_sdk::trace::SpanData;

use super::LogFormat;

/// Spans recorded since [`capture_spans`]; stops recording when dropped.
pub struct SpanCapture {
    exporter: InMemorySpanExporter,
    provider: SdkTracerProvider,
    _guard: DefaultGuard,
}

/// Installs, for this thread, the same subscriber services run (the
/// OpenTelemetry layer with its filter, JSON logs to a sink) with an
/// in-memory span exporter.
pub fn capture_spans() -> SpanCapture {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = super::subscriber(
        provider.tracer("switchyard-test"),
        LogFormat::Json,
        std::io::sink,
    );
    SpanCapture {
        exporter,
        provider,
        _guard: tracing::subscriber::set_default(subscriber),
    }
}

impl SpanCapture {
    /// Every span that has ended so far, in the order they ended.
    pub fn finished(&self) -> Vec<SpanData> {
        let _ = self.provider.force_flush();
        self.exporter.get_finished_spans().unwrap_or_default()
    }

    /// The ended span named `name` (its `otel.name` if it set one).
    pub fn span(&self, name: &str) -> Option<SpanData> {
        self.finished().into_iter().find(|s| s.name == name)
    }
}
