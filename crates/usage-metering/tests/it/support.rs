//! Shared helpers: a `Metering` on either backend and realistic usage events.

use std::path::PathBuf;

use switchyard_kit::testing::{fresh_postgres_database, unique_name};
use switchyard_proto::catalog::v1::Pricing;
use switchyard_proto::metering::v1::{ProviderAttempt, UsageEvent};
use switchyard_usage_metering::{Config, Metering};

pub fn temp_data_dir() -> PathBuf {
    std::env::temp_dir().join(unique_name("switchyard_metering"))
}

pub async fn postgres_config() -> Config {
    let mut config = Config::embedded(temp_data_dir());
    config.database_url = Some(fresh_postgres_database().await);
    config.key_pepper = Some("test-pepper".into());
    config
}

pub async fn postgres() -> Metering {
    Metering::open(&postgres_config().await)
        .await
        .expect("open Postgres metering")
}

pub async fn embedded() -> Metering {
    Metering::open(&Config::embedded(temp_data_dir()))
        .await
        .expect("open embedded metering")
}

/// Generates `#[tokio::test]`s running each named `async fn(Metering)` in the
/// calling module against both backends.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::support::postgres().await).await
                }
            )*
        }
        mod embedded {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::support::embedded().await).await
                }
            )*
        }
    };
}

/// gpt-4 at $30/M prompt and $60/M completion: 37 + 8 tokens = $0.00159.
pub fn event(id: &str, account_id: &str) -> UsageEvent {
    UsageEvent {
        generation_id: id.to_owned(),
        account_id: account_id.to_owned(),
        key_hash: "ab".repeat(32),
        model: "openai/gpt-4".into(),
        endpoint_id: "openai:openai/gpt-4".into(),
        provider_slug: "openai".into(),
        provider_name: "OpenAI".into(),
        upstream_id: "chatcmpl-123".into(),
        created_at_ms: 1_750_000_000_123,
        prompt_tokens: 37,
        completion_tokens: 8,
        finish_reason: "stop".into(),
        native_finish_reason: "stop".into(),
        latency_ms: 900,
        generation_time_ms: 700,
        api_type: "completions".into(),
        pricing: Some(Pricing {
            prompt: "0.00003".into(),
            completion: "0.00006".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// An event with every field set, to check nothing is lost in storage.
pub fn full_event(id: &str, account_id: &str) -> UsageEvent {
    UsageEvent {
        reasoning_tokens: 3,
        cached_tokens: 5,
        cache_write_tokens: 7,
        ttft_ms: Some(120),
        streamed: true,
        cancelled: true,
        native_finish_reason: "end_turn".into(),
        http_referer: Some("https://app.example".into()),
        app_title: Some("Example App".into()),
        user_agent: Some("openai-python/1.0".into()),
        pricing: Some(Pricing {
            prompt: "0.00003".into(),
            completion: "0.00006".into(),
            request: Some("0.001".into()),
            image: Some("0.002".into()),
            input_cache_read: Some("0.000003".into()),
            input_cache_write: Some("0.0000375".into()),
            internal_reasoning: Some("0.00001".into()),
        }),
        attempts: vec![
            ProviderAttempt {
                provider_name: "Azure".into(),
                endpoint_id: "azure:openai/gpt-4".into(),
                status: 429,
                latency_ms: 30,
            },
            ProviderAttempt {
                provider_name: "OpenAI".into(),
                endpoint_id: "openai:openai/gpt-4".into(),
                status: 200,
                latency_ms: 850,
            },
        ],
        session_id: Some("session-1".into()),
        external_user: Some("user-42".into()),
        ..event(id, account_id)
    }
}
