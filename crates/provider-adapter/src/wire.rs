//! The three wire formats behind one face: where to send, how to
//! authenticate, how to write the body, how to read answers and error
//! bodies. Everything else — sending, deadlines, SSE framing, event
//! emission — is shared and lives in `upstream`, `sse` and `emit`.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::Value;
use switchyard_proto::common::v1::ChatRequest;
use switchyard_proto::provider::v1::WireFormat;

use crate::emit::Piece;
use crate::errors::{AdapterError, ErrorBody, UpstreamFailure};
use crate::sse::SseEvent;
use crate::translate::invalid;
use crate::{anthropic, gemini, openai};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    OpenAi,
    Anthropic,
    Gemini,
}

impl TryFrom<i32> for Wire {
    type Error = AdapterError;

    fn try_from(value: i32) -> Result<Wire, AdapterError> {
        match WireFormat::try_from(value) {
            Ok(WireFormat::OpenaiChat) => Ok(Wire::OpenAi),
            Ok(WireFormat::AnthropicMessages) => Ok(Wire::Anthropic),
            Ok(WireFormat::Gemini) => Ok(Wire::Gemini),
            Ok(WireFormat::Unspecified) | Err(_) => Err(invalid("unknown wire_format")),
        }
    }
}

/// Endpoint URLs built recently, by [`url_key`]. Parsing one costs several
/// thousand instructions (about 3% of a call's work in the adapter) and the
/// calls to one endpoint all build the same URL. Bounded: a catalog has a
/// few hundred endpoints; past the bound the cache starts over.
static URLS: LazyLock<Mutex<HashMap<String, reqwest::Url>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));
const MAX_CACHED_URLS: usize = 4096;

/// One string per distinct URL: the wire, streaming, the length of `base`,
/// `base`, `model`. The length keeps the split unambiguous whatever the two
/// contain.
fn url_key(wire: Wire, base: &str, model: &str, stream: bool) -> String {
    use std::fmt::Write as _;
    let mut key = String::with_capacity(base.len() + model.len() + 12);
    key.push(match wire {
        Wire::OpenAi => 'o',
        Wire::Anthropic => 'a',
        Wire::Gemini => 'g',
    });
    key.push(if stream { 's' } else { '-' });
    let _ = write!(key, "{}:", base.len());
    key.push_str(base);
    key.push_str(model);
    key
}

impl Wire {
    /// The endpoint for `model` under `base` (no trailing slash), from the
    /// cache when this process built it before.
    pub fn url(self, base: &str, model: &str, stream: bool) -> Result<reqwest::Url, AdapterError> {
        // Only Gemini's URL names the model and whether it streams.
        let (model, stream) = match self {
            Wire::Gemini => (model, stream),
            Wire::OpenAi | Wire::Anthropic => ("", false),
        };
        let key = url_key(self, base, model, stream);
        if let Some(url) = URLS.lock().expect("url cache poisoned").get(&key) {
            return Ok(url.clone());
        }
        let url = self.build_url(base, model, stream)?;
        let mut urls = URLS.lock().expect("url cache poisoned");
        if urls.len() >= MAX_CACHED_URLS {
            urls.clear();
        }
        urls.insert(key, url.clone());
        Ok(url)
    }

    fn build_url(
        self,
        base: &str,
        model: &str,
        stream: bool,
    ) -> Result<reqwest::Url, AdapterError> {
        let parse = |url: &str| {
            reqwest::Url::parse(url).map_err(|_| invalid("target.base_url is not a valid URL"))
        };
        let url = match self {
            Wire::OpenAi => parse(&format!("{base}/chat/completions"))?,
            Wire::Anthropic => parse(&format!("{base}/messages"))?,
            Wire::Gemini => gemini::url(parse(base)?, model, stream)?,
        };
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("target.base_url must be http or https"));
        }
        Ok(url)
    }

    pub fn body(
        self,
        request: &ChatRequest,
        model: &str,
        stream: bool,
    ) -> Result<Value, AdapterError> {
        match self {
            Wire::OpenAi => openai::request::build_body(request, model, stream),
            Wire::Anthropic => anthropic::request::build_body(request, model, stream),
            Wire::Gemini => gemini::request::build_body(request),
        }
    }

    /// Headers every call in this format carries; per-request headers may
    /// still override them.
    pub fn fixed_headers(self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if self == Wire::Anthropic {
            headers.insert(
                "anthropic-version",
                HeaderValue::from_static(anthropic::API_VERSION),
            );
        }
        headers
    }

    /// Adds the credential the way the provider expects it — in a header,
    /// never in the URL, so it cannot leak through a logged address.
    pub fn authorize(
        self,
        request: reqwest::RequestBuilder,
        secret: &str,
    ) -> reqwest::RequestBuilder {
        match self {
            Wire::OpenAi => request.bearer_auth(secret),
            Wire::Anthropic => request.header("x-api-key", sensitive(secret)),
            Wire::Gemini => request.header("x-goog-api-key", sensitive(secret)),
        }
    }

    pub fn http_error(self, status: u16, body: &[u8]) -> ErrorBody {
        match self {
            Wire::OpenAi => openai::error::http_error(status, body),
            Wire::Anthropic => anthropic::error::http_error(status, body),
            Wire::Gemini => gemini::error::http_error(status, body),
        }
    }

    pub fn decoder(self, status: u16) -> Decoder {
        match self {
            Wire::OpenAi => Decoder::OpenAi(openai::response::Decoder::new(status)),
            Wire::Anthropic => Decoder::Anthropic(anthropic::response::Decoder::new(status)),
            Wire::Gemini => Decoder::Gemini(gemini::response::Decoder::new(status)),
        }
    }
}

