//! `GET /api/v1/generation?id=` — the usage record of one generation, for
//! the account that made it. Reads go to usage-metering (not the hot path);
//! a record can trail its response by a moment, as on OpenRouter.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::{TimeZone, Utc};
use serde_json::{Value, json};
use switchyard_kit::money::nanos_to_usd;
use switchyard_proto::metering::v1::{Generation, GetGenerationRequest};

use super::AppState;
use crate::auth;
use crate::error::ApiError;

#[derive(serde::Deserialize)]
pub struct GenerationQuery {
    id: Option<String>,
}

pub async fn get_generation(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<GenerationQuery>,
) -> Response {
    match lookup(&state, &headers, query).await {
        Ok(body) => super::json_response(200, &body),
        Err(err) => err.into_response(),
    }
}

async fn lookup(
    state: &AppState,
    headers: &HeaderMap,
    query: GenerationQuery,
) -> Result<Value, ApiError> {
    let caller = state
        .keys
        .authenticate_for(auth::bearer(headers), auth::Scope::Any)
        .await?;
    let id = query
        .id
        .filter(|id| !id.is_empty())
        .ok_or_else(|| ApiError::BadRequest("id is required".into()))?;
    let response = state
        .metering
        .clone()
        .get_generation(GetGenerationRequest {
            id: id.clone(),
            account_id: caller.account_id,
        })
        .await
        .map_err(|status| {
            tracing::warn!(%status, "usage-metering unavailable for generation lookup");
            ApiError::Unavailable("Generation lookup is temporarily unavailable".into())
        })?;
    let generation = response
        .into_inner()
        .generation
        .ok_or(ApiError::GenerationNotFound(id))?;
    Ok(json!({ "data": generation_json(&generation) }))
}

fn generation_json(g: &Generation) -> Value {
    let e = g.event.clone().unwrap_or_default();
    let created_at = Utc
        .timestamp_millis_opt(e.created_at_ms)
        .single()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    let total = nanos_to_usd(g.total_cost_nanos);
    json!({
        "id": e.generation_id,
        "request_id": if e.request_id.is_empty() { e.generation_id.clone() } else { e.request_id.clone() },
        "session_id": e.session_id,
        "created_at": created_at,
        "model": e.model,
        "provider_name": e.provider_name,
        "router": null,
        "api_type": if e.api_type.is_empty() { Value::Null } else { e.api_type.clone().into() },
        "app_id": g.app_id,
        "http_referer": e.http_referer,
        "origin": e.http_referer.as_deref().map(origin_of).unwrap_or_default(),
        "user_agent": e.user_agent,
        "external_user": e.external_user,
        "upstream_id": if e.upstream_id.is_empty() { Value::Null } else { e.upstream_id.clone().into() },
        "total_cost": total,
        "usage": total,
        "upstream_inference_cost": total,
        "cache_discount": null,
        "is_byok": false,
        "tokens_prompt": e.prompt_tokens,
        "tokens_completion": e.completion_tokens,
        "native_tokens_prompt": e.prompt_tokens,
        "native_tokens_completion": e.completion_tokens,
        "native_tokens_reasoning": e.reasoning_tokens,
        "native_tokens_cached": e.cached_tokens,
        "native_tokens_completion_images": null,
        // Switchyard: the provider reported no usage; counts are estimated.
        "usage_estimated": e.usage_estimated,
        "num_media_prompt": null,
        "num_media_completion": null,
        "num_input_audio_prompt": null,
        "num_search_results": null,
        "num_fetches": null,
        "latency": e.latency_ms,
        "generation_time": e.generation_time_ms,
        "moderation_latency": null,
        "streamed": e.streamed,
        "cancelled": e.cancelled,
        "finish_reason": if e.finish_reason.is_empty() { Value::Null } else { e.finish_reason.clone().into() },
        "native_finish_reason": if e.native_finish_reason.is_empty() { Value::Null } else { e.native_finish_reason.clone().into() },
        "service_tier": null,
        "data_region": "global",
        "provider_responses": e.attempts.iter().map(|a| json!({
            "status": a.status,
            "provider_name": a.provider_name,
            "endpoint_id": a.endpoint_id,
            "latency": a.latency_ms,
            "is_byok": false,
        })).collect::<Vec<_>>(),
        "preset_id": null,
        "web_search_engine": null,
        "workspace_id": null,
    })
}

/// `scheme://host[:port]` of a referer URL ("" when it has none).
fn origin_of(referer: &str) -> String {
    match referer.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            format!("{scheme}://{host}")
        }
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn origins_of_referers() {
        assert_eq!(
            super::origin_of("https://app.example:8443/chat?x=1"),
            "https://app.example:8443"
        );
        assert_eq!(
            super::origin_of("https://app.example"),
            "https://app.example"
        );
        assert_eq!(super::origin_of("not a url"), "");
    }
}
