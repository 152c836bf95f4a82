//! The plan as Gemini renders it: one `GenerateContentResponse`, or a stream
//! of them (SSE `data:` events, or the elements of one JSON array), each
//! carrying new parts; the last adds `finishReason` and `usageMetadata`.

use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};

use super::error;
use crate::plan::{Finish, Output, Plan};
use crate::serve::{Event, Fault, Wire};

pub struct Gemini {
    include_thoughts: bool,
    /// SSE (`?alt=sse`) rather than a streamed JSON array.
    sse: bool,
}

impl Gemini {
    pub fn new(include_thoughts: bool, sse: bool) -> Gemini {
        Gemini {
            include_thoughts,
            sse,
        }
    }

    /// Fields every response and chunk carries.
    fn response(plan: &Plan) -> Value {
        json!({
            "modelVersion": plan.model,
            "responseId": format!("{:016x}{:08x}", plan.hash, plan.seq),
        })
    }

    fn usage(plan: &Plan) -> Value {
        let mut usage = json!({
            "promptTokenCount": plan.prompt_tokens,
            "candidatesTokenCount": plan.output_tokens(),
            "totalTokenCount": plan.prompt_tokens + plan.completion_tokens(),
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": plan.prompt_tokens}],
        });
        if plan.thinking_tokens() > 0 {
            usage["thoughtsTokenCount"] = json!(plan.thinking_tokens());
        }
        usage
    }

    /// A prompt blocked by the safety filter: no candidates at all.
    fn blocked(plan: &Plan) -> Value {
        let mut body = Gemini::response(plan);
        body["promptFeedback"] = json!({
            "blockReason": "SAFETY",
            "safetyRatings": [
                {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "NEGLIGIBLE"},
                {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"},
                {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
                {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"},
            ],
        });
        body["usageMetadata"] = json!({
            "promptTokenCount": plan.prompt_tokens,
            "totalTokenCount": plan.prompt_tokens,
        });
        body
    }

    /// A response with one candidate holding `parts`.
    fn candidate(plan: &Plan, parts: Vec<Value>, last: bool) -> Value {
        let mut content = json!({"role": "model"});
        if !parts.is_empty() {
            content["parts"] = Value::Array(parts);
        }
        let mut candidate = json!({"content": content, "index": 0});
        let mut body = Gemini::response(plan);
        if last {
            let reason = match plan.finish {
                Finish::Length => "MAX_TOKENS",
                Finish::Safety => "SAFETY",
                Finish::Stop | Finish::StopSequence(_) | Finish::ToolCall => "STOP",
            };
            candidate["finishReason"] = json!(reason);
            body["usageMetadata"] = Gemini::usage(plan);
        }
        body["candidates"] = json!([candidate]);
        body
    }

    /// The parts of the answer, each with the tokens it carries. Thinking
    /// the client did not ask to see is still spent (and billed): its tokens
    /// ride on the first visible part.
    fn parts(&self, plan: &Plan) -> Vec<(Value, u64)> {
        let mut parts = Vec::new();
        let mut hidden = 0;
        if self.include_thoughts {
            for piece in &plan.thinking {
                parts.push((json!({"text": piece, "thought": true}), 1));
            }
        } else {
            hidden = plan.thinking_tokens();
        }
        match &plan.output {
            Output::Text(pieces) => {
                for piece in pieces {
                    parts.push((json!({"text": piece}), 1));
                }
            }
            Output::ToolCall { name, arguments } => {
                let args: Value = serde_json::from_str(arguments).unwrap_or_default();
                let call = json!({"functionCall": {"name": name, "args": args}});
                parts.push((call, plan.output_tokens()));
            }
        }
        match parts.first_mut() {
            Some(first) => first.1 += hidden,
            None => parts.push((json!({"text": ""}), hidden)),
        }
        parts
    }

    fn frame(&self, index: usize, chunk: &Value, tokens: u64) -> Event {
        if self.sse {
            Event::new(format!("data: {chunk}\r\n\r\n"), tokens)
        } else if index == 0 {
            Event::new(format!("[{chunk}"), tokens)
        } else {
            Event::new(format!(",\r\n{chunk}"), tokens)
        }
    }
}

impl Wire for Gemini {
    fn error(&self, fault: &Fault) -> Response {
        error::fault(fault)
    }

    fn body(&self, plan: &Plan) -> Value {
        if plan.finish == Finish::Safety {
            return Gemini::blocked(plan);
        }
        // Adjacent text parts of one kind merge, as in a real response.
        let mut parts: Vec<Value> = Vec::new();
        for (part, _) in self.parts(plan) {
            let kind = |p: &Value| (p.get("text").is_some(), p.get("thought").is_some());
            match parts.last_mut() {
                Some(last) if part.get("text").is_some() && kind(last) == kind(&part) => {
                    let joined = format!(
                        "{}{}",
                        last["text"].as_str().unwrap_or_default(),
                        part["text"].as_str().unwrap_or_default()
                    );
                    last["text"] = json!(joined);
                }
                _ => parts.push(part),
            }
        }
        Gemini::candidate(plan, parts, true)
    }

    fn events(&self, plan: &Plan) -> Vec<Event> {
        let mut events = Vec::new();
        if plan.finish == Finish::Safety {
            events.push(self.frame(0, &Gemini::blocked(plan), 0));
        } else {
            let parts = self.parts(plan);
            let count = parts.len();
            for (i, (part, tokens)) in parts.into_iter().enumerate() {
                let chunk = Gemini::candidate(plan, vec![part], i + 1 == count);
                events.push(self.frame(i, &chunk, tokens));
            }
        }
        if !self.sse {
            events.push(Event::new(Bytes::from_static(b"]"), 0));
        }
        events
    }

    fn stream_error(&self, sent: u32) -> Bytes {
        let code = StatusCode::SERVICE_UNAVAILABLE.as_u16();
        let error = error::body(
            code,
            "The model is overloaded. Please try again later.",
            None,
        );
        if self.sse {
            Bytes::from(format!("data: {error}\r\n\r\n"))
        } else if sent == 0 {
            Bytes::from(format!("[{error}]"))
        } else {
            Bytes::from(format!(",\r\n{error}]"))
        }
    }

    fn stream_content_type(&self) -> &'static str {
        if self.sse {
            "text/event-stream"
        } else {
            "application/json"
        }
    }
}
