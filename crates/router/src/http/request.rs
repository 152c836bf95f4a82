//! Parsing the chat completions body, once, into the normalized request.
//! Unknown fields are ignored (not rejected), aliases are folded together.

use serde::Deserialize;
use serde_json::Value;
use switchyard_proto::common::v1 as pb;

use crate::error::ApiError;
use crate::routing::prefs::{self, Partition, ProviderPrefs};

#[derive(Debug, Deserialize)]
pub struct ChatBody {
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub models: Option<Vec<String>>,
    #[serde(default)]
    messages: Option<Vec<MessageIn>>,
    #[serde(default)]
    pub stream: Option<bool>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<u32>,
    frequency_penalty: Option<f64>,
    presence_penalty: Option<f64>,
    repetition_penalty: Option<f64>,
    min_p: Option<f64>,
    top_a: Option<f64>,
    seed: Option<i64>,
    stop: Option<StopIn>,
    tools: Option<Vec<ToolIn>>,
    tool_choice: Option<Value>,
    parallel_tool_calls: Option<bool>,
    response_format: Option<Value>,
    logprobs: Option<bool>,
    top_logprobs: Option<u32>,
    user: Option<String>,
    reasoning: Option<Value>,
    reasoning_effort: Option<String>,
    logit_bias: Option<Value>,
    #[serde(default)]
    pub session_id: Option<String>,
    prompt_cache_key: Option<String>,
    provider: Option<Value>,
    /// Deprecated alias of `provider.sort.partition` (fallback -> model,
    /// sort -> none).
    route: Option<String>,
    /// Deprecated inverse of `reasoning.exclude`.
    include_reasoning: Option<bool>,
    metadata: Option<Value>,
    // Forwarded to providers that understand them (OpenAI-style fields and
    // provider-specific extras such as Mistral's `safe_prompt`).
    verbosity: Option<Value>,
    prediction: Option<Value>,
    modalities: Option<Value>,
    service_tier: Option<Value>,
    safe_prompt: Option<Value>,
    raw_mode: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum StopIn {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
struct MessageIn {
    role: String,
    #[serde(default)]
    content: Option<ContentIn>,
    name: Option<String>,
    tool_calls: Option<Vec<ToolCallIn>>,
    tool_call_id: Option<String>,
    reasoning: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ContentIn {
    Text(String),
    Parts(Vec<Value>),
}

#[derive(Debug, Deserialize)]
struct ToolCallIn {
    #[serde(default)]
    id: String,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    function: FunctionCallIn,
}

#[derive(Debug, Deserialize)]
struct FunctionCallIn {
    name: String,
    #[serde(default)]
    arguments: String,
}

#[derive(Debug, Deserialize)]
struct ToolIn {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    function: Option<FunctionIn>,
}

#[derive(Debug, Deserialize)]
struct FunctionIn {
    name: String,
    description: Option<String>,
    parameters: Option<Value>,
    strict: Option<bool>,
}

/// A validated chat request: where to send it and what to send.
#[derive(Debug)]
pub struct ParsedChat {
    /// `model` first, then `models[]`, duplicates removed.
    pub models: Vec<String>,
    pub stream: bool,
    pub session_id: Option<String>,
    pub prompt_cache_key: Option<String>,
    pub prefs: ProviderPrefs,
    pub request: pb::ChatRequest,
}

pub fn parse_chat(body: &[u8]) -> Result<ParsedChat, ApiError> {
    let body: ChatBody = serde_json::from_slice(body).map_err(json_error)?;
    body.validate()
}

/// Like [`parse_chat`], for a body another API already rewrote into the
/// chat shape.
pub fn parse_chat_value(body: Value) -> Result<ParsedChat, ApiError> {
    let body: ChatBody = serde_json::from_value(body).map_err(json_error)?;
    body.validate()
}

/// A JSON body as a value, with the same error messages.
pub fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(json_error)
}

fn json_error(e: serde_json::Error) -> ApiError {
    ApiError::BadRequest(if e.is_syntax() || e.is_eof() {
        format!("Malformed JSON body: {e}")
    } else {
        format!("Invalid request body: {e}")
    })
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::BadRequest(msg.into())
}

fn range(name: &str, value: Option<f64>, lo: f64, hi: f64) -> Result<(), ApiError> {
    match value {
        Some(v) if !(lo..=hi).contains(&v) || v.is_nan() => {
            Err(bad(format!("{name} must be between {lo} and {hi}")))
        }
        _ => Ok(()),
    }
}

impl ChatBody {
    fn validate(self) -> Result<ParsedChat, ApiError> {
        let mut models = Vec::new();
        for m in self.model.iter().chain(self.models.iter().flatten()) {
            let m = m.trim();
            if !m.is_empty() && !models.iter().any(|x: &String| x == m) {
                models.push(m.to_owned());
            }
        }
        if models.is_empty() {
            return Err(bad("model is required"));
        }
        let messages = self.messages.ok_or_else(|| bad("messages is required"))?;
        if messages.is_empty() {
            return Err(bad("messages must contain at least one message"));
        }
        range("temperature", self.temperature, 0.0, 2.0)?;
        range("top_p", self.top_p, 0.0, 1.0)?;
        range("frequency_penalty", self.frequency_penalty, -2.0, 2.0)?;
        range("presence_penalty", self.presence_penalty, -2.0, 2.0)?;
        range("repetition_penalty", self.repetition_penalty, 0.0, 2.0)?;
        range("min_p", self.min_p, 0.0, 1.0)?;
        range("top_a", self.top_a, 0.0, 1.0)?;
        if self.top_logprobs.is_some_and(|n| n > 20) {
            return Err(bad("top_logprobs must be between 0 and 20"));
        }
        let max_tokens = self.max_completion_tokens.or(self.max_tokens);
        if max_tokens == Some(0) {
            return Err(bad("max_tokens must be at least 1"));
        }
        let stop = match self.stop {
            None => Vec::new(),
            Some(StopIn::One(s)) => vec![s],
            Some(StopIn::Many(v)) if v.len() > 4 => {
                return Err(bad("stop accepts at most 4 sequences"));
            }
            Some(StopIn::Many(v)) => v,
        };
        let mut reasoning = merge_reasoning(self.reasoning, self.reasoning_effort)?;
        if self.include_reasoning == Some(false) {
            let r = reasoning.get_or_insert_with(|| serde_json::json!({}));
            if let Some(obj) = r.as_object_mut() {
                obj.entry("exclude").or_insert(Value::Bool(true));
            }
        }
        if let Some(metadata) = &self.metadata {
            validate_metadata(metadata)?;
        }
        if self
            .session_id
            .as_ref()
            .is_some_and(|s| s.chars().count() > 256)
        {
            return Err(bad("session_id must be at most 256 characters"));
        }
        let mut passthrough = serde_json::Map::new();
        for (key, value) in [
            ("verbosity", self.verbosity),
            ("prediction", self.prediction),
            ("modalities", self.modalities),
            ("service_tier", self.service_tier),
            ("safe_prompt", self.safe_prompt),
            ("raw_mode", self.raw_mode),
        ] {
            if let Some(v) = value.filter(|v| !v.is_null()) {
                passthrough.insert(key.to_owned(), v);
            }
        }
        let mut prefs = prefs::parse(self.provider.as_ref())?;
        if let (Some(route), Some(sort)) = (self.route.as_deref(), prefs.sort.as_mut()) {
            sort.partition = if route == "sort" {
                Partition::None
            } else {
                Partition::Model
            };
        }
        let messages = messages
            .into_iter()
            .enumerate()
            .map(|(i, m)| m.into_proto(i))
            .collect::<Result<Vec<_>, _>>()?;
        let tools = self
            .tools
            .unwrap_or_default()
            .into_iter()
            .map(ToolIn::into_proto)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ParsedChat {
            models,
            stream: self.stream.unwrap_or(false),
            session_id: self.session_id,
            prompt_cache_key: self.prompt_cache_key,
            prefs,
            request: pb::ChatRequest {
                messages,
                max_tokens,
                temperature: self.temperature,
                top_p: self.top_p,
                top_k: self.top_k,
                frequency_penalty: self.frequency_penalty,
                presence_penalty: self.presence_penalty,
                repetition_penalty: self.repetition_penalty,
                min_p: self.min_p,
                top_a: self.top_a,
                seed: self.seed,
                stop,
                tools,
                tool_choice_json: self.tool_choice.map(|v| v.to_string()),
                parallel_tool_calls: self.parallel_tool_calls,
                response_format_json: self.response_format.map(|v| v.to_string()),
                logprobs: self.logprobs,
                top_logprobs: self.top_logprobs,
                user: self.user,
                reasoning_json: reasoning.map(|v| v.to_string()),
                logit_bias_json: self.logit_bias.map(|v| v.to_string()),
                passthrough_json: (!passthrough.is_empty())
                    .then(|| Value::Object(passthrough).to_string()),
            },
        })
    }
}

/// `metadata`: at most 16 string pairs, keys ≤ 64 and values ≤ 512 chars.
fn validate_metadata(metadata: &Value) -> Result<(), ApiError> {
    let map = metadata
        .as_object()
        .ok_or_else(|| bad("metadata must be an object of strings"))?;
    if map.len() > 16 {
        return Err(bad("metadata accepts at most 16 pairs"));
    }
    for (k, v) in map {
        let v = v
            .as_str()
            .ok_or_else(|| bad(format!("metadata.{k} must be a string")))?;
        if k.chars().count() > 64 || v.chars().count() > 512 {
            return Err(bad(
                "metadata keys are at most 64 and values at most 512 characters",
            ));
        }
    }
    Ok(())
}

/// Folds `reasoning_effort` into `reasoning.effort`; both given and
/// different is an error, as OpenRouter documents.
fn merge_reasoning(
    reasoning: Option<Value>,
    effort: Option<String>,
) -> Result<Option<Value>, ApiError> {
    let Some(effort) = effort else {
        return Ok(reasoning);
    };
    let mut reasoning = reasoning.unwrap_or_else(|| serde_json::json!({}));
    let obj = reasoning
        .as_object_mut()
        .ok_or_else(|| bad("reasoning must be an object"))?;
    match obj.get("effort").and_then(Value::as_str) {
        Some(existing) if existing != effort => {
            return Err(bad("reasoning_effort and reasoning.effort disagree"));
        }
        _ => {
            obj.insert("effort".into(), Value::String(effort));
        }
    }
    Ok(Some(reasoning))
}

impl MessageIn {
    fn into_proto(self, index: usize) -> Result<pb::ChatMessage, ApiError> {
        match self.role.as_str() {
            "system" | "developer" | "user" | "assistant" | "tool" => {}
            other => {
                return Err(bad(format!(
                    "messages[{index}].role {other:?} is not a valid role"
                )));
            }
        }
        if self.role == "tool" && self.tool_call_id.is_none() {
            return Err(bad(format!(
                "messages[{index}] (role tool) requires tool_call_id"
            )));
        }
        let (text, parts) = match self.content {
            None => (None, Vec::new()),
            Some(ContentIn::Text(t)) => (Some(t), Vec::new()),
            Some(ContentIn::Parts(parts)) => (
                None,
                parts
                    .into_iter()
                    .map(|p| content_part(p, index))
                    .collect::<Result<_, _>>()?,
            ),
        };
        if text.is_none() && parts.is_empty() && self.role != "assistant" {
            return Err(bad(format!("messages[{index}].content is required")));
        }
        Ok(pb::ChatMessage {
            role: self.role,
            text,
            parts,
            name: self.name,
            tool_calls: self
                .tool_calls
                .unwrap_or_default()
                .into_iter()
                .map(|c| pb::ToolCall {
                    id: c.id,
                    r#type: c.kind.unwrap_or_else(|| "function".into()),
                    name: c.function.name,
                    arguments: c.function.arguments,
                })
                .collect(),
            tool_call_id: self.tool_call_id,
            reasoning: self.reasoning,
        })
    }
}

fn content_part(part: Value, index: usize) -> Result<pb::ContentPart, ApiError> {
    use pb::content_part::Part;
    let cache_control_json = part.get("cache_control").map(Value::to_string);
    let kind = part.get("type").and_then(Value::as_str).unwrap_or_default();
    let part = match kind {
        "text" => Part::Text(
            part.get("text")
                .and_then(Value::as_str)
                .ok_or_else(|| bad(format!("messages[{index}]: text part without text")))?
                .to_owned(),
        ),
        "image_url" => {
            let image = part.get("image_url");
            let url = image
                .and_then(|i| i.get("url").or(Some(i)))
                .and_then(Value::as_str)
                .ok_or_else(|| bad(format!("messages[{index}]: image_url part without url")))?;
            Part::ImageUrl(pb::ImageUrl {
                url: url.to_owned(),
                detail: image
                    .and_then(|i| i.get("detail"))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            })
        }
        "" => return Err(bad(format!("messages[{index}]: content part without type"))),
        _ => Part::OtherJson(part.to_string()),
    };
    Ok(pb::ContentPart {
        part: Some(part),
        cache_control_json,
    })
}

impl ToolIn {
    fn into_proto(self) -> Result<pb::Tool, ApiError> {
        let function = self
            .function
            .ok_or_else(|| bad("tools[].function is required"))?;
        let valid_name = !function.name.is_empty()
            && function.name.len() <= 64
            && function
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid_name {
            return Err(bad(format!(
                "tool name {:?} must be 1-64 characters of a-z, A-Z, 0-9, _ or -",
                function.name
            )));
        }
        if let Some(parameters) = &function.parameters
            && !parameters.is_object()
        {
            return Err(bad(format!(
                "tool {:?}: parameters must be a JSON Schema object",
                function.name
            )));
        }
        Ok(pb::Tool {
            r#type: self.kind,
            name: function.name,
            description: function.description,
            parameters_json: function.parameters.map(|v| v.to_string()),
            strict: function.strict,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<ParsedChat, ApiError> {
        parse_chat(json.as_bytes())
    }

    #[test]
    fn minimal_request() {
        let p = parse(r#"{"model":"openai/gpt-4","messages":[{"role":"user","content":"hi"}]}"#)
            .unwrap();
        assert_eq!(p.models, ["openai/gpt-4"]);
        assert!(!p.stream);
        assert_eq!(p.request.messages[0].text.as_deref(), Some("hi"));
    }

    #[test]
    fn aliases_and_unknown_fields() {
        let p = parse(
            r#"{"model":"a/b","models":["a/b","c/d"],"messages":[{"role":"user","content":"x"}],
                "max_tokens":7,"reasoning_effort":"low","transforms":["middle-out"],"stream":true}"#,
        )
        .unwrap();
        assert_eq!(p.models, ["a/b", "c/d"]);
        assert_eq!(p.request.max_tokens, Some(7));
        assert_eq!(
            p.request.reasoning_json.as_deref(),
            Some(r#"{"effort":"low"}"#)
        );
        assert!(p.stream);
    }

    #[test]
    fn max_completion_tokens_wins_over_max_tokens() {
        let p = parse(r#"{"model":"a/b","messages":[{"role":"user","content":"x"}],"max_tokens":7,"max_completion_tokens":9}"#).unwrap();
        assert_eq!(p.request.max_tokens, Some(9));
    }

    #[test]
    fn content_parts_tools_and_tool_calls() {
        let p = parse(
            r#"{"model":"a/b","messages":[
                {"role":"user","content":[{"type":"text","text":"look"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA","detail":"low"}},{"type":"file","file":{"filename":"a.pdf"}}]},
                {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{}"}}]},
                {"role":"tool","tool_call_id":"call_1","content":"42"}],
               "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],
               "tool_choice":"auto","stop":"END"}"#,
        )
        .unwrap();
        assert_eq!(p.request.messages[0].parts.len(), 3);
        assert_eq!(p.request.messages[1].tool_calls[0].name, "f");
        assert_eq!(
            p.request.tools[0].parameters_json.as_deref(),
            Some(r#"{"type":"object"}"#)
        );
        assert_eq!(p.request.tool_choice_json.as_deref(), Some(r#""auto""#));
        assert_eq!(p.request.stop, ["END"]);
    }

    #[test]
    fn rejections() {
        for (body, needle) in [
            ("{", "Malformed JSON"),
            (r#"{"model":"a/b"}"#, "messages is required"),
            (r#"{"model":"a/b","messages":[]}"#, "at least one"),
            (
                r#"{"messages":[{"role":"user","content":"x"}]}"#,
                "model is required",
            ),
            (
                r#"{"model":"a/b","messages":[{"role":"wizard","content":"x"}]}"#,
                "not a valid role",
            ),
            (
                r#"{"model":"a/b","messages":[{"role":"user","content":"x"}],"temperature":3}"#,
                "temperature",
            ),
            (r#"{"model":"a/b","messages":"hi"}"#, "Invalid request body"),
            (
                r#"{"model":"a/b","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","parameters":"object"}}]}"#,
                "JSON Schema",
            ),
            (
                r#"{"model":"a/b","messages":[{"role":"user","content":"x"}],"metadata":{"a":1}}"#,
                "metadata.a",
            ),
            (
                r#"{"model":"a/b","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"bad name!"}}]}"#,
                "tool name",
            ),
            (
                r#"{"model":"a/b","messages":[{"role":"user","content":"x"}],"stop":["a","b","c","d","e"]}"#,
                "at most 4",
            ),
            (
                r#"{"model":"a/b","messages":[{"role":"tool","content":"x"}]}"#,
                "tool_call_id",
            ),
            (
                r#"{"model":"a/b","messages":[{"role":"user","content":"x"}],"reasoning_effort":"low","reasoning":{"effort":"high"}}"#,
                "disagree",
            ),
        ] {
            let err = parse(body).unwrap_err();
            assert!(matches!(err, ApiError::BadRequest(_)), "{body}");
            assert!(err.to_string().contains(needle), "{body}: {err}");
        }
    }
}
