//! Normalized `ChatRequest` → Anthropic Messages request body: system and
//! developer messages lifted into `system`, content as blocks, tool calls and
//! results as `tool_use`/`tool_result` blocks, same-role turns merged (the
//! API wants strict alternation), and `reasoning` as a thinking budget.

use serde_json::{Map, Value, json};
use switchyard_proto::common::v1::{ChatMessage, ChatRequest, ContentPart, content_part};

use crate::errors::AdapterError;
use crate::translate::{
    Image, Reasoning, Thinking, ToolChoice, image, invalid, merge_passthrough, parse, reasoning,
    tool_choice,
};

/// Anthropic requires `max_tokens`; this is what an unset one becomes.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;
/// The smallest thinking budget the API accepts.
pub const MIN_THINKING_BUDGET: u32 = 1024;

const RESERVED: &[&str] = &["model", "messages", "system", "stream", "max_tokens"];

pub fn build_body(request: &ChatRequest, model: &str, stream: bool) -> Result<Value, AdapterError> {
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    let (system, messages) = conversation(&request.messages)?;
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }
    body.insert("messages".into(), Value::Array(messages));
    let choice = tool_choice(request)?;
    // Forced tool use and extended thinking cannot be combined; the tool
    // choice is the explicit instruction, so it wins.
    let forced = matches!(choice, Some(ToolChoice::Required | ToolChoice::Function(_)));
    let (max_tokens, thinking) = budgets(request.max_tokens, reasoning(request)?, forced);
    body.insert("max_tokens".into(), json!(max_tokens));
    if let Some(budget) = thinking {
        body.insert(
            "thinking".into(),
            json!({"type": "enabled", "budget_tokens": budget}),
        );
    }
    body.insert("stream".into(), json!(stream));
    // Thinking rejects temperature and top_k changes; Anthropic's
    // temperature range is 0–1 where OpenRouter's is 0–2.
    if thinking.is_none() {
        if let Some(t) = request.temperature {
            body.insert("temperature".into(), json!(t.clamp(0.0, 1.0)));
        }
        if let Some(k) = request.top_k {
            body.insert("top_k".into(), json!(k));
        }
    }
    if let Some(p) = request.top_p.filter(|p| thinking.is_none() || *p >= 0.95) {
        body.insert("top_p".into(), json!(p));
    }
    if !request.stop.is_empty() {
        body.insert("stop_sequences".into(), json!(request.stop));
    }
    if !request.tools.is_empty() {
        let tools = request
            .tools
            .iter()
            .map(|t| {
                let schema = match &t.parameters_json {
                    Some(schema) => parse("tool parameters", schema)?,
                    None => json!({"type": "object"}),
                };
                let mut tool = json!({"name": t.name, "input_schema": schema});
                if let Some(description) = &t.description {
                    tool["description"] = json!(description);
                }
                Ok(tool)
            })
            .collect::<Result<Vec<_>, AdapterError>>()?;
        body.insert("tools".into(), Value::Array(tools));
        let mut choice = match choice {
            None | Some(ToolChoice::Auto) => json!({"type": "auto"}),
            Some(ToolChoice::None) => json!({"type": "none"}),
            Some(ToolChoice::Required) => json!({"type": "any"}),
            Some(ToolChoice::Function(name)) => json!({"type": "tool", "name": name}),
        };
        if request.parallel_tool_calls == Some(false) {
            choice["disable_parallel_tool_use"] = json!(true);
        }
        body.insert("tool_choice".into(), choice);
    }
    if let Some(user) = &request.user {
        body.insert("metadata".into(), json!({"user_id": user}));
    }
    merge_passthrough(&mut body, request, RESERVED)?;
    Ok(Value::Object(body))
}

/// `(max_tokens, thinking budget)`. The budget must stay below
/// `max_tokens`: an unset `max_tokens` grows to fit thinking plus an answer,
/// an explicit one caps the budget, and thinking that cannot get the
/// minimum budget is left off.
fn budgets(
    max_tokens: Option<u32>,
    reasoning: Option<Reasoning>,
    forced_tool: bool,
) -> (u32, Option<u32>) {
    let max = max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
    let wanted = match reasoning.map(|r| r.thinking) {
        _ if forced_tool => None,
        Some(Thinking::Budget(budget)) => Some(budget),
        Some(Thinking::Share(share)) => Some((f64::from(max) * share) as u32),
        Some(Thinking::Off | Thinking::Default) | None => None,
    };
    let Some(budget) = wanted.map(|b| b.max(MIN_THINKING_BUDGET)) else {
        return (max, None);
    };
    match max_tokens {
        _ if budget < max => (max, Some(budget)),
        None => (budget.saturating_add(DEFAULT_MAX_TOKENS), Some(budget)),
        Some(max) if max > MIN_THINKING_BUDGET => (max, Some(max - 1)),
        Some(max) => (max, None),
    }
}

