//! Request-translation pieces every wire format shares: JSON that travels as
//! text parsed (so a malformed field fails before any upstream call), tool
//! choice, the `reasoning` object, image URLs, passthrough merging and the
//! prompt-size estimate used when an upstream reports no usage.

use serde_json::{Map, Value};
use switchyard_proto::common::v1::{ChatMessage, ChatRequest, content_part};

use crate::errors::AdapterError;

pub fn invalid(message: impl Into<String>) -> AdapterError {
    AdapterError::InvalidRequest(message.into())
}

pub fn parse(field: &str, text: &str) -> Result<Value, AdapterError> {
    serde_json::from_str(text).map_err(|_| invalid(format!("{field} is not valid JSON")))
}

pub fn parse_opt(field: &str, text: &Option<String>) -> Result<Option<Value>, AdapterError> {
    text.as_deref().map(|t| parse(field, t)).transpose()
}

/// `"auto" | "none" | "required" | {"type":"function","function":{"name"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    Auto,
    None,
    Required,
    Function(String),
}

pub fn tool_choice(request: &ChatRequest) -> Result<Option<ToolChoice>, AdapterError> {
    let Some(value) = parse_opt("tool_choice", &request.tool_choice_json)? else {
        return Ok(None);
    };
    let choice = match &value {
        Value::String(mode) => match mode.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" | "any" => ToolChoice::Required,
            _ => return Err(invalid(format!("unknown tool_choice {mode:?}"))),
        },
        Value::Object(object) => {
            let name = object
                .get("function")
                .and_then(|f| f.get("name"))
                .or_else(|| object.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("tool_choice object needs function.name"))?;
            ToolChoice::Function(name.to_owned())
        }
        _ => return Err(invalid("tool_choice must be a string or an object")),
    };
    Ok(Some(choice))
}

/// How much thinking the `reasoning` object asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Thinking {
    /// Nothing said: the provider's default.
    Default,
    Off,
    /// An explicit token budget (`reasoning.max_tokens`).
    Budget(u32),
    /// A share of the output budget (`reasoning.effort`).
    Share(f64),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reasoning {
    pub thinking: Thinking,
    /// Reason, but keep the reasoning out of the response.
    pub exclude: bool,
}

/// The effort → budget table for budget-only providers (OpenRouter's
/// reasoning-tokens guide): a share of `max_tokens`.
fn effort_share(effort: &str) -> Option<Thinking> {
    Some(match effort {
        "max" | "xhigh" => Thinking::Share(0.95),
        "high" => Thinking::Share(0.8),
        "medium" => Thinking::Share(0.5),
        "low" => Thinking::Share(0.2),
        "minimal" => Thinking::Share(0.1),
        "none" => Thinking::Off,
        _ => return None,
    })
}

pub fn reasoning(request: &ChatRequest) -> Result<Option<Reasoning>, AdapterError> {
    let Some(value) = parse_opt("reasoning", &request.reasoning_json)? else {
        return Ok(None);
    };
    let Value::Object(object) = value else {
        return Err(invalid("reasoning must be a JSON object"));
    };
    let effort = match object.get("effort") {
        Some(Value::String(effort)) => Some(
            effort_share(effort)
                .ok_or_else(|| invalid(format!("unknown reasoning.effort {effort:?}")))?,
        ),
        _ => None,
    };
    let budget = object
        .get("max_tokens")
        .and_then(Value::as_u64)
        .map(|n| Thinking::Budget(u32::try_from(n).unwrap_or(u32::MAX)));
    let thinking = match object.get("enabled").and_then(Value::as_bool) {
        Some(false) => Thinking::Off,
        // `enabled: true` alone means medium effort.
        enabled => budget
            .or(effort)
            .or(enabled.map(|_| Thinking::Share(0.5)))
            .unwrap_or(Thinking::Default),
    };
    let exclude = object
        .get("exclude")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(Some(Reasoning { thinking, exclude }))
}

/// Whether the response must leave reasoning out.
pub fn hides_reasoning(request: &ChatRequest) -> bool {
    matches!(
        reasoning(request),
        Ok(Some(Reasoning { exclude: true, .. }))
    )
}

