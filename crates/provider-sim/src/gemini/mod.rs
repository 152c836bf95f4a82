//! Google Gemini at `POST /v1beta/models/{model}:generateContent`,
//! `:streamGenerateContent` (SSE with `?alt=sse`, else a streamed JSON array)
//! and `:countTokens`: request parsing, API-key auth and Google's error shape.

mod error;
mod render;

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::plan::{ForcedTool, Prompt};
use crate::serve::{self, Fault};
use crate::state::SimState;
use crate::text;

use render::Gemini;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerateRequest {
    #[serde(default)]
    contents: Vec<Content>,
    #[serde(alias = "system_instruction")]
    system_instruction: Option<Content>,
    #[serde(default)]
    tools: Vec<Tool>,
    #[serde(alias = "tool_config")]
    tool_config: Option<Value>,
    #[serde(alias = "generation_config", default)]
    generation_config: GenerationConfig,
}

#[derive(Debug, Deserialize)]
struct Content {
    role: Option<String>,
    #[serde(default)]
    parts: Vec<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Tool {
    #[serde(alias = "function_declarations", default)]
    function_declarations: Vec<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig {
    #[serde(alias = "max_output_tokens")]
    max_output_tokens: Option<u32>,
    #[serde(alias = "stop_sequences", default)]
    stop_sequences: Vec<String>,
    #[serde(alias = "response_mime_type")]
    response_mime_type: Option<String>,
    #[serde(alias = "response_schema", alias = "responseJsonSchema")]
    response_schema: Option<Value>,
    #[serde(alias = "thinking_config")]
    thinking_config: Option<ThinkingConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ThinkingConfig {
    #[serde(alias = "thinking_budget")]
    thinking_budget: Option<i64>,
    #[serde(alias = "include_thoughts")]
    include_thoughts: Option<bool>,
}

impl GenerateRequest {
    /// The conversation as OpenAI-style messages, the system instruction
    /// first; earlier thoughts are left out of the context.
    fn canonical_messages(&self) -> Result<Vec<Value>, String> {
        let mut messages = Vec::new();
        if let Some(system) = &self.system_instruction {
            messages.push(text::canonical_message("system", parts(&system.parts)));
        }
        for (i, content) in self.contents.iter().enumerate() {
            let role = match content.role.as_deref() {
                None | Some("user") => "user",
                Some("model") => "assistant",
                Some("function") => "tool",
                Some(_) => return Err("Please use a valid role: user, model.".to_owned()),
            };
            if content.parts.is_empty() {
                return Err(format!(
                    "* GenerateContentRequest.contents[{i}].parts: contents.parts must not be \
                     empty.\n"
                ));
            }
            messages.push(text::canonical_message(role, parts(&content.parts)));
        }
        Ok(messages)
    }

    /// Mode `ANY` forces a call: the first allowed function, else the first
    /// declared one.
    fn forced_tool(&self) -> Option<ForcedTool> {
        let config = self.tool_config.as_ref()?.get("functionCallingConfig")?;
        if config.get("mode").and_then(Value::as_str) != Some("ANY") {
            return None;
        }
        let declarations: Vec<&Value> = self
            .tools
            .iter()
            .flat_map(|t| &t.function_declarations)
            .collect();
        let name_of = |d: &Value| d.get("name").and_then(Value::as_str).map(str::to_owned);
        let allowed = config
            .get("allowedFunctionNames")
            .and_then(|names| names.get(0))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let name = allowed.or_else(|| declarations.first().and_then(|d| name_of(d)))?;
        let declaration = declarations
            .iter()
            .find(|d| name_of(d).as_ref() == Some(&name));
        Some(ForcedTool {
            name,
            parameters: declaration.and_then(|d| d.get("parameters")).cloned(),
        })
    }

    fn into_prompt(self, model: String, stream: bool) -> Result<(Prompt, bool), String> {
        if self.contents.is_empty() {
            return Err(
                "* GenerateContentRequest.contents: contents is not specified\n".to_owned(),
            );
        }
        let config = &self.generation_config;
        let thinking = config.thinking_config.as_ref();
        // Budget 0 turns thinking off, -1 lets the model decide.
        let thinking_budget = match thinking.and_then(|t| t.thinking_budget) {
            Some(0) | None => None,
            Some(budget) => Some(u32::try_from(budget).unwrap_or(u32::MAX)),
        };
        let include_thoughts = thinking.and_then(|t| t.include_thoughts).unwrap_or(false);
        let json_schema = (config.response_mime_type.as_deref() == Some("application/json"))
            .then(|| config.response_schema.clone().unwrap_or(Value::Null));
        let prompt = Prompt {
            messages: self.canonical_messages()?,
            stream,
            max_tokens: config.max_output_tokens,
            stop: config.stop_sequences.clone(),
            tool: self.forced_tool(),
            thinking_budget,
            json_schema,
            model,
        };
        Ok((prompt, include_thoughts))
    }
}

/// Parts as OpenAI-style parts: function calls and responses count as their
/// JSON text, inline and file data as themselves.
fn parts(parts: &[Value]) -> Vec<Value> {
    let mut out = Vec::new();
    for part in parts {
        if part.get("thought").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        if let Some(text) = part.get("text").and_then(Value::as_str) {
            out.push(text::text_part(text));
        } else if let Some(call) = part.get("functionCall") {
            out.push(text::text_part(
                call.get("args").unwrap_or(call).to_string(),
            ));
        } else if let Some(response) = part.get("functionResponse") {
            let response = response.get("response").unwrap_or(response);
            out.push(text::text_part(response.to_string()));
        } else {
            out.push(part.clone());
        }
    }
    out
}

/// `POST /v1beta/models/{model}:{action}`.
pub async fn models_action(
    State(state): State<SimState>,
    Path(target): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((model, action)) = target.rsplit_once(':') else {
        return not_found(&target);
    };
    let stream = match action {
        "generateContent" | "countTokens" => false,
        "streamGenerateContent" => true,
        _ => return not_found(&target),
    };
    let request: GenerateRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => return error::fault(&Fault::BadRequest(format!("Invalid JSON payload: {e}"))),
    };
    let (prompt, include_thoughts) = match request.into_prompt(model.to_owned(), stream) {
        Ok(parsed) => parsed,
        Err(message) => return error::fault(&Fault::BadRequest(message)),
    };
    if action == "countTokens" {
        return Json(json!({"totalTokens": text::prompt_tokens(&prompt.messages)})).into_response();
    }
    let sse = query.get("alt").is_some_and(|alt| alt == "sse");
    serve::serve(state, &headers, prompt, Gemini::new(include_thoughts, sse)).await
}

/// `GET /v1beta/models`.
pub async fn list_models(State(state): State<SimState>) -> Json<Value> {
    let models: Vec<Value> = state
        .models()
        .into_iter()
        .map(|id| {
            json!({
                "name": format!("models/{id}"),
                "displayName": id,
                "supportedGenerationMethods":
                    ["generateContent", "streamGenerateContent", "countTokens"],
            })
        })
        .collect();
    Json(json!({"models": models}))
}

fn not_found(target: &str) -> Response {
    error::error(
        StatusCode::NOT_FOUND,
        &format!("models/{target} is not found for API version v1beta."),
    )
}

/// API-key auth (`x-goog-api-key`, `?key=` or bearer) when the simulator has
/// a key. Like Google: no key is 403, a wrong key is 400 `API_KEY_INVALID`.
pub async fn require_key(State(state): State<SimState>, request: Request, next: Next) -> Response {
    if let Some(key) = state.api_key() {
        let headers = request.headers();
        let from_header = headers
            .get("x-goog-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let from_bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned);
        let from_query = Query::<HashMap<String, String>>::try_from_uri(request.uri())
            .ok()
            .and_then(|q| q.0.get("key").cloned());
        match from_header.or(from_query).or(from_bearer) {
            None => {
                return error::error(
                    StatusCode::FORBIDDEN,
                    "Method doesn't allow unregistered callers (callers without established \
                 identity). Please use API Key or other form of API consumer identity to call \
                 this API.",
                );
            }
            Some(presented) if presented != key => {
                let detail = json!({
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                });
                return error::with_details(
                    StatusCode::BAD_REQUEST,
                    "API key not valid. Please pass a valid API key.",
                    vec![detail],
                );
            }
            Some(_) => {}
        }
    }
    next.run(request).await
}
