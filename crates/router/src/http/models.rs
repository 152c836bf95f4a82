//! `GET /api/v1/models` in OpenRouter's schema. The full body is rendered
//! once per catalog snapshot; filters run over the prepared table.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use super::AppState;
use crate::catalog_view::{EndpointRoute, ModelEntry};

#[derive(Debug, Default, serde::Deserialize)]
pub struct ModelsQuery {
    /// Comma list; a model must support all of them.
    supported_parameters: Option<String>,
    /// Free-text search on id and name.
    q: Option<String>,
}

pub async fn list_models(
    State(state): State<Arc<AppState>>,
    Query(query): Query<ModelsQuery>,
) -> Response {
    let table = state.engine.catalog().current();
    let page = &table.models_page;
    let body = if query.supported_parameters.is_none() && query.q.is_none() {
        page.full.clone()
    } else {
        let wanted: Vec<&str> = query
            .supported_parameters
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let needle = query.q.as_deref().map(str::to_lowercase);
        let matching = page.items.iter().filter(|(entry, _)| {
            let m = &entry.model;
            wanted
                .iter()
                .all(|p| m.supported_parameters.iter().any(|s| s == p))
                && needle.as_ref().is_none_or(|n| {
                    m.id.to_lowercase().contains(n) || m.name.to_lowercase().contains(n)
                })
        });
        page_body(matching.map(|(_, json)| json.as_str()))
    };
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// The `/models` page, rendered once per catalog snapshot: each model's
/// JSON (newest first) and the unfiltered body. Filters only pick and join.
#[derive(Debug, Default)]
pub struct ModelsPage {
    pub items: Vec<(Arc<ModelEntry>, String)>,
    pub full: Bytes,
}

impl ModelsPage {
    pub fn build(models: &HashMap<String, Arc<ModelEntry>>) -> ModelsPage {
        let mut entries: Vec<&Arc<ModelEntry>> = models.values().collect();
        entries.sort_by(|a, b| {
            b.model
                .created
                .cmp(&a.model.created)
                .then(a.model.id.cmp(&b.model.id))
        });
        let items: Vec<(Arc<ModelEntry>, String)> = entries
            .into_iter()
            .map(|e| (e.clone(), model_json(e).to_string()))
            .collect();
        let full = page_body(items.iter().map(|(_, json)| json.as_str()));
        ModelsPage { items, full }
    }
}

/// `{"data":[...],"total_count":N,"links":{"next":null}}` from rendered items.
fn page_body<'a>(items: impl Iterator<Item = &'a str>) -> Bytes {
    let mut out = String::from("{\"data\":[");
    let mut count = 0usize;
    for item in items {
        if count > 0 {
            out.push(',');
        }
        out.push_str(item);
        count += 1;
    }
    out.push_str(&format!(
        "],\"total_count\":{count},\"links\":{{\"next\":null}}}}"
    ));
    Bytes::from(out)
}

/// The `/models` body for these models, newest first.
pub fn render_models(models: &HashMap<String, Arc<ModelEntry>>) -> Bytes {
    ModelsPage::build(models).full
}

pub fn price_json(endpoint: Option<&EndpointRoute>) -> Value {
    let Some(e) = endpoint else {
        return json!({ "prompt": "0", "completion": "0" });
    };
    let p = &e.pricing;
    let mut pricing = json!({
        "prompt": e.rates.prompt.to_string(),
        "completion": e.rates.completion.to_string(),
    });
    for (name, value) in [
        ("request", &p.request),
        ("image", &p.image),
        ("input_cache_read", &p.input_cache_read),
        ("input_cache_write", &p.input_cache_write),
        ("internal_reasoning", &p.internal_reasoning),
    ] {
        if let Some(v) = value
            .as_deref()
            .and_then(|v| v.parse::<switchyard_kit::Price>().ok())
        {
            pricing[name] = v.to_string().into();
        }
    }
    pricing
}

fn model_json(entry: &ModelEntry) -> Value {
    let m = &entry.model;
    // The endpoint default routing most likely picks: the cheapest.
    let top = entry.endpoints.first().map(|e| e.as_ref());
    let arch = m.architecture.clone().unwrap_or_default();
    json!({
        "id": m.id,
        "canonical_slug": m.canonical_slug,
        "hugging_face_id": m.hugging_face_id,
        "name": m.name,
        "created": m.created,
        "description": m.description,
        "context_length": m.context_length,
        "architecture": {
            "modality": arch.modality,
            "input_modalities": arch.input_modalities,
            "output_modalities": arch.output_modalities,
            "tokenizer": arch.tokenizer,
            "instruct_type": arch.instruct_type,
        },
        "pricing": price_json(top),
        "top_provider": {
            "context_length": top.map(|e| e.context_length).unwrap_or(m.context_length),
            "max_completion_tokens": top.and_then(|e| e.max_completion_tokens),
            "is_moderated": false,
        },
        "per_request_limits": null,
        "supported_parameters": m.supported_parameters,
        "default_parameters": null,
        "supported_voices": null,
        "knowledge_cutoff": m.knowledge_cutoff,
        "links": { "details": format!("/api/v1/models/{}/endpoints", m.id) },
    })
}
