//! JSON log lines that carry the OpenTelemetry `trace_id` and `span_id` of
//! the span an event happened in, so a log search can jump to the trace.
//! A layer rather than a `fmt` formatter because it must reach the
//! OpenTelemetry layer's span data through the dispatcher it is part of.

use std::io::Write;
use std::sync::OnceLock;

use opentelemetry::trace::TraceContextExt;
use serde_json::{Map, Value};
use tracing::dispatcher::WeakDispatch;
use tracing::field::{Field, Visit};
use tracing::{Dispatch, Event, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// Writes one JSON object per event: `timestamp`, `level`, `target`,
/// `message`, the event's fields, `span` (the innermost span's name) and,
/// inside a traced span, `trace_id` and `span_id`.
pub struct JsonLayer<W> {
    writer: W,
    dispatch: OnceLock<WeakDispatch>,
}

impl<W> JsonLayer<W> {
    pub fn new(writer: W) -> JsonLayer<W> {
        JsonLayer {
            writer,
            dispatch: OnceLock::new(),
        }
    }
}

impl<S, W> tracing_subscriber::Layer<S> for JsonLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + 'static,
{
    fn on_register_dispatch(&self, dispatch: &Dispatch) {
        let _ = self.dispatch.set(dispatch.downgrade());
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut line = Map::new();
        let mut timestamp = String::new();
        if SystemTime
            .format_time(&mut Writer::new(&mut timestamp))
            .is_ok()
        {
            line.insert("timestamp".into(), timestamp.into());
        }
        let meta = event.metadata();
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("target".into(), meta.target().into());
        event.record(&mut FieldVisitor(&mut line));
        if let Some(span) = ctx.event_span(event) {
            line.insert("span".into(), span.name().into());
            let id = span.id();
            // The span ref must not be held while the OpenTelemetry layer
            // locks the span's extensions.
            drop(span);
            if let Some(dispatch) = self.dispatch.get().and_then(WeakDispatch::upgrade)
                && let Some(cx) = tracing_opentelemetry::get_otel_context(&id, &dispatch)
            {
                let otel_span = cx.span();
                let context = otel_span.span_context();
                if context.is_valid() {
                    line.insert("trace_id".into(), context.trace_id().to_string().into());
                    line.insert("span_id".into(), context.span_id().to_string().into());
                }
            }
        }
        let mut bytes = Value::Object(line).to_string().into_bytes();
        bytes.push(b'\n');
        let _ = self.writer.make_writer_for(meta).write_all(&bytes);
    }
}

struct FieldVisitor<'a>(&'a mut Map<String, Value>);

impl FieldVisitor<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        self.0.insert(field.name().to_owned(), value);
    }
}

impl Visit for FieldVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, value.to_string().into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}
