//! One telemetry setup for every binary: `tracing` with an env filter
//! (`RUST_LOG`, default `info`), human-readable or JSON lines (JSON lines
//! carry the current span's `trace_id` / `span_id`), and OpenTelemetry
//! spans — always built, so trace ids exist and propagate across hops, and
//! exported over OTLP/gRPC when an endpoint is configured.
//! Prompts, completions and keys are never logged by any service.

#[cfg(feature = "testing")]
pub mod capture;
mod json;
mod text;

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tracing::Level;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

pub use json::JsonLayer;
use text::{LogFilter, TextFields, log_filter};

/// Set by the first [`init_with`]; later calls return at once.
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// The environment variable naming the OTLP collector; services read it
/// through their clap config (`env = OTLP_ENDPOINT_ENV`), never directly.
pub const OTLP_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// Log line format, from `--log-format` / `SWITCHYARD_LOG_FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format {other:?} (text|json)")),
        }
    }
}

/// What [`init_with`] needs; build it from the service's clap config.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// `service.name` on exported spans, e.g. `switchyard-catalog`.
    pub service_name: String,
    pub log_format: LogFormat,
    /// OTLP/gRPC collector URL (e.g. `http://otel-collector:4317`); spans
    /// are exported only when set. Plaintext: run a collector alongside.
    pub otlp_endpoint: Option<String>,
}

/// Flushes and stops span export when dropped: keep it alive in `main`
/// until the service has drained.
#[must_use = "dropping the guard stops span export"]
#[derive(Debug, Default)]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(err) = provider.shutdown()
        {
            eprintln!("flushing spans failed: {err}");
        }
    }
}

/// Installs the global subscriber without span export. Safe to call more
/// than once (later calls are ignored), which keeps tests that start
/// several services simple.
pub fn init(format: LogFormat) {
    let _no_export = init_with(TelemetryConfig {
        service_name: "switchyard".to_owned(),
        log_format: format,
        otlp_endpoint: None,
    });
}

/// Installs the global subscriber (logs + OpenTelemetry layer) and the W3C
/// trace-context propagator. Later calls are ignored and return an inert
/// guard. An exporter that cannot be built is reported and skipped: logs
/// matter more than traces.
pub fn init_with(config: TelemetryConfig) -> TelemetryGuard {
    if INSTALLED.swap(true, Ordering::SeqCst) {
        return TelemetryGuard::default();
    }
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let (provider, export) = tracer_provider(&config);
    let tracer = provider.tracer("switchyard");
    let installed = subscriber(tracer, config.log_format, std::io::stderr)
        .try_init()
        .is_ok();
    let exporting = match export {
        Export::Off => false,
        Export::On => {
            tracing::info!(
                endpoint = config.otlp_endpoint.as_deref().unwrap_or_default(),
                "exporting spans over OTLP"
            );
            true
        }
        Export::Failed(err) => {
            tracing::warn!(error = %err, "OTLP span export disabled");
            false
        }
    };
    TelemetryGuard {
        provider: (installed && exporting).then_some(provider),
    }
}

enum Export {
    Off,
    On,
    Failed(anyhow::Error),
}

/// A provider for `config.service_name`, batching spans to the OTLP
/// endpoint if one is set. Must run inside a Tokio runtime when exporting:
/// the exporter's channel lives on it.
fn tracer_provider(config: &TelemetryConfig) -> (SdkTracerProvider, Export) {
    let mut builder = SdkTracerProvider::builder().with_resource(
        opentelemetry_sdk::Resource::builder()
            .with_service_name(config.service_name.clone())
            .build(),
    );
    // An empty endpoint (e.g. `OTEL_EXPORTER_OTLP_ENDPOINT=` from a compose
    // file or .env) means "no export", like an absent one.
    let endpoint = config
        .otlp_endpoint
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty());
    let export = match endpoint.map(otlp_exporter) {
        Some(Ok(exporter)) => {
            builder = builder.with_batch_exporter(exporter);
            Export::On
        }
        Some(Err(err)) => Export::Failed(err),
        None => Export::Off,
    };
    (builder.build(), export)
}

fn otlp_exporter(endpoint: &str) -> anyhow::Result<opentelemetry_otlp::SpanExporter> {
    use opentelemetry_otlp::WithExportConfig;
    Ok(opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(std::time::Duration::from_secs(5))
        .build()?)
}

/// The subscriber every process runs: an OpenTelemetry layer that sees our
/// spans whatever `RUST_LOG` says (so traces stay whole), and a log layer
/// filtered by `RUST_LOG`.
pub(crate) fn subscriber<W>(
    tracer: SdkTracer,
    format: LogFormat,
    writer: W,
) -> impl tracing::Subscriber + Send + Sync + for<'a> tracing_subscriber::registry::LookupSpan<'a>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = log_filter(std::env::var(EnvFilter::DEFAULT_ENV).ok().as_deref());
    let logs = match format {
        LogFormat::Text => filtered(
            tracing_subscriber::fmt::layer()
                .fmt_fields(TextFields)
                .with_writer(writer)
                .with_ansi(colour_logs()),
            filter,
        ),
        LogFormat::Json => filtered(JsonLayer::new(writer), filter),
    };
    Registry::default().with(otel_layer(tracer)).with(logs)
}

/// `layer` behind the log filter, boxed so both kinds of filter fit.
fn filtered<S, L>(layer: L, filter: LogFilter) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    L: Layer<S> + Send + Sync + 'static,
{
    match filter {
        LogFilter::Targets(targets) => layer.with_filter(*targets).boxed(),
        LogFilter::Env(env) => layer.with_filter(*env).boxed(),
    }
}

/// Colours only for a person at a terminal (and not with `NO_COLOR`): a
/// log file or collector gets plain text, and a process whose stderr is
/// redirected skips styling every span field of every request.
fn colour_logs() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The OpenTelemetry layer with its own filter: INFO and above, minus the
/// transport crates whose spans would only be noise (and, for the OTLP
/// exporter's own tonic client, a feedback loop).
fn otel_layer(tracer: SdkTracer) -> impl Layer<Registry> + Send + Sync {
    let quiet = [
        "h2",
        "hyper",
        "hyper_util",
        "tonic",
        "tower",
        "reqwest",
        "opentelemetry",
    ];
    let targets = quiet
        .iter()
        .fold(Targets::new().with_default(Level::INFO), |t, target| {
            t.with_target(*target, LevelFilter::OFF)
        });
    // Every span is entered and left at each poll of its future: the layer
    // neither times those (busy/idle attributes) nor activates the
    // OpenTelemetry context on them (nothing here reads `Context::current`;
    // propagation reads the span's own context), which keeps a span's cost to
    // its creation and close.
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_tracked_inactivity(false)
        .with_context_activation(false)
        .with_threads(false)
        .with_filter(targets)
}

#[cfg(test)]
mod tests;
