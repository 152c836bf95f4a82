//! Gemini request translation, table-driven.

use serde_json::{Value, json};
use switchyard_proto::common::v1::{ImageUrl, Tool, ToolCall};

use super::*;

fn text(role: &str, text: &str) -> ChatMessage {
    ChatMessage {
        role: role.into(),
        text: Some(text.into()),
        ..Default::default()
    }
}

fn image_part(url: &str) -> ContentPart {
    ContentPart {
        part: Some(content_part::Part::ImageUrl(ImageUrl {
            url: url.into(),
            detail: None,
        })),
        cache_control_json: None,
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
        description: Some("Weather".into()),
        parameters_json: Some(
            r#"{"$schema":"x","type":"object","additionalProperties":false,"properties":{"city":{"type":"string"}}}"#.into(),
        ),
        strict: Some(true),
    }
}

#[test]
fn conversation_translates() {
    let calls = vec![
        ToolCall {
            id: "call_a".into(),
            r#type: "function".into(),
            name: "get_weather".into(),
            arguments: r#"{"city":"Paris"}"#.into(),
        },
        ToolCall {
            id: "call_b".into(),
            r#type: "function".into(),
            name: "get_time".into(),
            arguments: String::new(),
        },
    ];
    let request = ChatRequest {
        messages: vec![
            text("system", "Be brief."),
            text("developer", "Metric units."),
            ChatMessage {
                role: "user".into(),
                parts: vec![
                    ContentPart {
                        part: Some(content_part::Part::Text("What is this?".into())),
                        cache_control_json: Some(r#"{"type":"ephemeral"}"#.into()),
                    },
                    image_part("data:image/webp;base64,UklGR"),
                    image_part("https://example.com/a/cat.PNG?size=2"),
                ],
                ..Default::default()
            },
            ChatMessage {
                role: "assistant".into(),
                reasoning: Some("not sent back".into()),
                tool_calls: calls,
                ..Default::default()
            },
            tool_message("call_a", r#"{"temp":18}"#),
            tool_message("call_b", "noon"),
            tool_message("call_a", "[1,2]"),
            text("user", "Thanks"),
        ],
        ..Default::default()
    };
    let body = build_body(&request).unwrap();
    assert_eq!(
        body["systemInstruction"],
        json!({"parts": [{"text": "Be brief."}, {"text": "Metric units."}]})
    );
    assert_eq!(
        body["contents"],
        json!([
            {"role": "user", "parts": [
                {"text": "What is this?"},
                {"inlineData": {"mimeType": "image/webp", "data": "UklGR"}},
                {"fileData": {"mimeType": "image/png", "fileUri": "https://example.com/a/cat.PNG?size=2"}},
            ]},
            {"role": "model", "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                {"functionCall": {"name": "get_time", "args": {}}},
            ]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"temp": 18}}},
                {"functionResponse": {"name": "get_time", "response": {"result": "noon"}}},
                {"functionResponse": {"name": "get_weather", "response": {"result": [1, 2]}}},
                {"text": "Thanks"},
            ]},
        ])
    );
    assert!(body.get("generationConfig").is_none(), "{body}");
}

