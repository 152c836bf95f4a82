//! `chat.completion.chunk` events, rendered from a pre-built prefix of the
//! fields every chunk repeats; nothing is re-parsed.

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Value, json};

use super::chat::{ReasoningDetail, UsageBody, non_empty};
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

/// `data: <prefix><rest without its opening brace>`. `rest` must serialize
/// as a JSON object.
pub fn splice(prefix: &str, rest: &impl Serialize) -> Bytes {
    let mut out = Vec::with_capacity(prefix.len() + 256);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(prefix.as_bytes());
    let at = out.len();
    if serde_json::to_writer(&mut out, rest).is_ok() && out.get(at) == Some(&b'{') {
        out.remove(at);
    } else {
        // Our chunk types always serialize. Were one not to, the client
        // still gets valid JSON: the shared head alone, not half an event.
        tracing::error!("a stream chunk did not serialize as a JSON object");
        out.truncate(at);
        if out.last() == Some(&b',') {
            out.pop();
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

// Delta chunks are the one body sent many times per request, so they are
// serialized from borrowed, typed parts rather than built as a `Value`.

#[derive(Serialize)]
struct Choices<C> {
    choices: [C; 1],
}

#[derive(Serialize)]
struct DeltaChoice<'a> {
    index: u32,
    delta: DeltaBody<'a>,
    finish_reason: Option<&'a str>,
    native_finish_reason: Option<&'a str>,
    logprobs: Option<Value>,
}

#[derive(Serialize)]
struct DeltaBody<'a> {
    role: &'static str,
    content: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_details: Option<[ReasoningDetail<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refusal: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCallDelta<'a>>,
}

#[derive(Serialize)]
struct ToolCallDelta<'a> {
    index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionDelta<'a>,
}

#[derive(Serialize)]
struct FunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

#[derive(Serialize)]
struct UsageChunk {
    choices: [(); 0],
    usage: UsageBody,
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
                let reasoning = d.reasoning.as_deref().filter(|r| !r.is_empty());
                let delta = DeltaBody {
                    role: "assistant",
                    content: d.content.as_deref().unwrap_or_default(),
                    reasoning,
                    reasoning_details: reasoning.map(|text| {
                        [ReasoningDetail {
                            kind: "reasoning.text",
                            text,
                            format: self.reasoning_format,
                            index: 0,
                        }]
                    }),
                    refusal: d.refusal.as_deref(),
                    tool_calls: d
                        .tool_calls
                        .iter()
                        .map(|t| ToolCallDelta {
                            index: t.index,
                            id: t.id.as_deref(),
                            kind: t.id.as_ref().map(|_| "function"),
                            function: FunctionDelta {
                                name: t.name.as_deref(),
                                arguments: t.arguments.as_deref().unwrap_or_default(),
                            },
                        })
                        .collect(),
                };
                let logprobs = d
                    .logprobs_json
                    .as_deref()
                    .and_then(|l| serde_json::from_str::<Value>(l).ok());
                Some(splice(
                    &self.prefix,
                    &Choices {
                        choices: [DeltaChoice {
                            index: 0,
                            delta,
                            finish_reason: None,
                            native_finish_reason: None,
                            logprobs,
                        }],
                    },
                ))
            }
            Event::Finish { reason, native } => Some(splice(
                &self.prefix,
                &json!({ "choices": [{
                    "index": 0, "delta": { "role": "assistant", "content": "" },
                    "finish_reason": non_empty(&reason),
                    "native_finish_reason": non_empty(&native), "logprobs": null,
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
                    &UsageChunk {
                        choices: [],
                        usage: UsageBody::of(&summary),
                    },
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

#[cfg(test)]
mod tests {
    use switchyard_proto::provider::v1::{Delta, ToolCallDelta as ProtoToolCall};

    use super::*;

    fn chunks() -> ChatChunks {
        ChatChunks {
            prefix: "{\"id\":\"gen-1\",\"object\":\"chat.completion.chunk\",".into(),
            reasoning_format: "anthropic-claude-v1",
            errored: false,
        }
    }

    fn parsed(bytes: Bytes) -> Value {
        let text = std::str::from_utf8(&bytes).unwrap();
        let json = text
            .strip_prefix("data: ")
            .unwrap()
            .strip_suffix("\n\n")
            .unwrap();
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_plain_delta_has_only_role_and_content() {
        let delta = Delta {
            content: Some("Hi \"there\"".into()),
            ..Default::default()
        };
        let chunk = parsed(chunks().render(Event::Delta(delta)).unwrap());
        assert_eq!(
            chunk,
            json!({
                "id": "gen-1", "object": "chat.completion.chunk",
                "choices": [{
                    "index": 0, "delta": { "role": "assistant", "content": "Hi \"there\"" },
                    "finish_reason": null, "native_finish_reason": null, "logprobs": null,
                }],
            })
        );
    }

    #[test]
    fn a_full_delta_carries_reasoning_refusal_tool_calls_and_logprobs() {
        let delta = Delta {
            content: None,
            reasoning: Some("think".into()),
            refusal: Some(String::new()),
            logprobs_json: Some(r#"{"content":[{"token":"a","logprob":-0.5}]}"#.into()),
            tool_calls: vec![
                ProtoToolCall {
                    index: 0,
                    id: Some("call_1".into()),
                    name: Some("lookup".into()),
                    arguments: Some("{\"q\":".into()),
                    ..Default::default()
                },
                ProtoToolCall {
                    index: 0,
                    arguments: Some("1}".into()),
                    ..Default::default()
                },
            ],
        };
        let chunk = parsed(chunks().render(Event::Delta(delta)).unwrap());
        assert_eq!(
            chunk["choices"][0],
            json!({
                "index": 0,
                "delta": {
                    "role": "assistant", "content": "", "reasoning": "think",
                    "reasoning_details": [{ "type": "reasoning.text", "text": "think", "format": "anthropic-claude-v1", "index": 0 }],
                    "refusal": "",
                    "tool_calls": [
                        { "index": 0, "id": "call_1", "type": "function", "function": { "name": "lookup", "arguments": "{\"q\":" } },
                        { "index": 0, "function": { "arguments": "1}" } },
                    ],
                },
                "finish_reason": null, "native_finish_reason": null,
                "logprobs": { "content": [{ "token": "a", "logprob": -0.5 }] },
            })
        );
    }

    #[test]
    fn a_chunk_that_fails_to_serialize_still_sends_valid_json() {
        struct Broken;
        impl Serialize for Broken {
            fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("broken"))
            }
        }
        let chunk = parsed(splice(&chunks().prefix, &Broken));
        assert_eq!(
            chunk,
            json!({ "id": "gen-1", "object": "chat.completion.chunk" })
        );
        let chunk = parsed(splice(&chunks().prefix, &json!(["not", "an", "object"])));
        assert_eq!(
            chunk,
            json!({ "id": "gen-1", "object": "chat.completion.chunk" })
        );
    }

    #[test]
    fn the_usage_chunk_has_no_choices_and_ends_the_stream() {
        let summary = crate::engine::Summary {
            usage: switchyard_proto::common::v1::TokenUsage {
                prompt_tokens: 3,
                completion_tokens: 4,
                ..Default::default()
            },
            cost_nanos: 1_500,
            prompt_cost_nanos: 500,
            completion_cost_nanos: 1_000,
            finish_reason: "stop".into(),
            native_finish_reason: "stop".into(),
        };
        let bytes = chunks().render(Event::Done(summary)).unwrap();
        let text = std::str::from_utf8(&bytes).unwrap();
        let (chunk, done) = text.split_once("\n\n").unwrap();
        assert_eq!(done, "data: [DONE]\n\n");
        let chunk: Value = serde_json::from_str(chunk.strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(chunk["choices"], json!([]));
        assert_eq!(chunk["usage"]["total_tokens"], 7);
        assert_eq!(chunk["usage"]["cost"], 1.5e-6);
        assert_eq!(
            chunk["usage"]["cost_details"]["upstream_inference_cost"],
            1.5e-6
        );
    }
}
