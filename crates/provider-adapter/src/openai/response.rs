//! OpenAI Chat Completions responses → normalized events: one streamed
//! `chat.completion.chunk` at a time, or a whole `chat.completion` body.
//! Tolerates the dialects of OpenAI-compatible hosts (`reasoning` vs
//! `reasoning_content`, legacy `function_call`, nulls everywhere).

use serde::Deserialize;
use serde_json::Value;
use switchyard_proto::common::v1::{FinishReason, TokenUsage};
use switchyard_proto::provider::v1::{Delta, Finish, ToolCallDelta};

use crate::emit::Piece;
use crate::errors::UpstreamFailure;
use crate::sse::SseEvent;

/// Reads one answer: stream chunks or a whole body.
pub struct Decoder {
    status: u16,
}

impl Decoder {
    pub fn new(status: u16) -> Decoder {
        Decoder { status }
    }

    pub fn event(&mut self, event: &SseEvent, out: &mut Vec<Piece>) -> Result<(), UpstreamFailure> {
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(());
        }
        if data == "[DONE]" {
            out.push(Piece::Done);
            return Ok(());
        }
        let chunk: Body = serde_json::from_str(data)
            .map_err(|_| UpstreamFailure::bad_response("upstream sent a malformed stream chunk"))?;
        if let Some(error) = &chunk.error {
            return Err(UpstreamFailure::in_band(
                super::error::in_band(error),
                self.status,
            ));
        }
        chunk.into_parsed().push_to(out);
        Ok(())
    }

    pub fn whole(&mut self, body: &[u8], out: &mut Vec<Piece>) -> Result<(), UpstreamFailure> {
        let body: Body = serde_json::from_slice(body)
            .map_err(|_| UpstreamFailure::bad_response("upstream sent a malformed JSON body"))?;
        if let Some(error) = &body.error {
            return Err(UpstreamFailure::in_band(
                super::error::in_band(error),
                self.status,
            ));
        }
        if let Some(id) = body.id.clone() {
            out.push(Piece::Id(id));
        }
        let parsed = body.into_parsed();
        if parsed.delta.is_none() && parsed.finish.is_none() {
            return Err(UpstreamFailure::bad_response(
                "upstream answer has no choices",
            ));
        }
        parsed.push_to(out);
        Ok(())
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct Body {
    pub id: Option<String>,
    pub choices: Option<Vec<Choice>>,
    pub usage: Option<Usage>,
    pub error: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Choice {
    pub index: Option<u32>,
    /// Streaming chunks carry `delta`, whole bodies `message`.
    pub delta: Option<Message>,
    pub message: Option<Message>,
    pub finish_reason: Option<String>,
    /// Kept as raw JSON and handed on as is.
    pub logprobs: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Message {
    pub content: Option<String>,
    pub reasoning: Option<String>,
    pub reasoning_content: Option<String>,
    pub refusal: Option<String>,
    pub tool_calls: Option<Vec<ToolCall>>,
    pub function_call: Option<Function>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ToolCall {
    pub index: Option<u32>,
    pub id: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub function: Option<Function>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Function {
    pub name: Option<String>,
    pub arguments: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Usage {
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub prompt_tokens_details: Option<PromptDetails>,
    pub completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Debug, Default, Deserialize)]
pub struct PromptDetails {
    pub cached_tokens: Option<u64>,
    pub cache_write_tokens: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct CompletionDetails {
    pub reasoning_tokens: Option<u64>,
}

/// What one chunk or body means, in order: delta, then finish.
#[derive(Debug, Default, PartialEq)]
pub struct Parsed {
    pub delta: Option<Delta>,
    pub finish: Option<Finish>,
    pub usage: Option<TokenUsage>,
}

impl Parsed {
    fn push_to(self, out: &mut Vec<Piece>) {
        out.extend(self.delta.map(Piece::Delta));
        out.extend(self.finish.map(Piece::Finish));
        out.extend(self.usage.map(Piece::Usage));
    }
}

impl Body {
    /// Only the first choice matters: the adapter never asks for `n > 1`.
    pub fn into_parsed(self) -> Parsed {
        let choice = self
            .choices
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.index.unwrap_or(0) == 0);
        let (delta, finish) = match choice {
            Some(choice) => {
                let logprobs = choice
                    .logprobs
                    .filter(|l| !l.is_null())
                    .map(|l| l.to_string());
                let mut delta = choice
                    .delta
                    .or(choice.message)
                    .and_then(Message::into_delta);
                if let Some(logprobs) = logprobs {
                    delta.get_or_insert_with(Delta::default).logprobs_json = Some(logprobs);
                }
                let finish = choice
                    .finish_reason
                    .filter(|r| !r.is_empty())
                    .map(|native| Finish {
                        reason: finish_reason(&native) as i32,
                        native_reason: native,
                    });
                (delta, finish)
            }
            None => (None, None),
        };
        Parsed {
            delta,
            finish,
            usage: self.usage.map(Usage::into_proto),
        }
    }
}

fn non_empty(text: Option<String>) -> Option<String> {
    text.filter(|t| !t.is_empty())
}

impl Message {
    /// `None` when the message carries nothing (e.g. the role-only chunk).
    fn into_delta(self) -> Option<Delta> {
        let mut tool_calls: Vec<ToolCallDelta> = self
            .tool_calls
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(position, call)| {
                let function = call.function.unwrap_or_default();
                ToolCallDelta {
                    index: call.index.unwrap_or(position as u32),
                    id: non_empty(call.id),
                    r#type: non_empty(call.kind),
                    name: non_empty(function.name),
                    arguments: non_empty(function.arguments),
                }
            })
            .collect();
        if let Some(function) = self.function_call {
            tool_calls.push(ToolCallDelta {
                index: 0,
                id: None,
                r#type: Some("function".into()),
                name: non_empty(function.name),
                arguments: non_empty(function.arguments),
            });
        }
        let delta = Delta {
            content: non_empty(self.content),
            reasoning: non_empty(self.reasoning).or(non_empty(self.reasoning_content)),
            tool_calls,
            refusal: non_empty(self.refusal),
            logprobs_json: None,
        };
        let empty = delta.content.is_none()
            && delta.reasoning.is_none()
            && delta.refusal.is_none()
            && delta.tool_calls.is_empty();
        (!empty).then_some(delta)
    }
}

impl Usage {
    fn into_proto(self) -> TokenUsage {
        let prompt = self.prompt_tokens_details.unwrap_or_default();
        TokenUsage {
            prompt_tokens: self.prompt_tokens.unwrap_or(0),
            completion_tokens: self.completion_tokens.unwrap_or(0),
            cached_tokens: prompt.cached_tokens.unwrap_or(0),
            cache_write_tokens: prompt.cache_write_tokens.unwrap_or(0),
            reasoning_tokens: self
                .completion_tokens_details
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
            estimated: false,
        }
    }
}

/// The provider's finish reason in OpenRouter's vocabulary. Unknown reasons
/// count as a normal stop; the raw value still travels as `native_reason`.
pub fn finish_reason(native: &str) -> FinishReason {
    match native {
        "length" | "max_tokens" | "model_length" => FinishReason::Length,
        "tool_calls" | "function_call" | "tool_use" => FinishReason::ToolCalls,
        "content_filter" | "safety" => FinishReason::ContentFilter,
        "error" => FinishReason::Error,
        _ => FinishReason::Stop,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Parsed {
        serde_json::from_str::<Body>(json).unwrap().into_parsed()
    }

    #[test]
    fn logprobs_travel_with_their_delta() {
        let chunk = parse(
            r#"{"choices":[{"index":0,"delta":{"content":"Hi"},"logprobs":{"content":[{"token":"Hi","logprob":-0.1,"bytes":[72,105],"top_logprobs":[]}]}}]}"#,
        );
        let delta = chunk.delta.unwrap();
        assert_eq!(delta.content.as_deref(), Some("Hi"));
        let logprobs: Value =
            serde_json::from_str(delta.logprobs_json.as_deref().unwrap()).unwrap();
        assert_eq!(logprobs["content"][0]["token"], "Hi");
        let none = parse(r#"{"choices":[{"index":0,"delta":{"content":"Hi"},"logprobs":null}]}"#);
        assert_eq!(none.delta.unwrap().logprobs_json, None);
    }

    #[test]
    fn content_and_role_chunks() {
        let role = parse(
            r#"{"id":"c1","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null}"#,
        );
        assert_eq!(role, Parsed::default());
        let text = parse(r#"{"choices":[{"index":0,"delta":{"content":"Hi"}}]}"#);
        assert_eq!(text.delta.unwrap().content.as_deref(), Some("Hi"));
    }

    #[test]
    fn reasoning_in_either_field() {
        let a = parse(r#"{"choices":[{"delta":{"reasoning":"hmm"}}]}"#);
        let b = parse(r#"{"choices":[{"delta":{"reasoning_content":"hmm","content":null}}]}"#);
        assert_eq!(a.delta, b.delta);
        assert_eq!(a.delta.unwrap().reasoning.as_deref(), Some("hmm"));
    }

    #[test]
    fn tool_call_deltas_and_legacy_function_call() {
        let head = parse(
            r#"{"choices":[{"delta":{"tool_calls":[{"index":1,"id":"call_x","type":"function","function":{"name":"f","arguments":""}}]}}]}"#,
        );
        let call = &head.delta.unwrap().tool_calls[0];
        assert_eq!(
            (call.index, call.id.as_deref(), call.name.as_deref()),
            (1, Some("call_x"), Some("f"))
        );
        assert_eq!(call.arguments, None);
        let legacy = parse(
            r#"{"choices":[{"delta":{"function_call":{"arguments":"{\"a\""}},"finish_reason":"function_call"}]}"#,
        );
        assert_eq!(
            legacy.delta.unwrap().tool_calls[0].arguments.as_deref(),
            Some("{\"a\"")
        );
        assert_eq!(
            legacy.finish.unwrap().reason,
            FinishReason::ToolCalls as i32
        );
    }

    #[test]
    fn finish_and_usage() {
        let parsed = parse(
            r#"{"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,
                "prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":2}}}"#,
        );
        assert_eq!(
            parsed.usage,
            Some(TokenUsage {
                prompt_tokens: 10,
                completion_tokens: 5,
                cached_tokens: 4,
                cache_write_tokens: 0,
                reasoning_tokens: 2,
                estimated: false,
            })
        );
        let finish = parse(r#"{"choices":[{"delta":{},"finish_reason":"length"}]}"#)
            .finish
            .unwrap();
        assert_eq!(finish.reason, FinishReason::Length as i32);
        assert_eq!(finish.native_reason, "length");
    }

    #[test]
    fn whole_body_with_message() {
        let parsed = parse(
            r#"{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,
                "message":{"role":"assistant","content":"Hello","refusal":null},"finish_reason":"stop"}],
                "usage":{"prompt_tokens":3,"completion_tokens":1}}"#,
        );
        assert_eq!(parsed.delta.unwrap().content.as_deref(), Some("Hello"));
        assert_eq!(parsed.finish.unwrap().reason, FinishReason::Stop as i32);
        assert_eq!(parsed.usage.unwrap().completion_tokens, 1);
    }
}