/// An image reference as Anthropic and Gemini take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Image {
    /// A `data:` URI, split into its media type and base64 payload.
    Inline {
        media_type: String,
        data: String,
    },
    Url(String),
}

pub fn image(url: &str) -> Result<Image, AdapterError> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (media_type, data) = rest
            .split_once(";base64,")
            .ok_or_else(|| invalid("image data URIs must be base64"))?;
        return Ok(Image::Inline {
            media_type: media_type.to_owned(),
            data: data.to_owned(),
        });
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(Image::Url(url.to_owned()));
    }
    Err(invalid("image_url must be an http(s) URL or a data URI"))
}

/// Adds the passthrough object's keys that the format does not own and the
/// translation did not already set.
pub fn merge_passthrough(
    body: &mut Map<String, Value>,
    request: &ChatRequest,
    reserved: &[&str],
) -> Result<(), AdapterError> {
    if let Some(passthrough) = parse_opt("passthrough", &request.passthrough_json)? {
        let Value::Object(extra) = passthrough else {
            return Err(invalid("passthrough_json must be a JSON object"));
        };
        for (key, value) in extra {
            if !reserved.contains(&key.as_str()) && !body.contains_key(&key) {
                body.insert(key, value);
            }
        }
    }
    Ok(())
}

/// The plain text of a message: `text`, or its text parts joined.
pub fn message_text(message: &ChatMessage) -> String {
    if message.parts.is_empty() {
        return message.text.clone().unwrap_or_default();
    }
    message
        .parts
        .iter()
        .filter_map(|p| match &p.part {
            Some(content_part::Part::Text(text)) => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

/// About four characters per token, the usual rule of thumb.
pub fn tokens_for_chars(chars: usize) -> u64 {
    chars.div_ceil(4) as u64
}

/// Prompt tokens estimated from the request's text, plus a few tokens of
/// framing per message, for upstreams that report no usage.
pub fn estimate_prompt_tokens(request: &ChatRequest) -> u64 {
    let chars: usize = request
        .messages
        .iter()
        .map(|m| {
            let calls: usize = m
                .tool_calls
                .iter()
                .map(|c| c.name.chars().count() + c.arguments.chars().count())
                .sum();
            message_text(m).chars().count() + calls
        })
        .sum();
    tokens_for_chars(chars) + 3 * request.messages.len() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_reasoning(json: &str) -> ChatRequest {
        ChatRequest {
            reasoning_json: Some(json.into()),
            ..Default::default()
        }
    }

    #[test]
    fn reasoning_objects() {
        let cases = [
            (r#"{"max_tokens":2000}"#, Thinking::Budget(2000), false),
            (r#"{"effort":"high"}"#, Thinking::Share(0.8), false),
            (r#"{"effort":"none"}"#, Thinking::Off, false),
            (r#"{"enabled":true}"#, Thinking::Share(0.5), false),
            (r#"{"enabled":false,"effort":"high"}"#, Thinking::Off, false),
            (r#"{"exclude":true}"#, Thinking::Default, true),
        ];
        for (json, thinking, exclude) in cases {
            let parsed = reasoning(&with_reasoning(json)).unwrap().unwrap();
            assert_eq!(parsed, Reasoning { thinking, exclude }, "{json}");
        }
        assert!(reasoning(&with_reasoning(r#"{"effort":"huge"}"#)).is_err());
        assert!(hides_reasoning(&with_reasoning(r#"{"exclude":true}"#)));
    }

    #[test]
    fn tool_choices_and_images() {
        let choice = |json: &str| {
            tool_choice(&ChatRequest {
                tool_choice_json: Some(json.into()),
                ..Default::default()
            })
        };
        assert_eq!(choice(r#""required""#).unwrap(), Some(ToolChoice::Required));
        assert_eq!(
            choice(r#"{"type":"function","function":{"name":"f"}}"#).unwrap(),
            Some(ToolChoice::Function("f".into()))
        );
        assert!(choice(r#""sometimes""#).is_err());
        assert_eq!(
            image("data:image/png;base64,AAAA").unwrap(),
            Image::Inline {
                media_type: "image/png".into(),
                data: "AAAA".into()
            }
        );
        assert!(image("ftp://x/y.png").is_err());
    }
}