/// `(system blocks, messages)`.
fn conversation(messages: &[ChatMessage]) -> Result<(Vec<Value>, Vec<Value>), AdapterError> {
    let mut system = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for message in messages {
        let (role, blocks) = match message.role.as_str() {
            "system" | "developer" => {
                system.extend(content(message)?);
                continue;
            }
            "user" => ("user", content(message)?),
            "assistant" => ("assistant", assistant(message)?),
            "tool" => ("user", vec![tool_result(message)?]),
            other => return Err(invalid(format!("unknown message role {other:?}"))),
        };
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last, existing)) if *last == role => existing.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    let messages = turns
        .into_iter()
        .map(|(role, blocks)| json!({"role": role, "content": blocks}))
        .collect();
    Ok((system, messages))
}

/// A message's content as blocks; empty text is dropped (the API rejects it).
fn content(message: &ChatMessage) -> Result<Vec<Value>, AdapterError> {
    if message.parts.is_empty() {
        return Ok(match message.text.as_deref() {
            Some(text) if !text.is_empty() => vec![json!({"type": "text", "text": text})],
            _ => Vec::new(),
        });
    }
    let mut blocks = Vec::new();
    for part in &message.parts {
        if let Some(block) = block(part)? {
            blocks.push(block);
        }
    }
    Ok(blocks)
}

fn block(part: &ContentPart) -> Result<Option<Value>, AdapterError> {
    let mut block = match &part.part {
        Some(content_part::Part::Text(text)) if text.is_empty() => return Ok(None),
        Some(content_part::Part::Text(text)) => json!({"type": "text", "text": text}),
        Some(content_part::Part::ImageUrl(url)) => {
            json!({"type": "image", "source": source(&url.url)?})
        }
        Some(content_part::Part::OtherJson(other)) => other_part(parse("content part", other)?)?,
        None => return Err(invalid("content part without content")),
    };
    if let Some(cache_control) = &part.cache_control_json {
        block["cache_control"] = parse("cache_control", cache_control)?;
    }
    Ok(Some(block))
}

fn source(url: &str) -> Result<Value, AdapterError> {
    Ok(match image(url)? {
        Image::Inline { media_type, data } => {
            json!({"type": "base64", "media_type": media_type, "data": data})
        }
        Image::Url(url) => json!({"type": "url", "url": url}),
    })
}

/// A PDF `file` part becomes a `document` block; anything else is taken to
/// be a native Anthropic block already.
fn other_part(part: Value) -> Result<Value, AdapterError> {
    if !part.is_object() {
        return Err(invalid("content part must be a JSON object"));
    }
    let file_data = part
        .get("file")
        .and_then(|f| f.get("file_data"))
        .and_then(Value::as_str);
    match (part.get("type").and_then(Value::as_str), file_data) {
        (Some("file"), Some(data)) => Ok(json!({"type": "document", "source": source(data)?})),
        _ => Ok(part),
    }
}

/// Text first, then one `tool_use` per call. Earlier reasoning is not sent
/// back: Anthropic only accepts thinking blocks with their signatures.
fn assistant(message: &ChatMessage) -> Result<Vec<Value>, AdapterError> {
    let mut blocks = content(message)?;
    for call in &message.tool_calls {
        let input = match call.arguments.trim() {
            "" => json!({}),
            arguments => parse("tool call arguments", arguments)?,
        };
        if !input.is_object() {
            return Err(invalid("tool call arguments must be a JSON object"));
        }
        blocks.push(json!({"type": "tool_use", "id": call.id, "name": call.name, "input": input}));
    }
    Ok(blocks)
}

fn tool_result(message: &ChatMessage) -> Result<Value, AdapterError> {
    let id = message
        .tool_call_id
        .as_deref()
        .ok_or_else(|| invalid("tool messages need tool_call_id"))?;
    let content = if message.parts.is_empty() {
        json!(message.text.as_deref().unwrap_or_default())
    } else {
        Value::Array(content(message)?)
    };
    Ok(json!({"type": "tool_result", "tool_use_id": id, "content": content}))
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
