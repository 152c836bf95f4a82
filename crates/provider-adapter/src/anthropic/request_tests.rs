//! Anthropic request translation, table-driven: each case a `ChatRequest`
//! and the body fields it must produce.

use serde_json::{Value, json};
use switchyard_proto::common::v1::{
    ChatMessage, ChatRequest, ContentPart, ImageUrl, Tool, ToolCall, content_part,
};

use super::*;

fn text(role: &str, text: &str) -> ChatMessage {
    ChatMessage {
        role: role.into(),
        text: Some(text.into()),
        ..Default::default()
    }
}

fn part(part: content_part::Part, cache: Option<&str>) -> ContentPart {
    ContentPart {
        part: Some(part),
        cache_control_json: cache.map(str::to_owned),
    }
}

fn call(id: &str, name: &str, arguments: &str) -> ToolCall {
    ToolCall {
        id: id.into(),
        r#type: "function".into(),
        name: name.into(),
        arguments: arguments.into(),
    }
}

fn tool_message(id: &str, text: &str) -> ChatMessage {
    ChatMessage {
        role: "tool".into(),
        text: Some(text.into()),
        tool_call_id: Some(id.into()),
        ..Default::default()
    }
}

fn weather_tool() -> Tool {
    Tool {
        r#type: "function".into(),
        name: "get_weather".into(),
        description: Some("Weather for a city".into()),
        parameters_json: Some(
            r#"{"type":"object","properties":{"city":{"type":"string"}}}"#.into(),
        ),
        strict: None,
    }
}

fn body(request: ChatRequest) -> Value {
    build_body(&request, "claude-x", false).unwrap()
}

#[test]
fn conversation_translates() {
    let request = ChatRequest {
        messages: vec![
            ChatMessage {
                role: "system".into(),
                parts: vec![part(
                    content_part::Part::Text("Be brief.".into()),
                    Some(r#"{"type":"ephemeral"}"#),
                )],
                ..Default::default()
            },
            text("developer", "Use metric units."),
            ChatMessage {
                role: "user".into(),
                parts: vec![
                    part(content_part::Part::Text("What is this?".into()), None),
                    part(
                        content_part::Part::ImageUrl(ImageUrl {
                            url: "data:image/png;base64,iVBORw0KGgo=".into(),
                            detail: None,
                        }),
                        None,
                    ),
                    part(
                        content_part::Part::ImageUrl(ImageUrl {
                            url: "https://example.com/cat.jpg".into(),
                            detail: Some("high".into()),
                        }),
                        None,
                    ),
                ],
                ..Default::default()
            },
            text("user", "And the weather?"),
            ChatMessage {
                role: "assistant".into(),
                text: Some("Checking.".into()),
                reasoning: Some("unsigned thoughts are not sent back".into()),
                tool_calls: vec![
                    call("toolu_1", "get_weather", r#"{"city":"Paris"}"#),
                    call("toolu_2", "get_weather", ""),
                ],
                ..Default::default()
            },
            tool_message("toolu_1", "18C"),
            tool_message("toolu_2", "{\"temp\":3}"),
            text("user", "Thanks"),
        ],
        ..Default::default()
    };
    let body = body(request);
    assert_eq!(
        body["system"],
        json!([
            {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Use metric units."},
        ])
    );
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                {"type": "text", "text": "And the weather?"},
            ]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "{\"temp\":3}"},
                {"type": "text", "text": "Thanks"},
            ]},
        ])
    );
    assert_eq!(body["max_tokens"], json!(DEFAULT_MAX_TOKENS));
    assert_eq!(body["stream"], json!(false));
}

