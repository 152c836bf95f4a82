//! Anthropic Messages answers → normalized pieces: the streamed event
//! sequence (`message_start`, content blocks and their deltas,
//! `message_delta`, `message_stop`; `ping` ignored, `error` typed) or one
//! whole `message` body. Usage arrives in parts and is merged.

use serde::Deserialize;
use serde_json::Value;
use switchyard_proto::common::v1::{FinishReason, TokenUsage};
use switchyard_proto::provider::v1::{Delta, Finish, ToolCallDelta};

use crate::emit::Piece;
use crate::errors::UpstreamFailure;
use crate::sse::SseEvent;

/// Anthropic's usage object; streams send it in parts, each field cumulative.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
struct Usage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
}

impl Usage {
    fn merge(&mut self, newer: Usage) {
        self.input_tokens = newer.input_tokens.or(self.input_tokens);
        self.output_tokens = newer.output_tokens.or(self.output_tokens);
        self.cache_creation_input_tokens = newer
            .cache_creation_input_tokens
            .or(self.cache_creation_input_tokens);
        self.cache_read_input_tokens = newer
            .cache_read_input_tokens
            .or(self.cache_read_input_tokens);
    }

    /// OpenRouter reports native prompt counts including cached tokens;
    /// Anthropic counts cache reads and writes apart from `input_tokens`.
    fn into_proto(self) -> TokenUsage {
        let read = self.cache_read_input_tokens.unwrap_or(0);
        let written = self.cache_creation_input_tokens.unwrap_or(0);
        TokenUsage {
            prompt_tokens: self.input_tokens.unwrap_or(0) + read + written,
            completion_tokens: self.output_tokens.unwrap_or(0),
            cached_tokens: read,
            cache_write_tokens: written,
            ..Default::default()
        }
    }
}

fn usage_of(value: Option<&Value>) -> Option<Usage> {
    value.and_then(|u| serde_json::from_value(u.clone()).ok())
}

/// Reads one answer.
pub struct Decoder {
    status: u16,
    usage: Usage,
    /// Content-block index → tool call index, for the blocks that are tool uses.
    tool_blocks: Vec<(u64, u32)>,
}

impl Decoder {
    pub fn new(status: u16) -> Decoder {
        Decoder {
            status,
            usage: Usage::default(),
            tool_blocks: Vec::new(),
        }
    }

