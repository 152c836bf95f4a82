//! Behaviour knobs: set per request with `x-sim-*` headers, per model with the
//! admin API or the behaviour file. A header wins over the model's setting,
//! which wins over the `"*"` entry, which wins over the defaults.

use std::str::FromStr;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

/// Completion length when neither a header nor a model setting says.
pub const DEFAULT_COMPLETION_TOKENS: u32 = 24;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Knobs {
    /// Delay before the first chunk (streaming) or the whole answer.
    pub ttft_ms: Option<u64>,
    /// Token pacing after the first token; 0 = as fast as possible.
    pub tokens_per_second: Option<f64>,
    /// Completion length in words before `max_tokens` applies.
    pub completion_tokens: Option<u32>,
    /// Probability in 0..=1 that a request fails with `fail_status`.
    pub fail_rate: Option<f64>,
    pub fail_status: Option<u16>,
    /// Answer 429 with this `Retry-After`.
    pub rate_limit_after_secs: Option<u64>,
    /// Accept the request and never produce a token.
    pub hang: Option<bool>,
    /// Drop the connection after this many SSE events.
    pub cut_after_chunks: Option<u32>,
    /// Answer 400 `context_length_exceeded` above this many prompt tokens.
    pub context_length: Option<u64>,
    /// With `cut_after_chunks`, end the stream with the format's in-band
    /// error event instead of dropping the connection.
    pub cut_with_error: Option<bool>,
    /// Answer as if a safety filter blocked the content: OpenAI
    /// `content_filter`, Anthropic `refusal`, Gemini `promptFeedback`.
    pub safety_block: Option<bool>,
}

impl Knobs {
    /// Fills every unset knob from `fallback`.
    pub fn or(self, fallback: &Knobs) -> Knobs {
        Knobs {
            ttft_ms: self.ttft_ms.or(fallback.ttft_ms),
            tokens_per_second: self.tokens_per_second.or(fallback.tokens_per_second),
            completion_tokens: self.completion_tokens.or(fallback.completion_tokens),
            fail_rate: self.fail_rate.or(fallback.fail_rate),
            fail_status: self.fail_status.or(fallback.fail_status),
            rate_limit_after_secs: self
                .rate_limit_after_secs
                .or(fallback.rate_limit_after_secs),
            hang: self.hang.or(fallback.hang),
            cut_after_chunks: self.cut_after_chunks.or(fallback.cut_after_chunks),
            context_length: self.context_length.or(fallback.context_length),
            cut_with_error: self.cut_with_error.or(fallback.cut_with_error),
            safety_block: self.safety_block.or(fallback.safety_block),
        }
    }

    pub fn from_headers(headers: &HeaderMap) -> Result<Knobs, String> {
        let knobs = Knobs {
            ttft_ms: header(headers, "x-sim-ttft-ms")?,
            tokens_per_second: header(headers, "x-sim-tokens-per-second")?,
            completion_tokens: header(headers, "x-sim-completion-tokens")?,
            fail_rate: header(headers, "x-sim-fail-rate")?,
            fail_status: header(headers, "x-sim-fail-status")?,
            rate_limit_after_secs: header(headers, "x-sim-rate-limit-after-secs")?,
            hang: header::<Flag>(headers, "x-sim-hang")?.map(|f| f.0),
            cut_after_chunks: header(headers, "x-sim-cut-after-chunks")?,
            context_length: header(headers, "x-sim-context-length")?,
            cut_with_error: header::<Flag>(headers, "x-sim-cut-with-error")?.map(|f| f.0),
            safety_block: header::<Flag>(headers, "x-sim-safety-block")?.map(|f| f.0),
        };
        knobs.validate()?;
        Ok(knobs)
    }

    pub fn validate(&self) -> Result<(), String> {
        if let Some(rate) = self.fail_rate
            && !(0.0..=1.0).contains(&rate)
        {
            return Err(format!("fail_rate must be within 0..=1, got {rate}"));
        }
        if let Some(status) = self.fail_status
            && !(400..=599).contains(&status)
        {
            return Err(format!(
                "fail_status must be an HTTP error status, got {status}"
            ));
        }
        if let Some(tps) = self.tokens_per_second
            && !(tps >= 0.0 && tps.is_finite())
        {
            return Err(format!("tokens_per_second must be >= 0, got {tps}"));
        }
        Ok(())
    }

    /// Applies the defaults to whatever is still unset.
    pub fn resolve(&self) -> Behaviour {
        let interval = match self.tokens_per_second {
            Some(tps) if tps > 0.0 => Duration::from_secs_f64(1.0 / tps),
            _ => Duration::ZERO,
        };
        Behaviour {
            ttft: Duration::from_millis(self.ttft_ms.unwrap_or(0)),
            token_interval: interval,
            completion_tokens: self.completion_tokens.unwrap_or(DEFAULT_COMPLETION_TOKENS),
            fail_rate: self.fail_rate.unwrap_or(0.0),
            fail_status: self
                .fail_status
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            rate_limit_after_secs: self.rate_limit_after_secs,
            hang: self.hang.unwrap_or(false),
            cut_after_chunks: self.cut_after_chunks,
            context_length: self.context_length,
            cut_with_error: self.cut_with_error.unwrap_or(false),
            safety_block: self.safety_block.unwrap_or(false),
        }
    }
}

/// Knobs with defaults applied, for one request.
#[derive(Debug, Clone)]
pub struct Behaviour {
    pub ttft: Duration,
    pub token_interval: Duration,
    pub completion_tokens: u32,
    pub fail_rate: f64,
    pub fail_status: StatusCode,
    pub rate_limit_after_secs: Option<u64>,
    pub hang: bool,
    pub cut_after_chunks: Option<u32>,
    pub context_length: Option<u64>,
    pub cut_with_error: bool,
    pub safety_block: bool,
}

struct Flag(bool);

impl FromStr for Flag {
    type Err = String;
    fn from_str(s: &str) -> Result<Flag, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "1" | "true" | "yes" => Ok(Flag(true)),
            "0" | "false" | "no" => Ok(Flag(false)),
            other => Err(format!("not a boolean: {other:?}")),
        }
    }
}

fn header<T: FromStr>(headers: &HeaderMap, name: &str) -> Result<Option<T>, String>
where
    T::Err: std::fmt::Display,
{
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| format!("header {name} is not ASCII"))?;
    text.trim()
        .parse()
        .map(Some)
        .map_err(|e| format!("header {name}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_override_model_settings() {
        let mut headers = HeaderMap::new();
        headers.insert("x-sim-ttft-ms", "250".parse().unwrap());
        headers.insert("x-sim-hang", "true".parse().unwrap());
        let model = Knobs {
            ttft_ms: Some(10),
            fail_rate: Some(0.5),
            ..Knobs::default()
        };
        let knobs = Knobs::from_headers(&headers).unwrap().or(&model);
        assert_eq!(knobs.ttft_ms, Some(250));
        assert_eq!(knobs.fail_rate, Some(0.5));
        assert_eq!(knobs.hang, Some(true));
        assert_eq!(knobs.resolve().completion_tokens, DEFAULT_COMPLETION_TOKENS);
    }

    #[test]
    fn bad_values_are_rejected() {
        let mut headers = HeaderMap::new();
        headers.insert("x-sim-fail-rate", "1.5".parse().unwrap());
        assert!(Knobs::from_headers(&headers).is_err());
        headers.insert("x-sim-fail-rate", "abc".parse().unwrap());
        assert!(Knobs::from_headers(&headers).is_err());
        assert!(serde_json::from_str::<Knobs>(r#"{"ttft": 1}"#).is_err());
    }
}