#[test]
fn parameters_translate() {
    let user = || vec![text("user", "hi")];
    // (request, expected fields; Null = absent)
    let cases: Vec<(ChatRequest, Vec<(&str, Value)>)> = vec![
        (
            ChatRequest {
                messages: user(),
                max_tokens: Some(100),
                temperature: Some(0.3),
                top_p: Some(0.9),
                top_k: Some(20),
                seed: Some(7),
                stop: vec!["END".into()],
                response_format_json: Some(
                    r#"{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object","additionalProperties":false,"properties":{"n":{"type":"integer"}}}}}"#.into(),
                ),
                passthrough_json: Some(r#"{"safetySettings":[],"contents":[]}"#.into()),
                ..Default::default()
            },
            vec![
                (
                    "generationConfig",
                    json!({"temperature": 0.3, "topP": 0.9, "topK": 20, "maxOutputTokens": 100,
                        "stopSequences": ["END"], "seed": 7, "responseMimeType": "application/json",
                        "responseSchema": {"type": "object", "properties": {"n": {"type": "integer"}}}}),
                ),
                ("safetySettings", json!([])),
                ("tools", Value::Null),
            ],
        ),
        (
            ChatRequest {
                messages: user(),
                tools: vec![weather_tool()],
                tool_choice_json: Some(r#""required""#.into()),
                ..Default::default()
            },
            vec![
                (
                    "tools",
                    json!([{"functionDeclarations": [{"name": "get_weather", "description": "Weather",
                        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]}]),
                ),
                ("toolConfig", json!({"functionCallingConfig": {"mode": "ANY"}})),
            ],
        ),
        (
            ChatRequest {
                messages: user(),
                tools: vec![weather_tool()],
                tool_choice_json: Some(r#"{"type":"function","function":{"name":"get_weather"}}"#.into()),
                ..Default::default()
            },
            vec![(
                "toolConfig",
                json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}),
            )],
        ),
        (
            ChatRequest {
                messages: user(),
                tools: vec![weather_tool()],
                tool_choice_json: Some(r#""none""#.into()),
                ..Default::default()
            },
            vec![("toolConfig", json!({"functionCallingConfig": {"mode": "NONE"}}))],
        ),
        (
            ChatRequest {
                messages: user(),
                response_format_json: Some(r#"{"type":"json_object"}"#.into()),
                ..Default::default()
            },
            vec![("generationConfig", json!({"responseMimeType": "application/json"}))],
        ),
    ];
    for (request, expected) in cases {
        let body = build_body(&request).unwrap();
        for (key, value) in expected {
            assert_eq!(
                body.get(key).cloned().unwrap_or(Value::Null),
                value,
                "{key} in {body}"
            );
        }
    }
}

#[test]
fn reasoning_becomes_a_thinking_config() {
    let cases: &[(Option<u32>, &str, Value)] = &[
        (
            None,
            r#"{"max_tokens":2000}"#,
            json!({"thinkingBudget": 2000, "includeThoughts": true}),
        ),
        (
            Some(1000),
            r#"{"effort":"high"}"#,
            json!({"thinkingBudget": 800, "includeThoughts": true}),
        ),
        (
            None,
            r#"{"effort":"low"}"#,
            json!({"thinkingBudget": 4915, "includeThoughts": true}),
        ),
        (None, r#"{"effort":"none"}"#, json!({"thinkingBudget": 0})),
        (
            None,
            r#"{"max_tokens":512,"exclude":true}"#,
            json!({"thinkingBudget": 512, "includeThoughts": false}),
        ),
        (
            None,
            r#"{"exclude":true}"#,
            json!({"includeThoughts": false}),
        ),
    ];
    for (max_tokens, reasoning, expected) in cases {
        let request = ChatRequest {
            messages: vec![text("user", "hi")],
            max_tokens: *max_tokens,
            reasoning_json: Some((*reasoning).into()),
            ..Default::default()
        };
        let body = build_body(&request).unwrap();
        assert_eq!(
            body["generationConfig"]["thinkingConfig"], *expected,
            "{reasoning}"
        );
    }
}

#[test]
fn invalid_input_is_rejected() {
    let orphan = ChatRequest {
        messages: vec![tool_message("call_nobody_made", "42")],
        ..Default::default()
    };
    assert!(matches!(
        build_body(&orphan),
        Err(AdapterError::InvalidRequest(_))
    ));
    let bad_image = ChatRequest {
        messages: vec![ChatMessage {
            role: "user".into(),
            parts: vec![image_part("data:image/png,notbase64")],
            ..Default::default()
        }],
        ..Default::default()
    };
    assert!(build_body(&bad_image).is_err());
}
