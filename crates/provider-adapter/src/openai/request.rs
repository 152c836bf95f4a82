//! Normalized `ChatRequest` → OpenAI Chat Completions request body. JSON that
//! travels as text (schemas, tool_choice, passthrough) is parsed here, so a
//! malformed field is rejected before any upstream call.

use serde_json::{Map, Value, json};
use switchyard_proto::common::v1::{ChatMessage, ChatRequest, ContentPart, Tool, content_part};

use crate::errors::AdapterError;
use crate::translate::{invalid, merge_passthrough, parse, parse_opt};

/// Keys the adapter owns; passthrough can never override them.
const RESERVED: &[&str] = &["model", "messages", "stream", "stream_options"];

pub fn build_body(request: &ChatRequest, model: &str, stream: bool) -> Result<Value, AdapterError> {
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    let messages = request
        .messages
        .iter()
        .map(message)
        .collect::<Result<Vec<_>, _>>()?;
    body.insert("messages".into(), Value::Array(messages));
    body.insert("stream".into(), json!(stream));
    if stream {
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    let mut set = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            body.insert(key.to_owned(), value);
        }
    };
    set("max_tokens", request.max_tokens.map(Value::from));
    set("temperature", request.temperature.map(Value::from));
    set("top_p", request.top_p.map(Value::from));
    set("top_k", request.top_k.map(Value::from));
    set(
        "frequency_penalty",
        request.frequency_penalty.map(Value::from),
    );
    set(
        "presence_penalty",
        request.presence_penalty.map(Value::from),
    );
    set(
        "repetition_penalty",
        request.repetition_penalty.map(Value::from),
    );
    set("min_p", request.min_p.map(Value::from));
    set("top_a", request.top_a.map(Value::from));
    set("seed", request.seed.map(Value::from));
    set("logprobs", request.logprobs.map(Value::from));
    set("top_logprobs", request.top_logprobs.map(Value::from));
    set("user", request.user.clone().map(Value::from));
    set(
        "parallel_tool_calls",
        request.parallel_tool_calls.map(Value::from),
    );
    set(
        "stop",
        (!request.stop.is_empty()).then(|| json!(request.stop)),
    );
    if !request.tools.is_empty() {
        let tools = request
            .tools
            .iter()
            .map(tool)
            .collect::<Result<Vec<_>, _>>()?;
        set("tools", Some(Value::Array(tools)));
    }
    set(
        "tool_choice",
        parse_opt("tool_choice", &request.tool_choice_json)?,
    );
    set(
        "response_format",
        parse_opt("response_format", &request.response_format_json)?,
    );
    set(
        "logit_bias",
        parse_opt("logit_bias", &request.logit_bias_json)?,
    );
    // Chat Completions takes `reasoning_effort`, not OpenRouter's object.
    if let Some(reasoning) = parse_opt("reasoning", &request.reasoning_json)? {
        set(
            "reasoning_effort",
            reasoning.get("effort").filter(|e| e.is_string()).cloned(),
        );
    }
    merge_passthrough(&mut body, request, RESERVED)?;
    Ok(Value::Object(body))
}

fn message(m: &ChatMessage) -> Result<Value, AdapterError> {
    let mut out = Map::new();
    out.insert("role".into(), json!(m.role));
    let content = if !m.parts.is_empty() {
        Value::Array(m.parts.iter().map(part).collect::<Result<_, _>>()?)
    } else if let Some(text) = &m.text {
        json!(text)
    } else if !m.tool_calls.is_empty() {
        Value::Null
    } else {
        json!("")
    };
    out.insert("content".into(), content);
    if let Some(name) = &m.name {
        out.insert("name".into(), json!(name));
    }
    if let Some(id) = &m.tool_call_id {
        out.insert("tool_call_id".into(), json!(id));
    }
    if !m.tool_calls.is_empty() {
        let calls: Vec<Value> = m
            .tool_calls
            .iter()
            .map(|call| {
                let kind = if call.r#type.is_empty() {
                    "function"
                } else {
                    &call.r#type
                };
                json!({
                    "id": call.id,
                    "type": kind,
                    "function": {"name": call.name, "arguments": call.arguments},
                })
            })
            .collect();
        out.insert("tool_calls".into(), Value::Array(calls));
    }
    Ok(Value::Object(out))
}

fn part(p: &ContentPart) -> Result<Value, AdapterError> {
    let mut value = match &p.part {
        Some(content_part::Part::Text(text)) => json!({"type": "text", "text": text}),
        Some(content_part::Part::ImageUrl(image)) => {
            let mut url = json!({"url": image.url});
            if let Some(detail) = &image.detail {
                url["detail"] = json!(detail);
            }
            json!({"type": "image_url", "image_url": url})
        }
        Some(content_part::Part::OtherJson(text)) => parse("content part", text)?,
        None => return Err(invalid("content part without content")),
    };
    if let Some(cache_control) = &p.cache_control_json {
        let Value::Object(object) = &mut value else {
            return Err(invalid("content part must be a JSON object"));
        };
        object.insert(
            "cache_control".into(),
            parse("cache_control", cache_control)?,
        );
    }
    Ok(value)
}

