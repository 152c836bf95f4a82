//! Normalized `ChatRequest` → Gemini `GenerateContentRequest`: `contents`
//! with roles user/model, system and developer messages as
//! `systemInstruction`, tool calls and results as `functionCall` /
//! `functionResponse` parts, and sampling, JSON mode and thinking in
//! `generationConfig`.

use std::collections::HashMap;

use serde_json::{Map, Value, json};
use switchyard_proto::common::v1::{ChatMessage, ChatRequest, ContentPart, content_part};

use super::schema;
use crate::errors::AdapterError;
use crate::translate::{
    Image, Thinking, ToolChoice, image, invalid, merge_passthrough, message_text, parse, parse_opt,
    reasoning, tool_choice,
};

const RESERVED: &[&str] = &[
    "contents",
    "systemInstruction",
    "tools",
    "toolConfig",
    "generationConfig",
];

/// What an effort share applies to when `max_tokens` is unset: the largest
/// thinking budget Gemini 2.5 Flash accepts.
const DEFAULT_THINKING_BASE: u32 = 24_576;

pub fn build_body(request: &ChatRequest) -> Result<Value, AdapterError> {
    let mut body = Map::new();
    let (system, contents) = conversation(&request.messages)?;
    body.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        body.insert("systemInstruction".into(), json!({"parts": system}));
    }
    if !request.tools.is_empty() {
        let declarations = request
            .tools
            .iter()
            .map(|tool| {
                let mut declaration = json!({"name": tool.name});
                if let Some(description) = &tool.description {
                    declaration["description"] = json!(description);
                }
                if let Some(parameters) = &tool.parameters_json {
                    declaration["parameters"] =
                        schema::clean(&parse("tool parameters", parameters)?);
                }
                Ok(declaration)
            })
            .collect::<Result<Vec<_>, AdapterError>>()?;
        body.insert(
            "tools".into(),
            json!([{"functionDeclarations": declarations}]),
        );
        if let Some(choice) = tool_choice(request)? {
            let config = match choice {
                ToolChoice::Auto => json!({"mode": "AUTO"}),
                ToolChoice::None => json!({"mode": "NONE"}),
                ToolChoice::Required => json!({"mode": "ANY"}),
                ToolChoice::Function(name) => {
                    json!({"mode": "ANY", "allowedFunctionNames": [name]})
                }
            };
            body.insert(
                "toolConfig".into(),
                json!({"functionCallingConfig": config}),
            );
        }
    }
    let config = generation_config(request)?;
    if !config.is_empty() {
        body.insert("generationConfig".into(), Value::Object(config));
    }
    merge_passthrough(&mut body, request, RESERVED)?;
    Ok(Value::Object(body))
}

fn generation_config(request: &ChatRequest) -> Result<Map<String, Value>, AdapterError> {
    let mut config = Map::new();
    let mut set = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            config.insert(key.to_owned(), value);
        }
    };
    set("temperature", request.temperature.map(Value::from));
    set("topP", request.top_p.map(Value::from));
    set("topK", request.top_k.map(Value::from));
    set("maxOutputTokens", request.max_tokens.map(Value::from));
    set(
        "stopSequences",
        (!request.stop.is_empty()).then(|| json!(request.stop)),
    );
    set("seed", request.seed.map(Value::from));
    set("presencePenalty", request.presence_penalty.map(Value::from));
    set(
        "frequencyPenalty",
        request.frequency_penalty.map(Value::from),
    );
    if let Some(format) = parse_opt("response_format", &request.response_format_json)? {
        match format.get("type").and_then(Value::as_str) {
            Some("json_object") => set("responseMimeType", Some(json!("application/json"))),
            Some("json_schema") => {
                set("responseMimeType", Some(json!("application/json")));
                let schema = format.get("json_schema").and_then(|s| s.get("schema"));
                set("responseSchema", schema.map(schema::clean));
            }
            _ => {}
        }
    }
    if let Some(reasoning) = reasoning(request)? {
        let budget = match reasoning.thinking {
            Thinking::Default => None,
            Thinking::Off => Some(0),
            Thinking::Budget(budget) => Some(budget),
            Thinking::Share(share) => {
                let base = request.max_tokens.unwrap_or(DEFAULT_THINKING_BASE);
                Some((f64::from(base) * share) as u32)
            }
        };
        let mut thinking = Map::new();
        if let Some(budget) = budget {
            thinking.insert("thinkingBudget".into(), json!(budget));
        }
        if budget != Some(0) {
            thinking.insert("includeThoughts".into(), json!(!reasoning.exclude));
        }
        set("thinkingConfig", Some(Value::Object(thinking)));
    }
    Ok(config)
}

