//! Usage events as metering understands them: validated on the way in,
//! priced exactly, and turned back into protos for `GetGeneration`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchyard_kit::money::Price;
use switchyard_proto::catalog::v1 as catalog_pb;
use switchyard_proto::metering::v1 as pb;

use crate::error::MeteringError;

/// Upper bound on one `RecordUsage` batch, which is one transaction.
pub const MAX_BATCH_EVENTS: usize = 10_000;
const MAX_ID_CHARS: usize = 256;

/// Prices pinned when the request was routed, USD per unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pricing {
    pub prompt: Price,
    pub completion: Price,
    pub request: Option<Price>,
    pub image: Option<Price>,
    pub input_cache_read: Option<Price>,
    pub input_cache_write: Option<Price>,
    pub internal_reasoning: Option<Price>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub provider_name: String,
    pub endpoint_id: String,
    pub status: u32,
    pub latency_ms: u64,
}

/// One generation's usage. Counters are u64 on the wire but must fit the
/// database's BIGINT, which parsing checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageEvent {
    pub generation_id: String,
    pub account_id: String,
    pub key_hash: String,
    pub model: String,
    pub endpoint_id: String,
    pub provider_slug: String,
    pub provider_name: String,
    pub upstream_id: String,
    pub created_at: DateTime<Utc>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub reasoning_tokens: u64,
    pub cached_tokens: u64,
    pub cache_write_tokens: u64,
    /// Token counts are an estimate (the provider reported none).
    #[serde(default)]
    pub usage_estimated: bool,
    pub latency_ms: u64,
    pub ttft_ms: Option<u64>,
    pub generation_time_ms: u64,
    pub streamed: bool,
    pub cancelled: bool,
    pub finish_reason: String,
    pub native_finish_reason: String,
    pub http_referer: Option<String>,
    pub app_title: Option<String>,
    pub user_agent: Option<String>,
    /// None when the endpoint is not priced; the generation then costs 0.
    pub pricing: Option<Pricing>,
    pub attempts: Vec<Attempt>,
    pub api_type: String,
    pub session_id: Option<String>,
    pub external_user: Option<String>,
    /// The credit lease the request was admitted under ("" = none).
    #[serde(default)]
    pub lease_id: String,
    #[serde(default)]
    pub request_id: String,
    #[serde(default)]
    pub origin: Option<String>,
}

/// What a generation is charged (the shared rule in `kit::money`).
pub use switchyard_kit::money::Charge as Cost;

/// A recorded generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generation {
    pub event: UsageEvent,
    pub cost: Cost,
    pub app_id: Option<i64>,
}

impl UsageEvent {
    pub fn is_insured(&self) -> bool {
        switchyard_kit::money::is_insured(self.completion_tokens, &self.finish_reason)
    }

    /// The charge, by the one pricing rule the router also applies.
    pub fn cost(&self) -> Cost {
        let Some(pricing) = &self.pricing else {
            return Cost::default();
        };
        let rates = switchyard_kit::money::Rates {
            prompt: pricing.prompt,
            completion: pricing.completion,
            request: pricing.request.unwrap_or_default(),
        };
        rates.charge(
            self.prompt_tokens,
            self.completion_tokens,
            &self.finish_reason,
        )
    }

    /// Parses event `index` of a batch; the error names the event.
    pub fn parse(index: usize, event: pb::UsageEvent) -> Result<UsageEvent, MeteringError> {
        let generation_id = event.generation_id.clone();
        UsageEvent::try_from(event).map_err(|reason| MeteringError::InvalidEvent {
            index,
            generation_id,
            reason,
        })
    }
}

fn price(field: &str, value: &str) -> Result<Price, String> {
    value.parse().map_err(|e| format!("pricing.{field}: {e}"))
}

fn optional_price(field: &str, value: Option<&str>) -> Result<Option<Price>, String> {
    value.map(|v| price(field, v)).transpose()
}

impl TryFrom<catalog_pb::Pricing> for Pricing {
    type Error = String;

    fn try_from(p: catalog_pb::Pricing) -> Result<Pricing, String> {
        Ok(Pricing {
            prompt: price("prompt", &p.prompt)?,
            completion: price("completion", &p.completion)?,
            request: optional_price("request", p.request.as_deref())?,
            image: optional_price("image", p.image.as_deref())?,
            input_cache_read: optional_price("input_cache_read", p.input_cache_read.as_deref())?,
            input_cache_write: optional_price("input_cache_write", p.input_cache_write.as_deref())?,
            internal_reasoning: optional_price(
                "internal_reasoning",
                p.internal_reasoning.as_deref(),
            )?,
        })
    }
}

