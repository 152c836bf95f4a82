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
}

impl OpenAi {
    pub fn new(include_usage: bool) -> OpenAi {
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        OpenAi {
            created,
            include_usage,
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
                "logprobs": null,
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
                    events.push(data(&self.chunk(plan, delta, None), 1));
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
