//! Gemini `GenerateContentResponse`s → normalized pieces. A stream is a
//! series of whole responses, each with new parts; the last carries the
//! finish reason. Thoughts become reasoning, each `functionCall` one whole
//! tool call with a generated id, and a blocked prompt a content-filter
//! finish with no content.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;
use serde_json::Value;
use switchyard_proto::common::v1::{FinishReason, TokenUsage};
use switchyard_proto::provider::v1::{Delta, Finish, ToolCallDelta};

use crate::emit::Piece;
use crate::errors::UpstreamFailure;
use crate::sse::SseEvent;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Response {
    candidates: Option<Vec<Candidate>>,
    prompt_feedback: Option<PromptFeedback>,
    usage_metadata: Option<UsageMetadata>,
    response_id: Option<String>,
    error: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    content: Option<Content>,
    finish_reason: Option<String>,
    index: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
struct Content {
    parts: Option<Vec<Part>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Part {
    text: Option<String>,
    thought: Option<bool>,
    function_call: Option<FunctionCall>,
}

#[derive(Debug, Default, Deserialize)]
struct FunctionCall {
    id: Option<String>,
    name: Option<String>,
    args: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    block_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    prompt_token_count: Option<u64>,
    candidates_token_count: Option<u64>,
    thoughts_token_count: Option<u64>,
    cached_content_token_count: Option<u64>,
}

impl UsageMetadata {
    /// Thinking is generated output: it counts as completion, as OpenRouter
    /// reports it. Cached tokens are already part of the prompt count.
    fn into_proto(self) -> TokenUsage {
        let thoughts = self.thoughts_token_count.unwrap_or(0);
        TokenUsage {
            prompt_tokens: self.prompt_token_count.unwrap_or(0),
            completion_tokens: self.candidates_token_count.unwrap_or(0) + thoughts,
            reasoning_tokens: thoughts,
            cached_tokens: self.cached_content_token_count.unwrap_or(0),
            ..Default::default()
        }
    }
}

/// Makes generated tool call ids unique across calls in this process.
static NEXT_DECODER: AtomicU64 = AtomicU64::new(0);

/// Reads one answer.
pub struct Decoder {
    status: u16,
    /// Tool calls seen so far: the next one's index.
    calls: u32,
    nonce: u64,
}

impl Decoder {
    pub fn new(status: u16) -> Decoder {
        let clock = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Decoder {
            status,
            calls: 0,
            nonce: clock ^ NEXT_DECODER.fetch_add(1, Ordering::Relaxed).rotate_left(48),
        }
    }

    pub fn event(&mut self, event: &SseEvent, out: &mut Vec<Piece>) -> Result<(), UpstreamFailure> {
        if event.data.trim().is_empty() {
            return Ok(());
        }
        let response: Response = serde_json::from_str(&event.data)
            .map_err(|_| UpstreamFailure::bad_response("upstream sent a malformed stream chunk"))?;
        self.response(response, out)
    }

    pub fn whole(&mut self, body: &[u8], out: &mut Vec<Piece>) -> Result<(), UpstreamFailure> {
        let response: Response = serde_json::from_slice(body)
            .map_err(|_| UpstreamFailure::bad_response("upstream sent a malformed JSON body"))?;
        let blocked = response
            .prompt_feedback
            .as_ref()
            .is_some_and(|f| f.block_reason.is_some());
        if response.error.is_none()
            && response.candidates.as_ref().is_none_or(Vec::is_empty)
            && !blocked
        {
            return Err(UpstreamFailure::bad_response(
                "upstream answer has no candidates",
            ));
        }
        self.response(response, out)
    }

    fn response(
        &mut self,
        response: Response,
        out: &mut Vec<Piece>,
    ) -> Result<(), UpstreamFailure> {
        if let Some(error) = &response.error {
            let wrapped = serde_json::json!({ "error": error });
            return Err(UpstreamFailure::in_band(
                super::error::body_of(&wrapped),
                self.status,
            ));
        }
        out.extend(response.response_id.clone().map(Piece::Id));
        if let Some(reason) = response.prompt_feedback.and_then(|f| f.block_reason) {
            out.push(Piece::Finish(Finish {
                reason: FinishReason::ContentFilter as i32,
                native_reason: reason,
            }));
        }
        let candidate = response
            .candidates
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.index.unwrap_or(0) == 0);
        if let Some(candidate) = candidate {
            let parts = candidate.content.and_then(|c| c.parts).unwrap_or_default();
            let delta = self.delta(parts, response.response_id.as_deref());
            if delta != Delta::default() {
                out.push(Piece::Delta(delta));
            }
            let native = candidate
                .finish_reason
                .filter(|r| !r.is_empty() && r != "FINISH_REASON_UNSPECIFIED");
            if let Some(native) = native {
                out.push(Piece::Finish(Finish {
                    reason: self.finish_reason(&native) as i32,
                    native_reason: native,
                }));
            }
        }
        out.extend(
            response
                .usage_metadata
                .map(|u| Piece::Usage(u.into_proto())),
        );
        Ok(())
    }

    fn delta(&mut self, parts: Vec<Part>, response_id: Option<&str>) -> Delta {
        let mut delta = Delta::default();
        for part in parts {
            if let Some(call) = part.function_call {
                let index = self.calls;
                self.calls += 1;
                let id = call
                    .id
                    .filter(|id| !id.is_empty())
                    .unwrap_or_else(|| match response_id {
                        Some(response) => format!("call_{response}_{index}"),
                        None => format!("call_{:016x}_{index}", self.nonce),
                    });
                delta.tool_calls.push(ToolCallDelta {
                    index,
                    id: Some(id),
                    r#type: Some("function".into()),
                    name: call.name,
                    arguments: Some(
                        call.args
                            .unwrap_or_else(|| serde_json::json!({}))
                            .to_string(),
                    ),
                });
                continue;
            }
            let Some(text) = part.text.filter(|t| !t.is_empty()) else {
                continue;
            };
            let field = if part.thought == Some(true) {
                &mut delta.reasoning
            } else {
                &mut delta.content
            };
            field.get_or_insert_with(String::new).push_str(&text);
        }
        delta
    }

    /// Gemini says STOP after a function call; the caller needs to know it
    /// has tool calls to run.
    fn finish_reason(&self, native: &str) -> FinishReason {
        match native {
            "MAX_TOKENS" => FinishReason::Length,
            "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII"
            | "IMAGE_SAFETY" => FinishReason::ContentFilter,
            "MALFORMED_FUNCTION_CALL" => FinishReason::Error,
            _ if self.calls > 0 => FinishReason::ToolCalls,
            _ => FinishReason::Stop,
        }
    }
}

#[cfg(test)]
#[path = "response_tests.rs"]
mod tests;