/// `(systemInstruction parts, contents)`. Adjacent same-role turns merge:
/// parallel function responses must share one turn.
fn conversation(messages: &[ChatMessage]) -> Result<(Vec<Value>, Vec<Value>), AdapterError> {
    let mut system = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    // Gemini names a function response by the function, not the call id.
    let mut names: HashMap<&str, &str> = HashMap::new();
    for message in messages {
        let (role, parts) = match message.role.as_str() {
            "system" | "developer" => {
                let text = message_text(message);
                if !text.is_empty() {
                    system.push(json!({"text": text}));
                }
                continue;
            }
            "user" => ("user", parts(message)?),
            "assistant" => {
                let mut parts = parts(message)?;
                for call in &message.tool_calls {
                    names.insert(&call.id, &call.name);
                    let args = match call.arguments.trim() {
                        "" => json!({}),
                        arguments => parse("tool call arguments", arguments)?,
                    };
                    parts.push(json!({"functionCall": {"name": call.name, "args": args}}));
                }
                ("model", parts)
            }
            "tool" => ("user", vec![function_response(message, &names)?]),
            other => return Err(invalid(format!("unknown message role {other:?}"))),
        };
        if parts.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last, existing)) if *last == role => existing.extend(parts),
            _ => turns.push((role, parts)),
        }
    }
    let contents = turns
        .into_iter()
        .map(|(role, parts)| json!({"role": role, "parts": parts}))
        .collect();
    Ok((system, contents))
}

fn function_response(
    message: &ChatMessage,
    names: &HashMap<&str, &str>,
) -> Result<Value, AdapterError> {
    let id = message.tool_call_id.as_deref().unwrap_or_default();
    let name = names
        .get(id)
        .copied()
        .or(message.name.as_deref())
        .ok_or_else(|| invalid("a tool message answers no earlier tool call"))?;
    // `response` must be an object: JSON objects go as they are, anything
    // else is wrapped.
    let text = message_text(message);
    let response = match serde_json::from_str::<Value>(&text) {
        Ok(object @ Value::Object(_)) => object,
        Ok(other) => json!({"result": other}),
        Err(_) => json!({"result": text}),
    };
    Ok(json!({"functionResponse": {"name": name, "response": response}}))
}

fn parts(message: &ChatMessage) -> Result<Vec<Value>, AdapterError> {
    if message.parts.is_empty() {
        return Ok(match message.text.as_deref() {
            Some(text) if !text.is_empty() => vec![json!({"text": text})],
            _ => Vec::new(),
        });
    }
    message
        .parts
        .iter()
        .filter_map(|p| part(p).transpose())
        .collect()
}

fn part(part: &ContentPart) -> Result<Option<Value>, AdapterError> {
    Ok(Some(match &part.part {
        Some(content_part::Part::Text(text)) if text.is_empty() => return Ok(None),
        Some(content_part::Part::Text(text)) => json!({"text": text}),
        Some(content_part::Part::ImageUrl(url)) => media(&url.url)?,
        Some(content_part::Part::OtherJson(other)) => other_part(parse("content part", other)?)?,
        None => return Err(invalid("content part without content")),
    }))
}

fn media(url: &str) -> Result<Value, AdapterError> {
    Ok(match image(url)? {
        Image::Inline { media_type, data } => {
            json!({"inlineData": {"mimeType": media_type, "data": data}})
        }
        Image::Url(url) => {
            json!({"fileData": {"mimeType": mime_from_extension(&url), "fileUri": url}})
        }
    })
}

/// `fileData` needs a MIME type the URL itself does not carry.
fn mime_from_extension(url: &str) -> &'static str {
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .to_ascii_lowercase();
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("png") => "image/png",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("heic") => "image/heic",
        Some("pdf") => "application/pdf",
        _ => "image/jpeg",
    }
}

/// `file` and `input_audio` parts as inline data; anything else is taken to
/// be a native Gemini part already.
fn other_part(part: Value) -> Result<Value, AdapterError> {
    let field = |outer: &str, inner: &str| {
        part.get(outer)
            .and_then(|o| o.get(inner))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    match part.get("type").and_then(Value::as_str) {
        Some("file") => match field("file", "file_data") {
            Some(data) => media(&data),
            None => Err(invalid("file parts need file_data")),
        },
        Some("input_audio") => {
            let data =
                field("input_audio", "data").ok_or_else(|| invalid("input_audio needs data"))?;
            let format = field("input_audio", "format").unwrap_or_else(|| "wav".to_owned());
            Ok(json!({"inlineData": {"mimeType": format!("audio/{format}"), "data": data}}))
        }
        _ if part.is_object() => Ok(part),
        _ => Err(invalid("content part must be a JSON object")),
    }
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
