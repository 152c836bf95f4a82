//! `chat.completion.chunk` events, rendered from a pre-built prefix of the
//! fields every chunk repeats; nothing is re-parsed.

use bytes::Bytes;
use serde_json::{Value, json};

use super::chat::{none_if_empty, usage_json};
use super::sse::StreamFormat;
use crate::engine::{Committed, Event};
use crate::error::ApiError;

const DONE: &[u8] = b"data: [DONE]\n\n";

pub struct ChatChunks {
    /// `{"id":..,"object":..,"created":..,"model":..,"provider":..,`
    prefix: String,
    reasoning_format: &'static str,
    errored: bool,
}

/// `data: <prefix><rest without its opening brace>`.
pub fn splice(prefix: &str, rest: Value) -> Bytes {
    let rest = rest.to_string();
    let mut out = String::with_capacity(prefix.len() + rest.len() + 10);
    out.push_str("data: ");
    out.push_str(prefix);
    out.push_str(&rest[1..]);
    out.push_str("\n\n");
    Bytes::from(out)
}

/// The shared head of every chunk, as an unterminated JSON object.
pub fn prefix(committed: &Committed, object: &str) -> String {
    let head = json!({
        "id": committed.generation_id,
        "object": object,
        "created": committed.created,
        "model": committed.model,
        "provider": committed.provider_name,
    })
    .to_string();
    format!("{},", &head[..head.len() - 1])
}

impl StreamFormat for ChatChunks {
    fn start(committed: &Committed) -> (ChatChunks, Option<Bytes>) {
        let chunks = ChatChunks {
            prefix: prefix(committed, "chat.completion.chunk"),
            reasoning_format: committed.reasoning_format,
            errored: false,
        };
        (chunks, None)
    }

    fn render(&mut self, event: Event) -> Option<Bytes> {
        match event {
            Event::Delta(d) => {
                let mut delta =
                    json!({ "role": "assistant", "content": d.content.unwrap_or_default() });
                if let Some(r) = d.reasoning.filter(|r| !r.is_empty()) {
                    delta["reasoning_details"] = json!([{
                        "type": "reasoning.text", "text": r, "format": self.reasoning_format, "index": 0,
                    }]);
                    delta["reasoning"] = r.into();
                }
                if let Some(r) = d.refusal {
                    delta["refusal"] = r.into();
                }
                if !d.tool_calls.is_empty() {
                    delta["tool_calls"] = d
                        .tool_calls
                        .into_iter()
                        .map(|t| {
                            let mut call = json!({ "index": t.index, "function": {} });
                            if let Some(id) = t.id {
                                call["id"] = id.into();
                                call["type"] = "function".into();
                            }
                            if let Some(name) = t.name {
                                call["function"]["name"] = name.into();
                            }
                            call["function"]["arguments"] = t.arguments.unwrap_or_default().into();
                            call
                        })
                        .collect();
                }
                let logprobs = d
                    .logprobs_json
                    .as_deref()
                    .and_then(|l| serde_json::from_str::<Value>(l).ok())
                    .unwrap_or(Value::Null);
                Some(splice(
                    &self.prefix,
                    json!({ "choices": [{
                        "index": 0, "delta": delta, "finish_reason": null,
                        "native_finish_reason": null, "logprobs": logprobs,
                    }]}),
                ))
            }
            Event::Finish { reason, native } => Some(splice(
                &self.prefix,
                json!({ "choices": [{
                    "index": 0, "delta": { "role": "assistant", "content": "" },
                    "finish_reason": none_if_empty(&reason),
                    "native_finish_reason": none_if_empty(&native), "logprobs": null,
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
                    json!({
                        "error": { "code": status, "message": message, "metadata": { "error_type": error_type } },
                        "choices": [{ "index": 0, "delta": { "content": "" },
                                      "finish_reason": "error", "native_finish_reason": null }],
                    }),
                ))
            }
            // After an in-band error the stream just ends: no usage, no [DONE].
            Event::Done(_) if self.errored => None,
            Event::Done(summary) => {
                let mut bytes = splice(
                    &self.prefix,
                    json!({ "choices": [], "usage": usage_json(&summary) }),
                )
                .to_vec();
                bytes.extend_from_slice(DONE);
                Some(Bytes::from(bytes))
            }
        }
    }

    fn error_before_commit(generation_id: &str, err: ApiError) -> Bytes {
        let envelope = err.envelope();
        let body = json!({
            "id": generation_id,
            "object": "chat.completion.chunk",
            "created": crate::ids::unix_now(),
            "error": envelope["error"],
            "choices": [{ "index": 0, "delta": { "content": "" }, "finish_reason": "error", "native_finish_reason": null }],
        });
        Bytes::from(format!("data: {body}\n\n"))
    }
}