fn sensitive(secret: &str) -> HeaderValue {
    let mut value = HeaderValue::from_str(secret).unwrap_or_else(|_| HeaderValue::from_static(""));
    value.set_sensitive(true);
    value
}

/// One answer being read, in its format.
pub enum Decoder {
    OpenAi(openai::response::Decoder),
    Anthropic(anthropic::response::Decoder),
    Gemini(gemini::response::Decoder),
}

impl Decoder {
    /// One server-sent event of a stream.
    pub fn event(&mut self, event: &SseEvent, out: &mut Vec<Piece>) -> Result<(), UpstreamFailure> {
        match self {
            Decoder::OpenAi(decoder) => decoder.event(event, out),
            Decoder::Anthropic(decoder) => decoder.event(event, out),
            Decoder::Gemini(decoder) => decoder.event(event, out),
        }
    }

    /// A whole non-streaming body.
    pub fn whole(&mut self, body: &[u8], out: &mut Vec<Piece>) -> Result<(), UpstreamFailure> {
        match self {
            Decoder::OpenAi(decoder) => decoder.whole(body, out),
            Decoder::Anthropic(decoder) => decoder.whole(body, out),
            Decoder::Gemini(decoder) => decoder.whole(body, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_url_is_the_one_a_fresh_parse_builds() {
        let cases = [
            (Wire::OpenAi, "http://cache-test.invalid:1/v1", "m", false),
            (Wire::Anthropic, "http://cache-test.invalid:1/v1", "m", true),
            (
                Wire::Gemini,
                "http://cache-test.invalid:1/v1beta",
                "a",
                true,
            ),
            (
                Wire::Gemini,
                "http://cache-test.invalid:1/v1beta",
                "a",
                false,
            ),
            (
                Wire::Gemini,
                "http://cache-test.invalid:1/v1beta",
                "b",
                true,
            ),
        ];
        for (wire, base, model, stream) in cases {
            let fresh = wire.build_url(base, model, stream).unwrap();
            // The first call fills the cache (unless another test did), the
            // second reads it: both equal a fresh parse.
            assert_eq!(wire.url(base, model, stream).unwrap(), fresh);
            assert_eq!(wire.url(base, model, stream).unwrap(), fresh);
        }
        // OpenAI and Anthropic URLs share an entry whatever the model.
        assert_eq!(
            Wire::OpenAi
                .url("http://cache-test.invalid:1/v1", "other", true)
                .unwrap()
                .as_str(),
            "http://cache-test.invalid:1/v1/chat/completions"
        );
        assert!(
            Wire::Gemini
                .url("http://cache-test.invalid:1/v1beta", "b", true)
                .unwrap()
                .as_str()
                .ends_with("/models/b:streamGenerateContent?alt=sse")
        );
    }

    #[test]
    fn keys_do_not_run_base_and_model_together() {
        assert_ne!(
            url_key(Wire::Gemini, "http://h/v1\nx", "m", true),
            url_key(Wire::Gemini, "http://h/v1", "\nxm", true)
        );
        assert_ne!(
            url_key(Wire::Gemini, "http://h/v1", "m", true),
            url_key(Wire::Gemini, "http://h/v1", "m", false)
        );
        assert_ne!(
            url_key(Wire::OpenAi, "http://h/v1", "", false),
            url_key(Wire::Anthropic, "http://h/v1", "", false)
        );
    }

    #[test]
    fn a_bad_base_fails_every_time() {
        for _ in 0..2 {
            assert!(Wire::OpenAi.url("not a url", "m", false).is_err());
            assert!(
                Wire::OpenAi
                    .url("ftp://cache-test.invalid", "m", false)
                    .is_err()
            );
        }
        let key = url_key(Wire::OpenAi, "not a url", "", false);
        assert!(!URLS.lock().unwrap().contains_key(&key));
    }
}
