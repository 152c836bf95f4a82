//! The plan as Anthropic renders it: one `message` body, or the Messages SSE
//! sequence (`message_start`, content blocks with their deltas, `ping`,
//! `message_delta`, `message_stop`).

use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};

use crate::plan::{Finish, Output, Plan};
use crate::serve::{self, Event, Fault, Wire};
use crate::text;

pub struct Anthropic;

impl Anthropic {
    fn id(plan: &Plan) -> String {
        format!("msg_{:016x}{:08x}", plan.hash, plan.seq)
    }

    fn tool_use_id(plan: &Plan) -> String {
        format!("toolu_{:016x}", plan.hash)
    }

    fn stop_reason(plan: &Plan) -> (&'static str, Option<&str>) {
        match &plan.finish {
            Finish::Stop => ("end_turn", None),
            Finish::Length => ("max_tokens", None),
            Finish::StopSequence(sequence) => ("stop_sequence", Some(sequence)),
            Finish::ToolCall => ("tool_use", None),
            Finish::Safety => ("refusal", None),
        }
    }

    fn message(plan: &Plan, content: Value, stop: Option<&str>, usage: Value) -> Value {
        let (stop_reason, stop_sequence) = match stop {
            Some(_) => {
                let (reason, sequence) = Anthropic::stop_reason(plan);
                (Value::from(reason), json!(sequence))
            }
            None => (Value::Null, Value::Null),
        };
        json!({
            "id": Anthropic::id(plan),
            "type": "message",
            "role": "assistant",
            "model": plan.model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
            "usage": usage,
        })
    }

    fn usage(plan: &Plan, output_tokens: u64) -> Value {
        json!({
            "input_tokens": plan.prompt_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": output_tokens,
        })
    }
}

/// The content blocks, in order.
fn blocks(plan: &Plan) -> Vec<Value> {
    let mut blocks = Vec::new();
    if !plan.thinking.is_empty() {
        blocks.push(json!({
            "type": "thinking",
            "thinking": plan.thinking_text(),
            "signature": plan.signature(),
        }));
    }
    match &plan.output {
        Output::Text(_) if plan.finish == Finish::Safety => {}
        Output::Text(pieces) if pieces.is_empty() && !blocks.is_empty() => {}
        Output::Text(pieces) => blocks.push(json!({"type": "text", "text": pieces.concat()})),
        Output::ToolCall { name, arguments } => {
            let input: Value = serde_json::from_str(arguments).unwrap_or_default();
            blocks.push(json!({
                "type": "tool_use",
                "id": Anthropic::tool_use_id(plan),
                "name": name,
                "input": input,
            }));
        }
    }
    blocks
}

fn sse(kind: &str, data: &Value, tokens: u64) -> Event {
    Event::new(format!("event: {kind}\ndata: {data}\n\n"), tokens)
}

fn block_delta(index: usize, delta: Value, tokens: u64) -> Event {
    let data = json!({"type": "content_block_delta", "index": index, "delta": delta});
    sse("content_block_delta", &data, tokens)
}

/// One block's start, deltas and stop. Blocks start empty and fill through
/// deltas, as the real stream does.
fn block_events(plan: &Plan, index: usize, block: &Value, events: &mut Vec<Event>) {
    let kind = block["type"].as_str().unwrap_or_default();
    let (start, start_tokens) = match kind {
        "thinking" => (json!({"type": "thinking", "thinking": ""}), 0),
        "tool_use" => {
            let name = block["name"].as_str().unwrap_or_default();
            let start = json!({
                "type": "tool_use", "id": block["id"], "name": name, "input": {},
            });
            (start, text::estimate_tokens(name))
        }
        _ => (json!({"type": "text", "text": ""}), 0),
    };
    let data = json!({"type": "content_block_start", "index": index, "content_block": start});
    events.push(sse("content_block_start", &data, start_tokens));
    if index == 0 {
        events.push(ping());
    }
    match (kind, &plan.output) {
        ("thinking", _) => {
            for piece in &plan.thinking {
                let delta = json!({"type": "thinking_delta", "thinking": piece});
                events.push(block_delta(index, delta, 1));
            }
            let delta = json!({"type": "signature_delta", "signature": plan.signature()});
            events.push(block_delta(index, delta, 0));
        }
        ("tool_use", Output::ToolCall { arguments, .. }) => {
            let empty = json!({"type": "input_json_delta", "partial_json": ""});
            events.push(block_delta(index, empty, 0));
            for (fragment, tokens) in text::argument_fragments(arguments) {
                let delta = json!({"type": "input_json_delta", "partial_json": fragment});
                events.push(block_delta(index, delta, tokens));
            }
        }
        (_, Output::Text(pieces)) => {
            for piece in pieces {
                let delta = json!({"type": "text_delta", "text": piece});
                events.push(block_delta(index, delta, 1));
            }
        }
        _ => {}
    }
    let stop = json!({"type": "content_block_stop", "index": index});
    events.push(sse("content_block_stop", &stop, 0));
}

fn ping() -> Event {
    sse("ping", &json!({"type": "ping"}), 0)
}

impl Wire for Anthropic {
    fn error(&self, fault: &Fault) -> Response {
        super::fault(fault)
    }

    fn body(&self, plan: &Plan) -> Value {
        let usage = Anthropic::usage(plan, plan.completion_tokens());
        Anthropic::message(plan, Value::Array(blocks(plan)), Some("done"), usage)
    }

    fn events(&self, plan: &Plan) -> Vec<Event> {
        let total = plan.completion_tokens();
        // The real stream reports a token or so already spent at the start;
        // the final count comes with `message_delta`.
        let usage = Anthropic::usage(plan, total.min(1));
        let start = Anthropic::message(plan, json!([]), None, usage);
        let mut events = vec![sse(
            "message_start",
            &json!({"type": "message_start", "message": start}),
            0,
        )];
        let blocks = blocks(plan);
        if blocks.is_empty() {
            events.push(ping());
        }
        for (index, block) in blocks.iter().enumerate() {
            block_events(plan, index, block, &mut events);
        }
        let (stop_reason, stop_sequence) = Anthropic::stop_reason(plan);
        let delta = json!({
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
            "usage": {"output_tokens": total},
        });
        events.push(sse("message_delta", &delta, 0));
        events.push(sse("message_stop", &json!({"type": "message_stop"}), 0));
        events
    }

    fn stream_error(&self, _sent: u32) -> Bytes {
        let error = super::error_body("overloaded_error", "Overloaded");
        Bytes::from(format!("event: error\ndata: {error}\n\n"))
    }

    fn decorate(&self, plan: &Plan, response: &mut Response) {
        let id = format!("req_{:016x}{:08x}", plan.hash, plan.seq);
        serve::set_header(response, "request-id", &id);
    }
}
