//! The plan as OpenAI renders it: one `chat.completion` body, or a sequence
//! of `chat.completion.chunk` events ending in `data: [DONE]`.

use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};

use crate::plan::{Finish, Output, Plan};
use crate::serve::{self, Event, Fault, Wire};
use crate::text;

pub struct OpenAi {
    created: u64,
    include_usage: bool,
    /// `Some(top_logprobs)` when the request asked for logprobs.
    logprobs: Option<u32>,
}

/// Deterministic log-probabilities for `pieces`: OpenAI's `logprobs`
/// object, one entry per token, `top` alternatives each.
fn logprobs(pieces: &[String], top: u32) -> Value {
    let content: Vec<Value> = pieces
        .iter()
        .map(|piece| {
            let seed = piece.bytes().fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
            let logprob = -f64::from(seed % 1000) / 1000.0;
            let entry = |token: &str, lp: f64| json!({"token": token, "logprob": lp, "bytes": token.as_bytes()});
            let mut item = entry(piece, logprob);
            item["top_logprobs"] = (0..top)
                .map(|i| {
                    if i == 0 {
                        entry(piece, logprob)
                    } else {
                        entry(&format!("{piece}~{i}"), logprob - f64::from(i))
                    }
                })
                .collect();
            item
        })
        .collect();
    json!({ "content": content })
}

impl OpenAi {
    pub fn new(include_usage: bool, logprobs: Option<u32>) -> OpenAi {
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        OpenAi {
            created,
            include_usage,
            logprobs,
        }
    }

    fn id(plan: &Plan) -> String {
        format!("chatcmpl-{:016x}{:08x}", plan.hash, plan.seq)
    }

    fn tool_call_id(plan: &Plan) -> String {
        format!("call_{:016x}", plan.hash)
    }

    fn finish_reason(plan: &Plan) -> &'static str {
        match plan.finish {
            Finish::Stop | Finish::StopSequence(_) => "stop",
            Finish::Length => "length",
            Finish::ToolCall => "tool_calls",
            Finish::Safety => "content_filter",
        }
    }

    fn usage(plan: &Plan) -> Value {
        let completion = plan.completion_tokens();
        json!({
            "prompt_tokens": plan.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": plan.prompt_tokens + completion,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": plan.thinking_tokens()},
        })
    }

    fn chunk(&self, plan: &Plan, delta: Value, finish_reason: Option<&str>) -> Value {
        let mut chunk = json!({
            "id": OpenAi::id(plan),
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": plan.model,
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

fn data(chunk: &Value, tokens: u64) -> Event {
    Event::new(format!("data: {chunk}\n\n"), tokens)
}

impl Wire for OpenAi {
    fn error(&self, fault: &Fault) -> Response {
        super::fault(fault)
    }

    fn body(&self, plan: &Plan) -> Value {
        let message = match &plan.output {
            Output::Text(_) if plan.finish == Finish::Safety => json!({
                "role": "assistant",
                "content": null,
                "refusal": null,
            }),
            Output::Text(pieces) => json!({
                "role": "assistant",
                "content": pieces.concat(),
                "refusal": null,
            }),
            Output::ToolCall { name, arguments } => json!({
                "role": "assistant",
                "content": null,
                "refusal": null,
                "tool_calls": [{
                    "id": OpenAi::tool_call_id(plan),
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }],
            }),
        };
        json!({
            "id": OpenAi::id(plan),
            "object": "chat.completion",
            "created": self.created,
            "model": plan.model,
            "system_fingerprint": "fp_provider_sim",
            "choices": [{
                "index": 0,
                "message": message,
                "logprobs": match (&plan.output, self.logprobs) {
                    (Output::Text(pieces), Some(top)) => logprobs(pieces, top),
                    _ => Value::Null,
                },
                "finish_reason": OpenAi::finish_reason(plan),
            }],
            "usage": OpenAi::usage(plan),
        })
    }

    fn events(&self, plan: &Plan) -> Vec<Event> {
        let mut events = Vec::new();
        match &plan.output {
            Output::Text(pieces) => {
                let role = json!({"role": "assistant", "content": ""});
                events.push(data(&self.chunk(plan, role, None), 0));
                for piece in pieces {
                    let delta = json!({"content": piece});
                    let mut chunk = self.chunk(plan, delta, None);
                    if let Some(top) = self.logprobs {
                        chunk["choices"][0]["logprobs"] =
                            logprobs(std::slice::from_ref(piece), top);
                    }
                    events.push(data(&chunk, 1));
                }
            }
            Output::ToolCall { name, arguments } => {
                let head = json!({
                    "role": "assistant",
                    "content": null,
                    "tool_calls": [{
                        "index": 0,
                        "id": OpenAi::tool_call_id(plan),
                        "type": "function",
                        "function": {"name": name, "arguments": ""},
                    }],
                });
                let head = self.chunk(plan, head, None);
                events.push(data(&head, text::estimate_tokens(name)));
                for (piece, tokens) in text::argument_fragments(arguments) {
                    let delta =
                        json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]});
                    events.push(data(&self.chunk(plan, delta, None), tokens));
                }
            }
        }
        let finish = self.chunk(plan, json!({}), Some(OpenAi::finish_reason(plan)));
        events.push(data(&finish, 0));
        if self.include_usage {
            let mut usage = self.chunk(plan, json!({}), None);
            usage["choices"] = json!([]);
            usage["usage"] = OpenAi::usage(plan);
            events.push(data(&usage, 0));
        }
        events.push(Event::new(Bytes::from_static(b"data: [DONE]\n\n"), 0));
        events
    }

    fn stream_error(&self, _sent: u32) -> Bytes {
        let error = super::error_body(
            "server_error",
            None,
            "The server had an error while processing your request.",
        );
        Bytes::from(format!("data: {error}\n\n"))
    }

    fn decorate(&self, plan: &Plan, response: &mut Response) {
        serve::set_header(response, "x-request-id", &OpenAi::id(plan));
    }
}
