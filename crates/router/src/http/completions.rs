//! `POST /api/v1/completions`: the legacy text-completion API. The prompt
//! becomes one user message and runs through the same engine as chat; the
//! answer comes back as `text_completion` objects.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use super::chat::{Collected, non_empty, prepare, usage_json, with_completion_headers};
use super::chat_stream::{prefix, splice};
use super::sse::{self, StreamFormat};
use super::{AppState, request};
use crate::engine::{Committed, Event};
use crate::error::ApiError;

pub async fn completions(State(state): State<Arc<AppState>>, request: Request) -> Response {
    match handle(state, request).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

/// `prompt` (a string, or a list holding one string) → `messages`.
pub fn parse(body: &[u8]) -> Result<request::ParsedChat, ApiError> {
    let mut body = request::parse_json(body)?;
    let obj = body
        .as_object_mut()
        .ok_or_else(|| ApiError::BadRequest("The body must be a JSON object".into()))?;
    let prompt = match obj.remove("prompt") {
        Some(Value::String(p)) => p,
        Some(Value::Array(items)) if items.len() == 1 && items[0].is_string() => {
            items[0].as_str().unwrap_or_default().to_owned()
        }
        Some(Value::Array(_)) => {
            return Err(ApiError::BadRequest(
                "prompt must be one string (batched prompts are not supported)".into(),
            ));
        }
        Some(_) => return Err(ApiError::BadRequest("prompt must be a string".into())),
        None => return Err(ApiError::BadRequest("prompt is required".into())),
    };
    if obj.contains_key("messages") {
        return Err(ApiError::BadRequest(
            "use prompt, not messages, with /completions".into(),
        ));
    }
    // `logprobs` is an integer here (a boolean in chat): not forwarded.
    obj.remove("logprobs");
    obj.insert(
        "messages".into(),
        json!([{ "role": "user", "content": prompt }]),
    );
    request::parse_chat_value(body)
}

async fn handle(state: Arc<AppState>, request: Request) -> Result<Response, ApiError> {
    let job = prepare(&state, request, "completions", parse).await?;
    if job.stream {
        return sse::respond::<TextChunks>(&state, job).await;
    }
    let mut committed = state.engine.start(job).await?;
    let c = Collected::from(&mut committed).await;
    let mut choice = json!({
        "text": c.content,
        "index": 0,
        "logprobs": null,
        "finish_reason": non_empty(&c.finish),
        "native_finish_reason": non_empty(&c.native_finish),
    });
    if let Some((status, error_type, message)) = &c.error {
        choice["error"] =
            json!({"code": status, "message": message, "metadata": {"error_type": error_type}});
    }
    let body = json!({
        "id": committed.generation_id,
        "object": "text_completion",
        "created": committed.created,
        "model": committed.model,
        "provider": committed.provider_name,
        "system_fingerprint": null,
        "choices": [choice],
        "usage": c.summary.as_ref().map(usage_json),
    });
    Ok(with_completion_headers(
        super::json_response(200, &body),
        &committed,
    ))
}

pub struct TextChunks {
    prefix: String,
    errored: bool,
}

impl StreamFormat for TextChunks {
    fn start(committed: &Committed) -> (TextChunks, Option<Bytes>) {
        (
            TextChunks {
                prefix: prefix(committed, "text_completion"),
                errored: false,
            },
            None,
        )
    }

    fn render(&mut self, event: Event) -> Option<Bytes> {
        match event {
            Event::Delta(d) => {
                let text = d.content.filter(|t| !t.is_empty())?;
                Some(splice(
                    &self.prefix,
                    &json!({ "choices": [{
                        "text": text, "index": 0, "logprobs": null, "finish_reason": null,
                    }]}),
                ))
            }
            Event::Finish { reason, native } => Some(splice(
                &self.prefix,
                &json!({ "choices": [{
                    "text": "", "index": 0, "logprobs": null,
                    "finish_reason": non_empty(&reason), "native_finish_reason": non_empty(&native),
                }]}),
            )),
            Event::Error {
                status,
                error_type,
                message,
            } => {
                self.errored = true;
                Some(splice(
                    &self.prefix,
                    &json!({
                        "error": { "code": status, "message": message, "metadata": { "error_type": error_type } },
                        "choices": [{ "text": "", "index": 0, "finish_reason": "error" }],
                    }),
                ))
            }
            Event::Done(_) if self.errored => None,
            Event::Done(summary) => {
                let mut bytes = splice(
                    &self.prefix,
                    &json!({ "choices": [], "usage": usage_json(&summary) }),
                )
                .to_vec();
                bytes.extend_from_slice(b"data: [DONE]\n\n");
                Some(Bytes::from(bytes))
            }
        }
    }

    fn error_before_commit(generation_id: &str, err: ApiError) -> Bytes {
        let body = json!({
            "id": generation_id,
            "object": "text_completion",
            "created": crate::ids::unix_now(),
            "error": err.envelope()["error"],
            "choices": [{ "text": "", "index": 0, "finish_reason": "error" }],
        });
        Bytes::from(format!("data: {body}\n\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_become_one_user_message() {
        let p =
            parse(br#"{"model":"a/b","prompt":"Once upon","max_tokens":5,"logprobs":2}"#).unwrap();
        assert_eq!(p.request.messages[0].role, "user");
        assert_eq!(p.request.messages[0].text.as_deref(), Some("Once upon"));
        assert_eq!(p.request.max_tokens, Some(5));
        assert!(parse(br#"{"model":"a/b","prompt":["one"]}"#).is_ok());
        for bad in [
            r#"{"model":"a/b"}"#,
            r#"{"model":"a/b","prompt":["one","two"]}"#,
            r#"{"model":"a/b","prompt":7}"#,
            r#"{"model":"a/b","prompt":"x","messages":[]}"#,
            r#"[1]"#,
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
