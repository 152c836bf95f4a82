//! The Google Gemini wire format (`generateContent` and
//! `streamGenerateContent?alt=sse` under `{base}/models/{model}`, the key in
//! `x-goog-api-key` — never in the URL, where it would reach logs).

pub mod error;
pub mod request;
pub mod response;
mod schema;

use crate::errors::AdapterError;
use crate::translate::invalid;

/// The model's endpoint. The model id goes in as one path segment, so a
/// `/` or `?` in it cannot reach another route.
pub fn url(
    mut base: reqwest::Url,
    model: &str,
    stream: bool,
) -> Result<reqwest::Url, AdapterError> {
    let model = model.strip_prefix("models/").unwrap_or(model);
    let action = if stream {
        "streamGenerateContent"
    } else {
        "generateContent"
    };
    base.path_segments_mut()
        .map_err(|_| invalid("target.base_url is not a valid URL"))?
        .pop_if_empty()
        .push("models")
        .push(&format!("{model}:{action}"));
    if stream {
        base.set_query(Some("alt=sse"));
    }
    Ok(base)
}
