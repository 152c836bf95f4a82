use std::sync::{Arc, Mutex};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde_json::Value;
use tracing_subscriber::fmt::MakeWriter;

use super::*;

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buffer {
    type Writer = Buffer;
    fn make_writer(&'a self) -> Buffer {
        self.clone()
    }
}

impl Buffer {
    fn lines(&self) -> Vec<Value> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|line| serde_json::from_str(line).expect("every line is JSON"))
            .collect()
    }
}

#[test]
fn json_lines_carry_the_trace_id_inside_a_span() {
    let buffer = Buffer::default();
    // No exporter: trace ids exist all the same.
    let provider = SdkTracerProvider::builder().build();
    let subscriber = subscriber(provider.tracer("test"), LogFormat::Json, buffer.clone());
    let trace_id = tracing::subscriber::with_default(subscriber, || {
        tracing::info!(answer = 42, "outside");
        let span = tracing::info_span!("work", job = "demo");
        let _entered = span.enter();
        tracing::info!(provider = "sim", "inside");
        crate::trace_context::current_trace_id().expect("a traced span")
    });
    let lines = buffer.lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let (outside, inside) = (&lines[0], &lines[1]);
    assert_eq!(outside["message"], "outside");
    assert_eq!(outside["answer"], 42);
    assert_eq!(outside["level"], "INFO");
    assert!(outside.get("trace_id").is_none());
    assert_eq!(inside["message"], "inside");
    assert_eq!(inside["provider"], "sim");
    assert_eq!(inside["span"], "work");
    assert_eq!(inside["trace_id"], trace_id.as_str());
    assert_eq!(inside["span_id"].as_str().unwrap().len(), 16);
    assert!(inside["timestamp"].as_str().unwrap().contains('T'));
}

#[test]
fn text_lines_show_span_fields_but_not_the_otel_ones() {
    let buffer = Buffer::default();
    let provider = SdkTracerProvider::builder().build();
    let subscriber = subscriber(provider.tracer("test"), LogFormat::Text, buffer.clone());
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!(
            "upstream.generate",
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            provider = %"sim",
            attempt = 2,
            error.type = tracing::field::Empty,
        );
        let _entered = span.enter();
        span.record("otel.status_code", "ERROR");
        span.record("error.type", "timeout");
        tracing::warn!(status = 503, detail = "upstream said \"no\"", "giving up");
    });
    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    let line = text.lines().next().expect("one line");
    assert!(
        line.contains(
            r#"upstream.generate{provider=sim attempt=2 error.type="timeout"}: switchyard_kit::telemetry::tests: giving up status=503 detail="upstream said \"no\"""#
        ),
        "{line}"
    );
    assert!(line.contains("WARN"), "{line}");
    assert!(!line.contains("otel"), "{line}");
}

#[test]
fn init_is_idempotent() {
    init(LogFormat::Text);
    init(LogFormat::Json);
    let guard = init_with(TelemetryConfig {
        service_name: "test".into(),
        log_format: LogFormat::Json,
        otlp_endpoint: Some("http://127.0.0.1:1".into()),
    });
    assert!(guard.provider.is_none(), "a second init exports nothing");
}

mod otlp {
    use opentelemetry::trace::Tracer as _;
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
        TraceService, TraceServiceServer,
    };
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    };
    use tokio::sync::mpsc;
    use tokio_stream::wrappers::TcpListenerStream;

    use super::*;

    struct Collector(mpsc::UnboundedSender<ExportTraceServiceRequest>);

    #[tonic::async_trait]
    impl TraceService for Collector {
        async fn export(
            &self,
            request: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            let _ = self.0.send(request.into_inner());
            Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
        }
    }

    // Multi-threaded: flushing blocks a thread while the runtime carries the
    // export to the collector, as at shutdown in a service.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spans_reach_an_otlp_collector() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(Collector(tx)))
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        let (provider, export) = tracer_provider(&TelemetryConfig {
            service_name: "otlp-test".into(),
            log_format: LogFormat::Json,
            otlp_endpoint: Some(endpoint),
        });
        assert!(matches!(export, Export::On));
        provider.tracer("test").in_span("exported", |_| {});
        tokio::task::spawn_blocking(move || provider.shutdown())
            .await
            .unwrap()
            .expect("flushed");
        let request = rx.recv().await.expect("an export");
        let resource_spans = &request.resource_spans[0];
        let service = resource_spans
            .resource
            .as_ref()
            .unwrap()
            .attributes
            .iter()
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.clone())
            .expect("service.name");
        assert!(format!("{service:?}").contains("otlp-test"), "{service:?}");
        let span = &resource_spans.scope_spans[0].spans[0];
        assert_eq!(span.name, "exported");
    }

    #[test]
    fn a_bad_endpoint_disables_export_only() {
        let (_, export) = tracer_provider(&TelemetryConfig {
            service_name: "test".into(),
            log_format: LogFormat::Text,
            otlp_endpoint: Some("not a url".into()),
        });
        assert!(matches!(export, Export::Failed(_)));
    }
}
