//! The human-readable log layer's pieces that run for every span, so they
//! are kept cheap: the fmt layer formats a span's fields when the span is
//! created (it cannot know whether an event will ever print them), and
//! every request creates several spans.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;

/// Span and event fields as `name=value`, space-separated, without styling,
/// leaving out `otel.*` fields: those steer the OpenTelemetry layer (span
/// name, kind, status) and repeat what the other fields already say.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct TextFields;

impl<'writer> FormatFields<'writer> for TextFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = TextVisitor {
            writer,
            empty: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }

    fn add_fields(
        &self,
        current: &'writer mut tracing_subscriber::fmt::FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let mut visitor = TextVisitor {
            empty: current.fields.is_empty(),
            writer: current.as_writer(),
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct TextVisitor<'writer> {
    writer: Writer<'writer>,
    empty: bool,
    result: fmt::Result,
}

impl TextVisitor<'_> {
    /// Writes the separator before `field`; false when the field is skipped
    /// (or writing failed).
    fn start(&mut self, field: &Field) -> bool {
        if self.result.is_err() || field.name().starts_with("otel.") {
            return false;
        }
        if !std::mem::replace(&mut self.empty, false) {
            self.result = self.writer.write_char(' ');
        }
        self.result.is_ok()
    }
}

impl Visit for TextVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record_debug(field, &value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if !self.start(field) {
            return;
        }
        self.result = match field.name() {
            "message" => write!(self.writer, "{value:?}"),
            name => write!(
                self.writer,
                "{}={value:?}",
                name.strip_prefix("r#").unwrap_or(name)
            ),
        };
    }
}

/// The filter for log lines from `RUST_LOG` (default `info`). Plain
/// `target=level` lists become a [`Targets`] filter, which decides from a
/// span's metadata alone; only directives that need more (span names or
/// field values, `[span{field=value}]`) get an [`EnvFilter`], which tracks
/// every span it sees and looks each one up on every enter and exit.
pub(crate) fn log_filter(rust_log: Option<&str>) -> LogFilter {
    let directives = rust_log.map(str::trim).filter(|d| !d.is_empty());
    let info = || LogFilter::Targets(Box::new(Targets::new().with_default(tracing::Level::INFO)));
    let Some(directives) = directives else {
        return info();
    };
    let simple = !directives.contains(['[', '{', '/', '"']);
    if simple && let Ok(targets) = directives.parse::<Targets>() {
        return LogFilter::Targets(Box::new(targets));
    }
    match EnvFilter::try_new(directives) {
        Ok(filter) => LogFilter::Env(Box::new(filter)),
        Err(_) => info(),
    }
}

/// What [`log_filter`] chose.
pub(crate) enum LogFilter {
    Targets(Box<Targets>),
    Env(Box<EnvFilter>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_directives_need_no_env_filter() {
        for plain in [
            None,
            Some(""),
            Some("info"),
            Some("warn,switchyard=debug,h2=off"),
        ] {
            assert!(
                matches!(log_filter(plain), LogFilter::Targets(_)),
                "{plain:?}"
            );
        }
        for rich in [
            "info,[upstream.generate]=debug",
            "warn,[{provider=openai}]=trace",
        ] {
            assert!(
                matches!(log_filter(Some(rich)), LogFilter::Env(_)),
                "{rich}"
            );
        }
        // Nonsense falls back to the default rather than logging nothing.
        let LogFilter::Targets(fallback) = log_filter(Some("[[[")) else {
            panic!("a bad RUST_LOG falls back to Targets");
        };
        assert!(fallback.would_enable("anything", &tracing::Level::INFO));
        assert!(!fallback.would_enable("anything", &tracing::Level::DEBUG));
    }

    #[test]
    fn targets_keep_the_env_filter_meaning() {
        let LogFilter::Targets(t) = log_filter(Some("warn,switchyard_router=debug,h2=off")) else {
            panic!("plain list");
        };
        assert!(t.would_enable("switchyard_router::engine", &tracing::Level::DEBUG));
        assert!(!t.would_enable("switchyard_router::engine", &tracing::Level::TRACE));
        assert!(t.would_enable("hyper", &tracing::Level::WARN));
        assert!(!t.would_enable("hyper", &tracing::Level::INFO));
        assert!(!t.would_enable("h2::codec", &tracing::Level::ERROR));
        // A bare target means every level for it and nothing for the rest,
        // as with EnvFilter.
        let LogFilter::Targets(t) = log_filter(Some("switchyard_router")) else {
            panic!("plain list");
        };
        assert!(t.would_enable("switchyard_router::auth", &tracing::Level::TRACE));
        assert!(!t.would_enable("hyper", &tracing::Level::ERROR));
    }
}
