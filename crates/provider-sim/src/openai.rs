//! The OpenAI Chat Completions wire shapes: the request fields the simulator
//! reads, the planned answer, and its rendering as one `chat.completion` body
//! or as a sequence of `chat.completion.chunk` events.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::text;

#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<Value>,
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
    pub max_tokens: Option<u32>,
    pub max_completion_tokens: Option<u32>,
    pub tools: Option<Vec<Value>>,
    pub tool_choice: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub struct StreamOptions {
    pub include_usage: Option<bool>,
}

impl ChatRequest {
    /// The tool the request forces: `"required"` picks the first tool, a
    /// `{"type":"function","function":{"name":..}}` choice picks that one.
    fn forced_tool(&self) -> Option<(String, Option<Value>)> {
        let tools = self.tools.as_deref().filter(|t| !t.is_empty())?;
        let function = |tool: &Value| tool.get("function").cloned().unwrap_or(Value::Null);
        let wanted = match self.tool_choice.as_ref()? {
            Value::String(choice) if choice == "required" => None,
            Value::Object(choice) => Some(
                choice
                    .get("function")
                    .and_then(|f| f.get("name"))
                    .and_then(Value::as_str)?
                    .to_owned(),
            ),
            _ => return None,
        };
        let tool = match &wanted {
            None => tools.first().map(function)?,
            Some(name) => tools
                .iter()
                .map(function)
                .find(|f| f.get("name").and_then(Value::as_str) == Some(name))
                .unwrap_or(Value::Null),
        };
        let name =
            wanted.or_else(|| tool.get("name").and_then(Value::as_str).map(str::to_owned))?;
        Some((name, tool.get("parameters").cloned()))
    }
}

pub enum Output {
    Text(Vec<&'static str>),
    ToolCall {
        id: String,
        name: String,
        arguments: String,
    },
}

/// Everything about one answer, fixed before the first byte is sent.
pub struct Plan {
    pub id: String,
    pub created: u64,
    pub model: String,
    pub prompt_tokens: u64,
    pub output: Output,
    pub finish_reason: &'static str,
    pub include_usage: bool,
}

impl Plan {
    pub fn new(
        request: &ChatRequest,
        hash: u64,
        seq: u64,
        prompt_tokens: u64,
        length: u32,
    ) -> Plan {
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let (output, finish_reason) = match request.forced_tool() {
            Some((name, parameters)) => {
                let arguments = text::tool_arguments(parameters.as_ref(), hash);
                let id = format!("call_{hash:016x}");
                (
                    Output::ToolCall {
                        id,
                        name,
                        arguments,
                    },
                    "tool_calls",
                )
            }
            None => {
                let limit = request.max_completion_tokens.or(request.max_tokens);
                match limit {
                    Some(max) if max < length => {
                        (Output::Text(text::completion_words(hash, max)), "length")
                    }
                    _ => (Output::Text(text::completion_words(hash, length)), "stop"),
                }
            }
        };
        Plan {
            id: format!("chatcmpl-{hash:016x}{seq:08x}"),
            created,
            model: request.model.clone(),
            prompt_tokens,
            output,
            finish_reason,
            include_usage: request
                .stream_options
                .as_ref()
                .and_then(|o| o.include_usage)
                .unwrap_or(false),
        }
    }

    pub fn completion_tokens(&self) -> u64 {
        match &self.output {
            Output::Text(words) => words.len() as u64,
            Output::ToolCall {
                name, arguments, ..
            } => text::estimate_tokens(name) + text::estimate_tokens(arguments),
        }
    }

    pub fn usage(&self) -> Value {
        let completion = self.completion_tokens();
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        })
    }

    /// The non-streaming `chat.completion` body.
    pub fn completion(&self) -> Value {
        let message = match &self.output {
            Output::Text(words) => json!({
                "role": "assistant",
                "content": words.join(" "),
                "refusal": null,
            }),
            Output::ToolCall {
                id,
                name,
                arguments,
            } => json!({
                "role": "assistant",
                "content": null,
                "refusal": null,
                "tool_calls": [{
                    "id": id,
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }],
            }),
        };
        json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_provider_sim",
            "choices": [{
                "index": 0,
                "message": message,
                "logprobs": null,
                "finish_reason": self.finish_reason,
            }],
            "usage": self.usage(),
        })
    }

    /// The streamed events in order, each with the completion tokens it
    /// carries; the caller appends `data: [DONE]`.
    pub fn chunks(&self) -> Vec<(Value, u64)> {
        let mut chunks = Vec::new();
        match &self.output {
            Output::Text(words) => {
                chunks.push((
                    self.chunk(json!({"role": "assistant", "content": ""}), None),
                    0,
                ));
                for (i, word) in words.iter().enumerate() {
                    let content = if i == 0 {
                        (*word).to_owned()
                    } else {
                        format!(" {word}")
                    };
                    chunks.push((self.chunk(json!({"content": content}), None), 1));
                }
            }
            Output::ToolCall {
                id,
                name,
                arguments,
            } => {
                let head = json!({
                    "role": "assistant",
                    "content": null,
                    "tool_calls": [{
                        "index": 0,
                        "id": id,
                        "type": "function",
                        "function": {"name": name, "arguments": ""},
                    }],
                });
                chunks.push((self.chunk(head, None), text::estimate_tokens(name)));
                let pieces = split_in_three(arguments);
                let per_piece = text::estimate_tokens(arguments).div_ceil(pieces.len() as u64);
                let mut left = text::estimate_tokens(arguments);
                for piece in pieces {
                    let tokens = per_piece.min(left);
                    left -= tokens;
                    let delta =
                        json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]});
                    chunks.push((self.chunk(delta, None), tokens));
                }
            }
        }
        chunks.push((self.chunk(json!({}), Some(self.finish_reason)), 0));
        if self.include_usage {
            let mut usage = self.chunk(json!({}), None);
            usage["choices"] = json!([]);
            usage["usage"] = self.usage();
            chunks.push((usage, 0));
        }
        chunks
    }

    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Value {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_provider_sim",
            "choices": [{
                "index": 0,
                "delta": delta,
                "logprobs": null,
                "finish_reason": finish_reason,
            }],
        });
        if self.include_usage {
            chunk["usage"] = Value::Null;
        }
        chunk
    }
}

/// Splits at char boundaries into up to three non-empty pieces, so clients
/// must concatenate argument fragments.
fn split_in_three(s: &str) -> Vec<&str> {
    let chars: Vec<usize> = s.char_indices().map(|(i, _)| i).collect();
    if chars.len() < 3 {
        return vec![s];
    }
    let a = chars[chars.len() / 3];
    let b = chars[2 * chars.len() / 3];
    vec![&s[..a], &s[a..b], &s[b..]]
}

/// An error in OpenAI's shape: `{"error":{"message","type","param","code"}}`.
pub fn error(status: StatusCode, kind: &str, code: Option<&str>, message: &str) -> Response {
    let body = json!({
        "error": {"message": message, "type": kind, "param": null, "code": code},
    });
    (status, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_char_boundaries() {
        assert_eq!(split_in_three("ab"), vec!["ab"]);
        assert_eq!(split_in_three("aébcdé").concat(), "aébcdé");
        assert_eq!(split_in_three("aébcdé").len(), 3);
    }
}
