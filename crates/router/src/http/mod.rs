//! The public HTTP API (OpenRouter-compatible) under `/api/v1`.

pub mod account;
pub mod chat;
pub mod chat_stream;
pub mod completions;
pub mod endpoints;
pub mod generation;
pub mod messages;
pub mod models;
pub mod pages;
pub mod request;
pub mod sse;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use switchyard_kit::grpc::InternalChannel;
use switchyard_proto::metering::v1::usage_metering_service_client::UsageMeteringServiceClient;

use crate::auth::KeyCache;
use crate::engine::Engine;
use crate::error::ApiError;

pub struct AppState {
    pub engine: Engine,
    pub keys: KeyCache,
    pub limiter: crate::ratelimit::RateLimiter,
    /// Rendered web pages, for a few seconds.
    pub pages: pages::PageCache,
    /// Requests per minute for keys that set no limit (0 = none).
    pub default_rate_limit_rpm: u32,
    pub metering: UsageMeteringServiceClient<InternalChannel>,
    pub max_body_bytes: usize,
    pub keepalive: std::time::Duration,
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/api/v1/chat/completions", post(chat::chat_completions))
        .route("/api/v1/completions", post(completions::completions))
        .route("/api/v1/messages", post(messages::messages))
        .route("/api/v1/models", get(models::list_models))
        .route(
            "/api/v1/models/{author}/{slug}/endpoints",
            get(endpoints::list_endpoints),
        )
        .route("/api/v1/providers", get(endpoints::list_providers))
        .route("/api/v1/generation", get(generation::get_generation))
        .route(
            "/api/v1/keys",
            get(account::list_keys).post(account::create_key),
        )
        .route(
            "/api/v1/keys/{hash}",
            get(account::get_key)
                .patch(account::update_key)
                .delete(account::delete_key),
        )
        .route("/api/v1/key", get(account::current_key))
        .route("/api/v1/auth/key", get(account::current_key))
        .route("/api/v1/credits", get(account::credits))
        .route("/api/v1/activity", get(account::activity))
        .route(
            "/api/v1/datasets/rankings-daily",
            get(account::rankings_daily),
        )
        .route("/api/v1/datasets/app-rankings", get(account::app_rankings))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/", get(pages::models_index))
        .route("/models", get(pages::models_index))
        .route("/rankings", get(pages::rankings))
        .route("/providers/{slug}", get(pages::provider_page))
        .route("/{author}/{slug}", get(pages::model_page))
        .fallback(pages::fallback)
        .with_state(state)
}

async fn readyz(axum::extract::State(state): axum::extract::State<Arc<AppState>>) -> Response {
    if state.engine.catalog().is_ready() {
        "ready".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "catalog not loaded").into_response()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let retry_after = self.retry_after_secs();
        let mut response = json_response(status, &self.envelope());
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from(secs));
        }
        if let ApiError::RateLimited {
            limit, reset_at_ms, ..
        } = &self
        {
            let headers = response.headers_mut();
            headers.insert("x-ratelimit-limit", HeaderValue::from(*limit));
            headers.insert("x-ratelimit-remaining", HeaderValue::from(0));
            headers.insert("x-ratelimit-reset", HeaderValue::from(*reset_at_ms));
        }
        response
    }
}

pub fn json_response(status: u16, body: &serde_json::Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}
