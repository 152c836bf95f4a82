//! Everything outside the provider APIs proper: health, the OpenAI model
//! list, per-model knobs (`/sim/models/{model}`) and the stats ground truth.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::knobs::Knobs;
use crate::openai;
use crate::state::SimState;

pub async fn healthz() -> &'static str {
    "ok"
}

pub async fn list_models(State(state): State<SimState>) -> Json<serde_json::Value> {
    let data: Vec<_> = state
        .models()
        .into_iter()
        .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "provider-sim"}))
        .collect();
    Json(json!({"object": "list", "data": data}))
}

pub async fn get_model_knobs(
    State(state): State<SimState>,
    Path(model): Path<String>,
) -> Json<Knobs> {
    Json(state.model_knobs(&model))
}

pub async fn put_model_knobs(
    State(state): State<SimState>,
    Path(model): Path<String>,
    body: Bytes,
) -> Response {
    let knobs: Knobs = match serde_json::from_slice(&body) {
        Ok(knobs) => knobs,
        Err(e) => return bad_knobs(&e.to_string()),
    };
    if let Err(message) = knobs.validate() {
        return bad_knobs(&message);
    }
    state.set_model_knobs(&model, knobs.clone());
    Json(knobs).into_response()
}

fn bad_knobs(message: &str) -> Response {
    openai::error(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        None,
        message,
    )
}

pub async fn delete_model_knobs(
    State(state): State<SimState>,
    Path(model): Path<String>,
) -> StatusCode {
    state.reset_model_knobs(&model);
    StatusCode::NO_CONTENT
}

pub async fn stats(State(state): State<SimState>) -> Json<crate::StatsSnapshot> {
    Json(state.stats())
}

pub async fn reset(State(state): State<SimState>) -> StatusCode {
    state.reset_stats();
    StatusCode::NO_CONTENT
}