fn tool(t: &Tool) -> Result<Value, AdapterError> {
    let mut function = Map::new();
    function.insert("name".into(), json!(t.name));
    if let Some(description) = &t.description {
        function.insert("description".into(), json!(description));
    }
    if let Some(parameters) = &t.parameters_json {
        function.insert("parameters".into(), parse("tool parameters", parameters)?);
    }
    if let Some(strict) = t.strict {
        function.insert("strict".into(), json!(strict));
    }
    let kind = if t.r#type.is_empty() {
        "function"
    } else {
        &t.r#type
    };
    Ok(json!({"type": kind, "function": function}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_proto::common::v1::{ImageUrl, ToolCall};

    fn user(text: &str) -> ChatMessage {
        ChatMessage {
            role: "user".into(),
            text: Some(text.into()),
            ..Default::default()
        }
    }

    #[test]
    fn full_request_translates() {
        let request = ChatRequest {
            messages: vec![
                ChatMessage {
                    role: "user".into(),
                    parts: vec![
                        ContentPart {
                            part: Some(content_part::Part::Text("look".into())),
                            cache_control_json: Some(r#"{"type":"ephemeral"}"#.into()),
                        },
                        ContentPart {
                            part: Some(content_part::Part::ImageUrl(ImageUrl {
                                url: "https://x/y.png".into(),
                                detail: Some("low".into()),
                            })),
                            cache_control_json: None,
                        },
                        ContentPart {
                            part: Some(content_part::Part::OtherJson(
                                r#"{"type":"input_audio","input_audio":{"data":"AA=="}}"#.into(),
                            )),
                            cache_control_json: None,
                        },
                    ],
                    ..Default::default()
                },
                ChatMessage {
                    role: "assistant".into(),
                    tool_calls: vec![ToolCall {
                        id: "call_1".into(),
                        r#type: "function".into(),
                        name: "f".into(),
                        arguments: "{}".into(),
                    }],
                    ..Default::default()
                },
                ChatMessage {
                    role: "tool".into(),
                    text: Some("42".into()),
                    tool_call_id: Some("call_1".into()),
                    ..Default::default()
                },
            ],
            max_tokens: Some(100),
            temperature: Some(0.5),
            seed: Some(7),
            stop: vec!["END".into()],
            tools: vec![Tool {
                r#type: "function".into(),
                name: "f".into(),
                description: Some("does f".into()),
                parameters_json: Some(r#"{"type":"object"}"#.into()),
                strict: Some(true),
            }],
            tool_choice_json: Some(r#""required""#.into()),
            response_format_json: Some(r#"{"type":"json_object"}"#.into()),
            reasoning_json: Some(r#"{"effort":"high"}"#.into()),
            user: Some("u1".into()),
            passthrough_json: Some(r#"{"safe_prompt":true,"model":"evil","seed":1}"#.into()),
            ..Default::default()
        };
        let body = build_body(&request, "gpt-x", true).unwrap();
        let expected = json!({
            "model": "gpt-x",
            "stream": true,
            "stream_options": {"include_usage": true},
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "look", "cache_control": {"type": "ephemeral"}},
                    {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}},
                    {"type": "input_audio", "input_audio": {"data": "AA=="}},
                ]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                ]},
                {"role": "tool", "content": "42", "tool_call_id": "call_1"},
            ],
            "max_tokens": 100,
            "temperature": 0.5,
            "seed": 7,
            "stop": ["END"],
            "tools": [{"type": "function", "function": {
                "name": "f", "description": "does f", "parameters": {"type": "object"}, "strict": true,
            }}],
            "tool_choice": "required",
            "response_format": {"type": "json_object"},
            "reasoning_effort": "high",
            "user": "u1",
            "safe_prompt": true,
        });
        assert_eq!(body, expected);
    }

    #[test]
    fn minimal_non_streaming_request() {
        let request = ChatRequest {
            messages: vec![user("hi")],
            ..Default::default()
        };
        let body = build_body(&request, "m", false).unwrap();
        assert_eq!(
            body,
            json!({"model": "m", "stream": false, "messages": [{"role": "user", "content": "hi"}]})
        );
    }

    #[test]
    fn malformed_json_fields_are_rejected() {
        let request = ChatRequest {
            messages: vec![user("hi")],
            tool_choice_json: Some("{nope".into()),
            ..Default::default()
        };
        assert!(matches!(
            build_body(&request, "m", false),
            Err(AdapterError::InvalidRequest(_))
        ));
        let request = ChatRequest {
            messages: vec![user("hi")],
            passthrough_json: Some("[1]".into()),
            ..Default::default()
        };
        assert!(build_body(&request, "m", false).is_err());
    }
}