    pub fn event(&mut self, event: &SseEvent, out: &mut Vec<Piece>) -> Result<(), UpstreamFailure> {
        if event.data.trim().is_empty() {
            return Ok(());
        }
        let data: Value = serde_json::from_str(&event.data)
            .map_err(|_| UpstreamFailure::bad_response("upstream sent a malformed stream event"))?;
        let kind = data
            .get("type")
            .and_then(Value::as_str)
            .or(event.event.as_deref())
            .unwrap_or_default();
        match kind {
            "message_start" => {
                let message = data.get("message");
                if let Some(id) = message.and_then(|m| m.get("id")).and_then(Value::as_str) {
                    out.push(Piece::Id(id.to_owned()));
                }
                if let Some(usage) = usage_of(message.and_then(|m| m.get("usage"))) {
                    self.usage.merge(usage);
                }
            }
            "content_block_start" => {
                let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
                if let Some(block) = data.get("content_block") {
                    self.block_start(index, block, out);
                }
            }
            "content_block_delta" => {
                let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
                if let Some(delta) = data.get("delta") {
                    self.block_delta(index, delta, out);
                }
            }
            "message_delta" => {
                let reason = data
                    .get("delta")
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str);
                if let Some(usage) = usage_of(data.get("usage")) {
                    self.usage.merge(usage);
                }
                out.extend(reason.map(finish));
                out.push(Piece::Usage(self.usage.into_proto()));
            }
            "message_stop" => out.push(Piece::Done),
            "error" => {
                return Err(UpstreamFailure::in_band(
                    super::error::body_of(&data),
                    self.status,
                ));
            }
            // ping, content_block_stop and whatever Anthropic adds later.
            _ => {}
        }
        Ok(())
    }

    fn block_start(&mut self, index: u64, block: &Value, out: &mut Vec<Piece>) {
        let text = |key: &str| {
            block
                .get(key)
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
        };
        match block.get("type").and_then(Value::as_str) {
            Some("text") => out.extend(text("text").map(content)),
            Some("thinking") => out.extend(text("thinking").map(thought)),
            Some("tool_use") => {
                let position = self.tool_blocks.len() as u32;
                self.tool_blocks.push((index, position));
                let input = block
                    .get("input")
                    .filter(|i| i.as_object().is_some_and(|o| !o.is_empty()))
                    .map(Value::to_string);
                out.push(tool_call(ToolCallDelta {
                    index: position,
                    id: text("id").map(str::to_owned),
                    r#type: Some("function".into()),
                    name: text("name").map(str::to_owned),
                    arguments: input,
                }));
            }
            // redacted_thinking, server tool blocks: nothing to show.
            _ => {}
        }
    }

    fn block_delta(&mut self, index: u64, delta: &Value, out: &mut Vec<Piece>) {
        let text = |key: &str| {
            delta
                .get(key)
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
        };
        match delta.get("type").and_then(Value::as_str) {
            Some("text_delta") => out.extend(text("text").map(content)),
            Some("thinking_delta") => out.extend(text("thinking").map(thought)),
            Some("input_json_delta") => {
                let position = self
                    .tool_blocks
                    .iter()
                    .find(|(block, _)| *block == index)
                    .map(|(_, position)| *position);
                if let (Some(position), Some(fragment)) = (position, text("partial_json")) {
                    out.push(tool_call(ToolCallDelta {
                        index: position,
                        arguments: Some(fragment.to_owned()),
                        ..Default::default()
                    }));
                }
            }
            // signature_delta, citations_delta.
            _ => {}
        }
    }

    pub fn whole(&mut self, body: &[u8], out: &mut Vec<Piece>) -> Result<(), UpstreamFailure> {
        let message: Value = serde_json::from_slice(body)
            .map_err(|_| UpstreamFailure::bad_response("upstream sent a malformed JSON body"))?;
        if message.get("type").and_then(Value::as_str) == Some("error") {
            return Err(UpstreamFailure::in_band(
                super::error::body_of(&message),
                self.status,
            ));
        }
        let Some(blocks) = message.get("content").and_then(Value::as_array) else {
            return Err(UpstreamFailure::bad_response(
                "upstream answer has no content",
            ));
        };
        if let Some(id) = message.get("id").and_then(Value::as_str) {
            out.push(Piece::Id(id.to_owned()));
        }
        let mut delta = Delta::default();
        for block in blocks {
            let text = |key: &str| block.get(key).and_then(Value::as_str).unwrap_or_default();
            match block.get("type").and_then(Value::as_str) {
                Some("text") => append(&mut delta.content, text("text")),
                Some("thinking") => append(&mut delta.reasoning, text("thinking")),
                Some("tool_use") => delta.tool_calls.push(ToolCallDelta {
                    index: delta.tool_calls.len() as u32,
                    id: Some(text("id").to_owned()),
                    r#type: Some("function".into()),
                    name: Some(text("name").to_owned()),
                    arguments: Some(
                        block
                            .get("input")
                            .map_or_else(|| "{}".to_owned(), Value::to_string),
                    ),
                }),
                _ => {}
            }
        }
        let has_content =
            delta.content.is_some() || delta.reasoning.is_some() || !delta.tool_calls.is_empty();
        if has_content {
            out.push(Piece::Delta(delta));
        }
        out.extend(
            message
                .get("stop_reason")
                .and_then(Value::as_str)
                .map(finish),
        );
        if let Some(usage) = usage_of(message.get("usage")) {
            out.push(Piece::Usage(usage.into_proto()));
        }
        Ok(())
    }
}

fn append(field: &mut Option<String>, text: &str) {
    if !text.is_empty() {
        field.get_or_insert_with(String::new).push_str(text);
    }
}

fn content(text: &str) -> Piece {
    Piece::Delta(Delta {
        content: Some(text.to_owned()),
        ..Default::default()
    })
}

fn thought(text: &str) -> Piece {
    Piece::Delta(Delta {
        reasoning: Some(text.to_owned()),
        ..Default::default()
    })
}

fn tool_call(call: ToolCallDelta) -> Piece {
    Piece::Delta(Delta {
        tool_calls: vec![call],
        ..Default::default()
    })
}

fn finish(native: &str) -> Piece {
    let reason = match native {
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::ContentFilter,
        // end_turn, stop_sequence, pause_turn.
        _ => FinishReason::Stop,
    };
    Piece::Finish(Finish {
        reason: reason as i32,
        native_reason: native.to_owned(),
    })
}

#[cfg(test)]
#[path = "response_tests.rs"]
mod tests;
