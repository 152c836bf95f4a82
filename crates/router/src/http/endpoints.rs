//! `GET /api/v1/models/{author}/{slug}/endpoints` and `GET /api/v1/providers`.
//!
//! Live numbers come from the same time buckets routing uses (Redis, or this
//! instance's own when Redis is away):
//! - `uptime_last_5m|30m|1d`: successful ÷ (successful + failed + timed out)
//!   attempts, in percent; rate-limited (429) and caller-caused (400/413)
//!   attempts are left out; `null` with no counted attempt in the window.
//! - `latency_last_30m`: time to first token in **milliseconds**, p50–p99.
//! - `throughput_last_30m`: output tokens per second of streaming time; "p90"
//!   is the rate 90% of requests met or beat (so p90 ≤ p50), as OpenRouter
//!   defines it.
//!
//! Percentiles come from log-bucketed sketches, within 2% of the truth.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use super::models::price_json;
use crate::catalog_view::EndpointRoute;
use crate::error::ApiError;
use crate::stats::Agg;

pub async fn list_endpoints(
    State(state): State<Arc<AppState>>,
    Path((author, slug)): Path<(String, String)>,
) -> Response {
    let id = format!("{author}/{slug}");
    let table = state.engine.catalog().current();
    let Some(entry) = crate::routing::select::resolve(&table, &id).map(|(e, _)| e.clone()) else {
        return ApiError::UnknownModel(id).into_response();
    };
    let ids: Vec<String> = entry.endpoints.iter().map(|e| e.id.clone()).collect();
    let perf = state.engine.perf();
    let (five, thirty, day) = tokio::join!(
        perf.read(&ids, 5),
        perf.read(&ids, 30),
        perf.read(&ids, 1440)
    );
    let m = &entry.model;
    let arch = m.architecture.clone().unwrap_or_default();
    let endpoints: Vec<Value> = entry
        .endpoints
        .iter()
        .map(|e| {
            let get =
                |s: &crate::routing::perf::PerfSnapshot| s.get(&e.id).cloned().unwrap_or_default();
            endpoint_json(
                e,
                &m.name,
                &m.canonical_slug,
                &get(&five),
                &get(&thirty),
                &get(&day),
            )
        })
        .collect();
    super::json_response(
        200,
        &json!({ "data": {
            "id": m.id,
            "name": m.name,
            "created": m.created,
            "description": m.description,
            "architecture": {
                "modality": arch.modality,
                "input_modalities": arch.input_modalities,
                "output_modalities": arch.output_modalities,
                "tokenizer": arch.tokenizer,
                "instruct_type": arch.instruct_type,
            },
            "endpoints": endpoints,
        }}),
    )
}

fn percentiles(value_at: impl Fn(f64) -> Option<f64>) -> Value {
    match (value_at(0.5), value_at(0.75), value_at(0.9), value_at(0.99)) {
        (Some(p50), Some(p75), Some(p90), Some(p99)) => {
            let r = |v: f64| (v * 100.0).round() / 100.0;
            json!({ "p50": r(p50), "p75": r(p75), "p90": r(p90), "p99": r(p99) })
        }
        _ => Value::Null,
    }
}

fn endpoint_json(
    e: &EndpointRoute,
    model_name: &str,
    permaslug: &str,
    five: &Agg,
    thirty: &Agg,
    day: &Agg,
) -> Value {
    let supports = |p: &str| e.supported_parameters.iter().any(|s| s == p);
    let tool_choice = supports("tool_choice");
    json!({
        "name": format!("{} | {}", e.provider_name, model_name),
        "model_id": permaslug,
        "model_name": model_name,
        "provider_name": e.provider_name,
        "tag": e.tag,
        "context_length": e.context_length,
        "max_completion_tokens": e.max_completion_tokens,
        "max_prompt_tokens": null,
        "pricing": price_json(Some(e)),
        "quantization": e.quantization,
        "supported_parameters": e.supported_parameters,
        "supports_tool_choice": {
            "auto": tool_choice, "none": tool_choice, "required": tool_choice, "function": tool_choice,
        },
        "supports_implicit_caching": false,
        "status": e.status,
        "uptime_last_5m": five.uptime(),
        "uptime_last_30m": thirty.uptime(),
        "uptime_last_1d": day.uptime(),
        "latency_last_30m": percentiles(|q| thirty.ttft_quantile(q)),
        "throughput_last_30m": percentiles(|q| thirty.throughput_at_least(q)),
        "service_tier": null,
        "native_tools": {},
    })
}

pub async fn list_providers(State(state): State<Arc<AppState>>) -> Response {
    let table = state.engine.catalog().current();
    let mut providers = table.providers.clone();
    providers.sort_by(|a, b| a.slug.cmp(&b.slug));
    let data: Vec<Value> = providers
        .iter()
        .map(|p| {
            json!({
                "name": p.name,
                "slug": p.slug,
                "privacy_policy_url": p.privacy_policy_url,
                "terms_of_service_url": p.terms_of_service_url,
                "status_page_url": p.status_page_url,
                "headquarters": p.headquarters,
                "datacenters": null,
            })
        })
        .collect();
    super::json_response(200, &json!({ "data": data }))
}