fn fits_bigint(field: &str, value: u64) -> Result<u64, String> {
    if i64::try_from(value).is_ok() {
        Ok(value)
    } else {
        Err(format!("{field} is out of range"))
    }
}

impl TryFrom<pb::UsageEvent> for UsageEvent {
    type Error = String;

    fn try_from(e: pb::UsageEvent) -> Result<UsageEvent, String> {
        if !e.generation_id.starts_with("gen-") || e.generation_id.len() <= "gen-".len() {
            return Err("generation_id must start with \"gen-\"".into());
        }
        if e.generation_id.len() > MAX_ID_CHARS {
            return Err("generation_id is too long".into());
        }
        if e.account_id.trim().is_empty() {
            return Err("account_id is empty".into());
        }
        if crate::ledger::is_system_account(&e.account_id) {
            return Err("account_id names a system ledger account".into());
        }
        if e.created_at_ms < 0 {
            return Err("created_at_ms is negative".into());
        }
        let created_at = DateTime::from_timestamp_millis(e.created_at_ms)
            .ok_or_else(|| "created_at_ms is out of range".to_owned())?;
        let pricing = e.pricing.map(Pricing::try_from).transpose()?;
        let attempts = e
            .attempts
            .into_iter()
            .map(|a| {
                Ok(Attempt {
                    provider_name: a.provider_name,
                    endpoint_id: a.endpoint_id,
                    status: a.status,
                    latency_ms: fits_bigint("attempts.latency_ms", a.latency_ms)?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let empty_to_none = |s: Option<String>| s.filter(|s| !s.trim().is_empty());
        Ok(UsageEvent {
            generation_id: e.generation_id,
            account_id: e.account_id,
            key_hash: e.key_hash,
            model: e.model,
            endpoint_id: e.endpoint_id,
            provider_slug: e.provider_slug,
            provider_name: e.provider_name,
            upstream_id: e.upstream_id,
            created_at,
            prompt_tokens: fits_bigint("prompt_tokens", e.prompt_tokens)?,
            completion_tokens: fits_bigint("completion_tokens", e.completion_tokens)?,
            reasoning_tokens: fits_bigint("reasoning_tokens", e.reasoning_tokens)?,
            cached_tokens: fits_bigint("cached_tokens", e.cached_tokens)?,
            cache_write_tokens: fits_bigint("cache_write_tokens", e.cache_write_tokens)?,
            usage_estimated: e.usage_estimated,
            latency_ms: fits_bigint("latency_ms", e.latency_ms)?,
            ttft_ms: e.ttft_ms.map(|v| fits_bigint("ttft_ms", v)).transpose()?,
            generation_time_ms: fits_bigint("generation_time_ms", e.generation_time_ms)?,
            streamed: e.streamed,
            cancelled: e.cancelled,
            finish_reason: e.finish_reason,
            native_finish_reason: e.native_finish_reason,
            http_referer: empty_to_none(e.http_referer),
            app_title: empty_to_none(e.app_title),
            user_agent: e.user_agent,
            pricing,
            attempts,
            api_type: e.api_type,
            session_id: e.session_id,
            external_user: e.external_user,
            lease_id: e.lease_id.chars().take(MAX_ID_CHARS).collect(),
            request_id: e.request_id.chars().take(MAX_ID_CHARS).collect(),
            origin: empty_to_none(e.origin),
        })
    }
}

impl From<Pricing> for catalog_pb::Pricing {
    fn from(p: Pricing) -> catalog_pb::Pricing {
        let text = |p: Option<Price>| p.map(|p| p.to_string());
        catalog_pb::Pricing {
            prompt: p.prompt.to_string(),
            completion: p.completion.to_string(),
            request: text(p.request),
            image: text(p.image),
            input_cache_read: text(p.input_cache_read),
            input_cache_write: text(p.input_cache_write),
            internal_reasoning: text(p.internal_reasoning),
        }
    }
}

impl From<UsageEvent> for pb::UsageEvent {
    fn from(e: UsageEvent) -> pb::UsageEvent {
        pb::UsageEvent {
            generation_id: e.generation_id,
            account_id: e.account_id,
            key_hash: e.key_hash,
            model: e.model,
            endpoint_id: e.endpoint_id,
            provider_slug: e.provider_slug,
            provider_name: e.provider_name,
            upstream_id: e.upstream_id,
            created_at_ms: e.created_at.timestamp_millis(),
            prompt_tokens: e.prompt_tokens,
            completion_tokens: e.completion_tokens,
            reasoning_tokens: e.reasoning_tokens,
            cached_tokens: e.cached_tokens,
            latency_ms: e.latency_ms,
            ttft_ms: e.ttft_ms,
            generation_time_ms: e.generation_time_ms,
            streamed: e.streamed,
            cancelled: e.cancelled,
            finish_reason: e.finish_reason,
            native_finish_reason: e.native_finish_reason,
            http_referer: e.http_referer,
            app_title: e.app_title,
            user_agent: e.user_agent,
            pricing: e.pricing.map(Into::into),
            attempts: e
                .attempts
                .into_iter()
                .map(|a| pb::ProviderAttempt {
                    provider_name: a.provider_name,
                    endpoint_id: a.endpoint_id,
                    status: a.status,
                    latency_ms: a.latency_ms,
                })
                .collect(),
            api_type: e.api_type,
            session_id: e.session_id,
            external_user: e.external_user,
            cache_write_tokens: e.cache_write_tokens,
            usage_estimated: e.usage_estimated,
            lease_id: e.lease_id,
            request_id: e.request_id,
            origin: e.origin,
        }
    }
}

impl From<Generation> for pb::Generation {
    fn from(g: Generation) -> pb::Generation {
        pb::Generation {
            event: Some(g.event.into()),
            total_cost_nanos: g.cost.total,
            prompt_cost_nanos: g.cost.prompt,
            completion_cost_nanos: g.cost.completion,
            app_id: g.app_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(prompt: &str, completion: &str) -> pb::UsageEvent {
        pb::UsageEvent {
            generation_id: "gen-1".into(),
            account_id: "acct-1".into(),
            prompt_tokens: 37,
            completion_tokens: 8,
            finish_reason: "stop".into(),
            pricing: Some(catalog_pb::Pricing {
                prompt: prompt.into(),
                completion: completion.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn gpt4_cost_is_exact() {
        let e = UsageEvent::try_from(event("0.00003", "0.00006")).unwrap();
        assert_eq!(
            e.cost(),
            Cost {
                prompt: 1_110_000,
                completion: 480_000,
                total: 1_590_000
            }
        );
    }

    #[test]
    fn total_is_rounded_once_and_includes_the_request_price() {
        let mut raw = event("0.0000000000375", "0.0000000000375");
        raw.prompt_tokens = 13; // 0.4875 nano
        raw.completion_tokens = 13; // 0.4875 nano
        raw.pricing.as_mut().unwrap().request = Some("0.000000001".into());
        let cost = UsageEvent::try_from(raw).unwrap().cost();
        assert_eq!(
            cost,
            Cost {
                prompt: 0,
                completion: 0,
                total: 2
            }
        );
    }

    #[test]
    fn empty_and_errored_generations_are_free() {
        let mut raw = event("0.00003", "0.00006");
        raw.completion_tokens = 0;
        raw.finish_reason.clear();
        assert_eq!(UsageEvent::try_from(raw).unwrap().cost(), Cost::default());
        let mut raw = event("0.00003", "0.00006");
        raw.finish_reason = "error".into();
        raw.completion_tokens = 0;
        assert_eq!(UsageEvent::try_from(raw).unwrap().cost(), Cost::default());
        let mut raw = event("0.00003", "0.00006");
        raw.finish_reason = "error".into(); // failed after output: insured
        assert_eq!(UsageEvent::try_from(raw).unwrap().cost(), Cost::default());
        let mut raw = event("0.00003", "0.00006");
        raw.completion_tokens = 0; // nothing generated: insured
        assert_eq!(UsageEvent::try_from(raw).unwrap().cost(), Cost::default());
        let mut raw = event("0.00003", "0.00006");
        raw.finish_reason.clear(); // the client hung up after output
        assert_eq!(UsageEvent::try_from(raw).unwrap().cost().total, 1_590_000);
    }

    #[test]
    fn malformed_events_are_rejected() {
        let mut bad_id = event("0", "0");
        bad_id.generation_id = "chatcmpl-1".into();
        let mut no_account = event("0", "0");
        no_account.account_id.clear();
        let mut huge = event("0", "0");
        huge.prompt_tokens = u64::MAX;
        let mut system = event("0", "0");
        system.account_id = crate::ledger::REVENUE.into();
        for raw in [
            bad_id,
            no_account,
            event("abc", "0"),
            event("0", ""),
            huge,
            system,
        ] {
            assert!(UsageEvent::try_from(raw).is_err());
        }
    }

    #[test]
    fn events_round_trip_through_the_proto() {
        let raw = event("0.00003", "0.00006");
        let parsed = UsageEvent::try_from(raw.clone()).unwrap();
        assert_eq!(pb::UsageEvent::from(parsed), raw);
    }
}