#[test]
fn parameters_translate() {
    let user = || vec![text("user", "hi")];
    // (request, expected fields; Null = must be absent)
    let cases: Vec<(ChatRequest, Vec<(&str, Value)>)> = vec![
        (
            ChatRequest {
                messages: user(),
                max_tokens: Some(300),
                temperature: Some(1.7),
                top_p: Some(0.9),
                top_k: Some(40),
                stop: vec!["END".into()],
                user: Some("u-1".into()),
                seed: Some(3),
                passthrough_json: Some(r#"{"service_tier":"auto","max_tokens":1}"#.into()),
                ..Default::default()
            },
            vec![
                ("max_tokens", json!(300)),
                ("temperature", json!(1.0)),
                ("top_p", json!(0.9)),
                ("top_k", json!(40)),
                ("stop_sequences", json!(["END"])),
                ("metadata", json!({"user_id": "u-1"})),
                ("seed", Value::Null),
                ("service_tier", json!("auto")),
            ],
        ),
        (
            ChatRequest {
                messages: user(),
                tools: vec![weather_tool()],
                tool_choice_json: Some(r#""required""#.into()),
                parallel_tool_calls: Some(false),
                ..Default::default()
            },
            vec![
                (
                    "tools",
                    json!([{"name": "get_weather", "description": "Weather for a city",
                        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]),
                ),
                (
                    "tool_choice",
                    json!({"type": "any", "disable_parallel_tool_use": true}),
                ),
            ],
        ),
        (
            ChatRequest {
                messages: user(),
                tools: vec![weather_tool()],
                tool_choice_json: Some(
                    r#"{"type":"function","function":{"name":"get_weather"}}"#.into(),
                ),
                ..Default::default()
            },
            vec![(
                "tool_choice",
                json!({"type": "tool", "name": "get_weather"}),
            )],
        ),
        (
            ChatRequest {
                messages: user(),
                tools: vec![weather_tool()],
                tool_choice_json: Some(r#""none""#.into()),
                ..Default::default()
            },
            vec![("tool_choice", json!({"type": "none"}))],
        ),
        (
            ChatRequest {
                messages: user(),
                tool_choice_json: Some(r#""auto""#.into()),
                ..Default::default()
            },
            vec![("tool_choice", Value::Null), ("tools", Value::Null)],
        ),
    ];
    for (request, expected) in cases {
        let body = body(request);
        for (key, value) in expected {
            assert_eq!(
                body.get(key).cloned().unwrap_or(Value::Null),
                value,
                "{key} in {body}"
            );
        }
    }
}

/// `(max_tokens, reasoning, tool_choice, expected max_tokens, expected budget)`.
type BudgetCase = (
    Option<u32>,
    &'static str,
    Option<&'static str>,
    u32,
    Option<u32>,
);

#[test]
fn reasoning_becomes_a_thinking_budget() {
    let cases: &[BudgetCase] = &[
        (None, r#"{"max_tokens":2000}"#, None, 4096, Some(2000)),
        (
            None,
            r#"{"max_tokens":8000}"#,
            None,
            8000 + 4096,
            Some(8000),
        ),
        (
            Some(10_000),
            r#"{"effort":"high"}"#,
            None,
            10_000,
            Some(8000),
        ),
        (None, r#"{"effort":"medium"}"#, None, 4096, Some(2048)),
        (None, r#"{"effort":"minimal"}"#, None, 4096, Some(1024)),
        (Some(3000), r#"{"max_tokens":5000}"#, None, 3000, Some(2999)),
        (Some(800), r#"{"effort":"high"}"#, None, 800, None),
        (None, r#"{"effort":"none"}"#, None, 4096, None),
        (None, r#"{"exclude":true}"#, None, 4096, None),
        (
            None,
            r#"{"effort":"high"}"#,
            Some(r#""required""#),
            4096,
            None,
        ),
    ];
    for (max_tokens, reasoning, choice, expected_max, expected_budget) in cases {
        let request = ChatRequest {
            messages: vec![text("user", "hi")],
            max_tokens: *max_tokens,
            temperature: Some(0.2),
            reasoning_json: Some((*reasoning).into()),
            tools: choice.map(|_| vec![weather_tool()]).unwrap_or_default(),
            tool_choice_json: choice.map(str::to_owned),
            ..Default::default()
        };
        let body = body(request);
        assert_eq!(body["max_tokens"], json!(expected_max), "{reasoning}");
        match expected_budget {
            Some(budget) => {
                assert_eq!(
                    body["thinking"],
                    json!({"type": "enabled", "budget_tokens": budget}),
                    "{reasoning}"
                );
                assert!(
                    body.get("temperature").is_none(),
                    "thinking drops temperature"
                );
            }
            None => {
                assert!(body.get("thinking").is_none(), "{reasoning}: {body}");
                assert_eq!(body["temperature"], json!(0.2));
            }
        }
    }
}

#[test]
fn invalid_input_is_rejected() {
    let cases = [
        ChatRequest {
            messages: vec![ChatMessage {
                role: "tool".into(),
                text: Some("x".into()),
                ..Default::default()
            }],
            ..Default::default()
        },
        ChatRequest {
            messages: vec![ChatMessage {
                role: "assistant".into(),
                tool_calls: vec![call("t", "f", "[1]")],
                ..Default::default()
            }],
            ..Default::default()
        },
        ChatRequest {
            messages: vec![ChatMessage {
                role: "user".into(),
                parts: vec![part(
                    content_part::Part::ImageUrl(ImageUrl {
                        url: "file:///etc/passwd".into(),
                        detail: None,
                    }),
                    None,
                )],
                ..Default::default()
            }],
            ..Default::default()
        },
        ChatRequest {
            messages: vec![text("narrator", "once upon a time")],
            ..Default::default()
        },
    ];
    for request in cases {
        assert!(
            matches!(
                build_body(&request, "m", true),
                Err(AdapterError::InvalidRequest(_))
            ),
            "{request:?}"
        );
    }
}
