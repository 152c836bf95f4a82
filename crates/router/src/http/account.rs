//! The management API, in OpenRouter's shapes: `/keys` (management keys),
//! `/key` (any key, about itself), `/credits` and `/activity` (management
//! keys), and the public datasets (`/datasets/rankings-daily`,
//! `/datasets/app-rankings`, any key). Everything is scoped to the account
//! of the key that asks; usage-metering is the system of record.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use serde_json::{Map, Value, json};
use switchyard_kit::money::{nanos_to_usd, usd_f64_to_nanos};
use switchyard_proto::metering::v1 as pb;

use super::AppState;
use crate::auth::{self, Caller, Scope};
use crate::error::ApiError;

/// OpenRouter's data API limit per key.
const DATASET_RPM: u32 = 30;
const RANKED_MODELS: usize = 50;

type Query_ = Query<BTreeMap<String, String>>;

fn respond(result: Result<(u16, Value), ApiError>) -> Response {
    match result {
        Ok((status, body)) => super::json_response(status, &body),
        Err(err) => err.into_response(),
    }
}

async fn caller(state: &AppState, headers: &HeaderMap, scope: Scope) -> Result<Caller, ApiError> {
    state
        .keys
        .authenticate_for(auth::bearer(headers), scope)
        .await
}

/// Metering's answer as an API error: its messages for bad input, a 404
/// for a key that is not the caller's, 503 when it is unreachable.
fn metering_error(status: tonic::Status) -> ApiError {
    match status.code() {
        tonic::Code::InvalidArgument => ApiError::BadRequest(status.message().to_owned()),
        tonic::Code::NotFound => ApiError::KeyNotFound,
        _ => {
            tracing::warn!(%status, "usage-metering call failed");
            ApiError::Unavailable("Account service is temporarily unavailable".into())
        }
    }
}

fn iso_ms(ms: i64) -> Value {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map_or(Value::Null, |t| {
            t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                .into()
        })
}

fn usd(nanos: i64) -> Value {
    nanos_to_usd(nanos).into()
}

fn reset_name(reset: i32) -> Value {
    match pb::LimitReset::try_from(reset).unwrap_or_default() {
        pb::LimitReset::Never => Value::Null,
        pb::LimitReset::Daily => "daily".into(),
        pb::LimitReset::Weekly => "weekly".into(),
        pb::LimitReset::Monthly => "monthly".into(),
    }
}

/// The Key object of `/keys` responses.
fn key_json(d: &pb::KeyDetails) -> Value {
    let k = d.key.clone().unwrap_or_default();
    json!({
        "hash": k.hash,
        "name": k.name,
        "label": k.label,
        "disabled": k.disabled,
        "limit": k.limit_nanos.map_or(Value::Null, usd),
        "limit_remaining": d.limit_remaining_nanos.map_or(Value::Null, usd),
        "limit_reset": reset_name(k.limit_reset),
        "include_byok_in_limit": k.include_byok_in_limit,
        "usage": nanos_to_usd(d.usage_nanos),
        "usage_daily": nanos_to_usd(d.usage_daily_nanos),
        "usage_weekly": nanos_to_usd(d.usage_weekly_nanos),
        "usage_monthly": nanos_to_usd(d.usage_monthly_nanos),
        "byok_usage": 0.0,
        "byok_usage_daily": 0.0,
        "byok_usage_weekly": 0.0,
        "byok_usage_monthly": 0.0,
        "created_at": iso_ms(k.created_at_ms),
        "updated_at": k.updated_at_ms.map_or(Value::Null, iso_ms),
        "last_used_at": d.last_used_at_ms.map_or(Value::Null, iso_ms),
        "expires_at": k.expires_at_ms.map_or(Value::Null, iso_ms),
        "creator_user_id": null,
        "external_user": null,
        "workspace_id": k.account_id,
        "rate_limit_rpm": k.rate_limit_rpm,
    })
}

fn body_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::BadRequest(
            "The body must be a JSON object".into(),
        )),
        Err(e) => Err(ApiError::BadRequest(format!("Malformed JSON body: {e}"))),
    }
}

/// `limit`: a non-negative USD number, or null.
fn parse_limit(value: &Value) -> Result<Option<i64>, ApiError> {
    match value {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_f64()
            .and_then(usd_f64_to_nanos)
            .map(Some)
            .ok_or_else(|| {
                ApiError::BadRequest("limit must be a non-negative amount of USD".into())
            }),
        _ => Err(ApiError::BadRequest(
            "limit must be a number or null".into(),
        )),
    }
}

fn parse_reset(value: &Value) -> Result<pb::LimitReset, ApiError> {
    match value {
        Value::Null => Ok(pb::LimitReset::Never),
        Value::String(s) => match s.as_str() {
            "daily" => Ok(pb::LimitReset::Daily),
            "weekly" => Ok(pb::LimitReset::Weekly),
            "monthly" => Ok(pb::LimitReset::Monthly),
            _ => Err(ApiError::BadRequest(
                "limit_reset must be daily, weekly, monthly or null".into(),
            )),
        },
        _ => Err(ApiError::BadRequest(
            "limit_reset must be a string or null".into(),
        )),
    }
}

fn parse_rpm(value: &Value) -> Result<Option<u32>, ApiError> {
    match value {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_u64()
            .filter(|n| (1..=1_000_000).contains(n))
            .map(|n| Some(n as u32))
            .ok_or_else(|| {
                ApiError::BadRequest("rate_limit_rpm must be an integer from 1 to 1000000".into())
            }),
        _ => Err(ApiError::BadRequest(
            "rate_limit_rpm must be an integer or null".into(),
        )),
    }
}

fn parse_bool(body: &Map<String, Value>, field: &str) -> Result<Option<bool>, ApiError> {
    match body.get(field) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ApiError::BadRequest(format!("{field} must be a boolean"))),
    }
}

pub async fn list_keys(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query_,
) -> Response {
    respond(
        async {
            let caller = caller(&state, &headers, Scope::Management).await?;
            let offset = match query.get("offset") {
                Some(v) => v.parse::<u32>().map_err(|_| {
                    ApiError::BadRequest("offset must be a non-negative integer".into())
                })?,
                None => 0,
            };
            let include_disabled = query.get("include_disabled").is_some_and(|v| v == "true");
            let keys = state
                .metering
                .clone()
                .list_keys(pb::ListKeysRequest {
                    account_id: caller.account_id,
                    include_disabled,
                    offset,
                    limit: 100,
                })
                .await
                .map_err(metering_error)?
                .into_inner()
                .keys;
            Ok((
                200,
                json!({ "data": keys.iter().map(key_json).collect::<Vec<_>>() }),
            ))
        }
        .await,
    )
}

pub async fn create_key(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    respond(
        async {
            let caller = caller(&state, &headers, Scope::Management).await?;
            let body = body_object(&body)?;
            let name = match body.get("name") {
                Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
                _ => return Err(ApiError::BadRequest("name is required".into())),
            };
            let limit_nanos = body.get("limit").map(parse_limit).transpose()?.flatten();
            let limit_reset = body
                .get("limit_reset")
                .map(parse_reset)
                .transpose()?
                .unwrap_or_default();
            let rate_limit_rpm = body
                .get("rate_limit_rpm")
                .map(parse_rpm)
                .transpose()?
                .flatten();
            let expires_at_ms = match body.get("expires_at") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => {
                    let at = DateTime::parse_from_rfc3339(s).map_err(|_| {
                        ApiError::BadRequest("expires_at must be an ISO 8601 date-time".into())
                    })?;
                    if at.with_timezone(&Utc) <= Utc::now() {
                        return Err(ApiError::BadRequest(
                            "expires_at must be in the future".into(),
                        ));
                    }
                    Some(at.timestamp_millis())
                }
                Some(_) => return Err(ApiError::BadRequest("expires_at must be a string".into())),
            };
            let created = state
                .metering
                .clone()
                .create_key(pb::CreateKeyRequest {
                    name,
                    kind: pb::KeyKind::Inference.into(),
                    account_id: caller.account_id.clone(),
                    import_key: None,
                    billing: pb::BillingMode::Unspecified.into(),
                    limit_nanos,
                    limit_reset: limit_reset.into(),
                    include_byok_in_limit: parse_bool(&body, "include_byok_in_limit")?
                        .unwrap_or(false),
                    rate_limit_rpm,
                    expires_at_ms,
                })
                .await
                .map_err(metering_error)?
                .into_inner();
            let details = pb::KeyDetails {
                limit_remaining_nanos: limit_nanos,
                key: created.key,
                ..Default::default()
            };
            Ok((
                201,
                json!({ "data": key_json(&details), "key": created.key_text }),
            ))
        }
        .await,
    )
}

pub async fn get_key(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(hash): Path<String>,
) -> Response {
    respond(
        async {
            let caller = caller(&state, &headers, Scope::Management).await?;
            let details = state
                .metering
                .clone()
                .get_key(pb::GetKeyRequest {
                    account_id: caller.account_id,
                    hash,
                })
                .await
                .map_err(metering_error)?
                .into_inner();
            Ok((200, json!({ "data": key_json(&details) })))
        }
        .await,
    )
}

pub async fn update_key(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(hash): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    respond(
        async {
            let caller = caller(&state, &headers, Scope::Management).await?;
            let body = body_object(&body)?;
            let name = match body.get("name") {
                None => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(_) => return Err(ApiError::BadRequest("name must be a string".into())),
            };
            let limit = body.get("limit").map(parse_limit).transpose()?;
            let reset = body.get("limit_reset").map(parse_reset).transpose()?;
            let rpm = body.get("rate_limit_rpm").map(parse_rpm).transpose()?;
            let request = pb::UpdateKeyRequest {
                account_id: caller.account_id,
                hash,
                name,
                disabled: parse_bool(&body, "disabled")?,
                limit_nanos: limit.flatten(),
                clear_limit: matches!(limit, Some(None)),
                limit_reset: reset.map(Into::into),
                include_byok_in_limit: parse_bool(&body, "include_byok_in_limit")?,
                rate_limit_rpm: rpm.flatten(),
                clear_rate_limit: matches!(rpm, Some(None)),
            };
            let details = state
                .metering
                .clone()
                .update_key(request)
                .await
                .map_err(metering_error)?
                .into_inner();
            Ok((200, json!({ "data": key_json(&details) })))
        }
        .await,
    )
}

pub async fn delete_key(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(hash): Path<String>,
) -> Response {
    respond(
        async {
            let caller = caller(&state, &headers, Scope::Management).await?;
            state
                .metering
                .clone()
                .delete_key(pb::DeleteKeyRequest {
                    account_id: caller.account_id,
                    hash,
                })
                .await
                .map_err(metering_error)?;
            Ok((200, json!({ "deleted": true })))
        }
        .await,
    )
}

/// `GET /key`: the calling key itself, any kind.
pub async fn current_key(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    respond(
        async {
            let caller = caller(&state, &headers, Scope::Any).await?;
            let mut metering = state.metering.clone();
            let details = metering
                .get_key(pb::GetKeyRequest {
                    account_id: caller.account_id.clone(),
                    hash: caller.key_hash.clone(),
                })
                .await
                .map_err(metering_error)?
                .into_inner();
            let account = metering
                .get_account(pb::GetAccountRequest {
                    account_id: caller.account_id.clone(),
                })
                .await
                .map_err(metering_error)?
                .into_inner();
            let k = details.key.clone().unwrap_or_default();
            let management = k.kind == pb::KeyKind::Management as i32;
            let budget = k.limit_nanos.map(|limit| {
                let spend = limit - details.limit_remaining_nanos.unwrap_or(limit);
                json!({
                    "scope": "key_limit",
                    "limit_usd": nanos_to_usd(limit),
                    "spend_usd": nanos_to_usd(spend),
                    "remaining_usd": nanos_to_usd(details.limit_remaining_nanos.unwrap_or(0)),
                    "reset_interval": reset_name(k.limit_reset),
                    "resets_at": next_reset(k.limit_reset),
                    "include_byok": k.include_byok_in_limit,
                    "guardrail_id": null,
                    "budget_id": null,
                })
            });
            let rpm = k.rate_limit_rpm.unwrap_or(state.default_rate_limit_rpm);
            Ok((
                200,
                json!({ "data": {
                    "label": k.label,
                    "limit": k.limit_nanos.map_or(Value::Null, usd),
                    "limit_remaining": details.limit_remaining_nanos.map_or(Value::Null, usd),
                    "limit_reset": reset_name(k.limit_reset),
                    "include_byok_in_limit": k.include_byok_in_limit,
                    "usage": nanos_to_usd(details.usage_nanos),
                    "usage_daily": nanos_to_usd(details.usage_daily_nanos),
                    "usage_weekly": nanos_to_usd(details.usage_weekly_nanos),
                    "usage_monthly": nanos_to_usd(details.usage_monthly_nanos),
                    "byok_usage": 0.0,
                    "byok_usage_daily": 0.0,
                    "byok_usage_weekly": 0.0,
                    "byok_usage_monthly": 0.0,
                    "is_free_tier": account.total_credits_nanos == 0,
                    "is_management_key": management,
                    "is_provisioning_key": management,
                    "rate_limit": {
                        "requests": if rpm == 0 { -1 } else { i64::from(rpm) },
                        "interval": "1m",
                        "note": if rpm == 0 {
                            "No per-key request limit; credits and key limits apply"
                        } else {
                            "Requests per minute for this key, shared by every router replica"
                        },
                    },
                    "expires_at": k.expires_at_ms.map_or(Value::Null, iso_ms),
                    "creator_user_id": null,
                    "organization_id": null,
                    "workspace_id": k.account_id,
                    "allowed_data_regions": ["global"],
                    "free_model_daily_requests": { "limit": -1, "remaining": -1, "used": 0 },
                    "budgets": budget.iter().cloned().collect::<Vec<_>>(),
                    "effective_budget": budget,
                    "balance": nanos_to_usd(account.balance_nanos),
                }}),
            ))
        }
        .await,
    )
}

/// When a key limit with this reset next starts over (UTC midnight; weeks
/// on Monday).
fn next_reset(reset: i32) -> Value {
    let today = Utc::now().date_naive();
    let next = match pb::LimitReset::try_from(reset).unwrap_or_default() {
        pb::LimitReset::Never => return Value::Null,
        pb::LimitReset::Daily => today.succ_opt(),
        pb::LimitReset::Weekly => Some(
            today + chrono::Duration::days(7 - i64::from(today.weekday().num_days_from_monday())),
        ),
        pb::LimitReset::Monthly => {
            let (y, m) = if today.month() == 12 {
                (today.year() + 1, 1)
            } else {
                (today.year(), today.month() + 1)
            };
            NaiveDate::from_ymd_opt(y, m, 1)
        }
    };
    next.and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(Value::Null, |t| {
            Utc.from_utc_datetime(&t)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                .into()
        })
}

pub async fn credits(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    respond(
        async {
            let caller = caller(&state, &headers, Scope::Management).await?;
            let account = state
                .metering
                .clone()
                .get_account(pb::GetAccountRequest {
                    account_id: caller.account_id,
                })
                .await
                .map_err(metering_error)?
                .into_inner();
            Ok((
                200,
                json!({ "data": {
                    "total_credits": nanos_to_usd(account.total_credits_nanos),
                    "total_usage": nanos_to_usd(account.total_usage_nanos),
                    "balance": nanos_to_usd(account.balance_nanos),
                    "held": nanos_to_usd(account.held_nanos),
                    "billing": match pb::BillingMode::try_from(account.billing).unwrap_or_default() {
                        pb::BillingMode::Postpaid => "postpaid",
                        _ => "prepaid",
                    },
                }}),
            ))
        }
        .await,
    )
}

pub async fn activity(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query_,
) -> Response {
    respond(
        async {
            let caller = caller(&state, &headers, Scope::Management).await?;
            let rows = state
                .metering
                .clone()
                .get_activity(pb::GetActivityRequest {
                    account_id: caller.account_id,
                    date: query.get("date").cloned().unwrap_or_default(),
                    key_hash: query.get("api_key_hash").cloned().unwrap_or_default(),
                    now_ms: 0,
                })
                .await
                .map_err(metering_error)?
                .into_inner()
                .rows;
            let data: Vec<Value> = rows
                .into_iter()
                .map(|r| {
                    json!({
                        "date": r.date,
                        "model": r.model,
                        "model_permaslug": r.model,
                        "endpoint_id": r.endpoint_id,
                        "provider_name": r.provider_name,
                        "requests": r.requests,
                        "prompt_tokens": r.prompt_tokens,
                        "completion_tokens": r.completion_tokens,
                        "reasoning_tokens": r.reasoning_tokens,
                        "cached_tokens": r.cached_tokens,
                        "usage": nanos_to_usd(r.usage_nanos),
                        "byok_usage_inference": 0.0,
                    })
                })
                .collect();
            Ok((200, json!({ "data": data })))
        }
        .await,
    )
}

/// Datasets are public data behind any valid key, 30 requests a minute.
async fn dataset_caller(state: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let caller = caller(state, headers, Scope::Any).await?;
    state
        .limiter
        .check(&format!("datasets:{}", caller.key_hash), Some(DATASET_RPM))
        .await?;
    Ok(caller)
}

fn dataset_meta(start: &str, end: &str) -> Value {
    json!({
        "as_of": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "start_date": start,
        "end_date": end,
        "version": "v1",
    })
}

/// The default window: the 30 days ending with the last completed UTC day.
fn window(query: &BTreeMap<String, String>) -> Result<(NaiveDate, NaiveDate), ApiError> {
    let parse = |field: &str| -> Result<Option<NaiveDate>, ApiError> {
        query
            .get(field)
            .filter(|v| !v.is_empty())
            .map(|v| {
                NaiveDate::parse_from_str(v, "%Y-%m-%d")
                    .map_err(|_| ApiError::BadRequest(format!("{field} must be YYYY-MM-DD")))
            })
            .transpose()
    };
    let yesterday = Utc::now().date_naive() - chrono::Duration::days(1);
    let end = parse("end_date")?.unwrap_or(yesterday);
    let start = parse("start_date")?.unwrap_or(end - chrono::Duration::days(29));
    if start > end {
        return Err(ApiError::BadRequest("start_date is after end_date".into()));
    }
    if (end - start).num_days() >= 366 {
        return Err(ApiError::BadRequest(
            "the window spans more than 366 days".into(),
        ));
    }
    Ok((start, end))
}

fn bucket(day: NaiveDate, period: &str) -> NaiveDate {
    match period {
        "week" => day - chrono::Duration::days(i64::from(day.weekday().num_days_from_monday())),
        "month" => day.with_day(1).expect("day 1 exists"),
        _ => day,
    }
}

pub async fn rankings_daily(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query_,
) -> Response {
    respond(
        async {
            dataset_caller(&state, &headers).await?;
            let period = query.get("period").map_or("day", String::as_str);
            if !matches!(period, "day" | "week" | "month") {
                return Err(ApiError::BadRequest(
                    "period must be day, week or month".into(),
                ));
            }
            if query.get("modality").is_some_and(|m| m != "text") {
                return Err(ApiError::BadRequest("only modality=text is tracked".into()));
            }
            for unsupported in ["category", "language_type", "context_bucket"] {
                if query.contains_key(unsupported) {
                    return Err(ApiError::BadRequest(format!(
                        "{unsupported} is not available: Switchyard does not classify prompts"
                    )));
                }
            }
            let (start, end) = window(&query)?;
            let rows = state
                .metering
                .clone()
                .get_rankings(pb::GetRankingsRequest {
                    start_date: start.to_string(),
                    end_date: end.to_string(),
                })
                .await
                .map_err(metering_error)?
                .into_inner()
                .rows;
            Ok((
                200,
                json!({
                    "data": rank_models(&rows, period),
                    "meta": dataset_meta(&start.to_string(), &end.to_string()),
                }),
            ))
        }
        .await,
    )
}

/// Top 50 models per period by prompt + completion tokens, plus one
/// `other` row; date ascending, tokens descending, ties by slug.
fn rank_models(rows: &[pb::ModelDayTokens], period: &str) -> Vec<Value> {
    let mut buckets: BTreeMap<NaiveDate, BTreeMap<String, u64>> = BTreeMap::new();
    for row in rows {
        let Ok(day) = NaiveDate::parse_from_str(&row.date, "%Y-%m-%d") else {
            continue;
        };
        *buckets
            .entry(bucket(day, period))
            .or_default()
            .entry(row.model.clone())
            .or_default() += row.prompt_tokens + row.completion_tokens;
    }
    let mut out = Vec::new();
    for (day, models) in buckets {
        let mut ranked: Vec<(String, u64)> = models.into_iter().filter(|(_, t)| *t > 0).collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let other: u64 = ranked.iter().skip(RANKED_MODELS).map(|(_, t)| t).sum();
        ranked.truncate(RANKED_MODELS);
        for (model, tokens) in ranked {
            out.push(json!({"date": day.to_string(), "model_permaslug": model, "total_tokens": tokens.to_string()}));
        }
        if other > 0 {
            out.push(json!({"date": day.to_string(), "model_permaslug": "other", "total_tokens": other.to_string()}));
        }
    }
    out
}

pub async fn app_rankings(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query_,
) -> Response {
    respond(
        async {
            dataset_caller(&state, &headers).await?;
            let sort = query.get("sort").map_or("popular", String::as_str);
            if !matches!(sort, "popular" | "trending") {
                return Err(ApiError::BadRequest("sort must be popular or trending".into()));
            }
            if query.contains_key("category") || query.contains_key("subcategory") {
                return Err(ApiError::BadRequest(
                    "category is not available: Switchyard apps carry no categories".into(),
                ));
            }
            let number = |field: &str, default: u32, range: std::ops::RangeInclusive<u32>| {
                match query.get(field) {
                    None => Ok(default),
                    Some(v) => v
                        .parse::<u32>()
                        .ok()
                        .filter(|n| range.contains(n))
                        .ok_or_else(|| ApiError::BadRequest(format!("{field} is out of range"))),
                }
            };
            let limit = number("limit", 50, 1..=100)? as usize;
            let offset = number("offset", 0, 0..=100)? as usize;
            let (start, end) = window(&query)?;
            let fetch = |start: NaiveDate, end: NaiveDate| {
                let mut metering = state.metering.clone();
                async move {
                    metering
                        .get_app_rankings(pb::GetAppRankingsRequest {
                            start_date: start.to_string(),
                            end_date: end.to_string(),
                            model: String::new(),
                        })
                        .await
                        .map(|r| r.into_inner().apps)
                        .map_err(metering_error)
                }
            };
            let current = fetch(start, end).await?;
            let mut scored: Vec<(i128, pb::AppUsage)> = if sort == "trending" {
                // Growth over the mean of the three preceding equal windows.
                let span = (end - start).num_days() + 1;
                let mut before: BTreeMap<i64, u64> = BTreeMap::new();
                for i in 1..=3 {
                    let s = start - chrono::Duration::days(span * i);
                    let e = end - chrono::Duration::days(span * i);
                    for app in fetch(s, e).await? {
                        *before.entry(app.app_id).or_default() += app.tokens;
                    }
                }
                current
                    .into_iter()
                    .map(|app| {
                        let mean = i128::from(before.get(&app.app_id).copied().unwrap_or(0)) / 3;
                        (i128::from(app.tokens) - mean, app)
                    })
                    .filter(|(growth, _)| *growth > 0)
                    .collect()
            } else {
                current
                    .into_iter()
                    .map(|app| (i128::from(app.tokens), app))
                    .collect()
            };
            scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.app_id.cmp(&b.1.app_id)));
            let data: Vec<Value> = scored
                .into_iter()
                .enumerate()
                .skip(offset)
                .take(limit)
                .map(|(i, (_, app))| {
                    json!({
                        "rank": i + 1,
                        "app_id": app.app_id,
                        "app_name": if app.title.is_empty() { app.http_referer.clone() } else { app.title.clone() },
                        "origin_url": app.http_referer,
                        "total_requests": app.requests,
                        "total_tokens": app.tokens.to_string(),
                    })
                })
                .collect();
            Ok((200, json!({
                "data": data,
                "meta": dataset_meta(&start.to_string(), &end.to_string()),
            })))
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rankings_keep_the_top_fifty_and_fold_the_rest_into_other() {
        let mut rows = Vec::new();
        for i in 0..55u64 {
            rows.push(pb::ModelDayTokens {
                date: "2026-11-20".into(),
                model: format!("m/{i:02}"),
                prompt_tokens: 100 + i,
                completion_tokens: 0,
                ..Default::default()
            });
        }
        rows.push(pb::ModelDayTokens {
            date: "2026-11-19".into(),
            model: "m/zero".into(),
            ..Default::default()
        });
        let ranked = rank_models(&rows, "day");
        assert_eq!(ranked.len(), 51, "zero-token models are dropped");
        assert_eq!(ranked[0]["model_permaslug"], "m/54");
        assert_eq!(ranked[50]["model_permaslug"], "other");
        assert_eq!(
            ranked[50]["total_tokens"],
            (100 + 101 + 102 + 103 + 104).to_string()
        );
        let weekly = rank_models(&rows, "week");
        assert_eq!(weekly[0]["date"], "2026-11-16");
    }

    #[test]
    fn limits_parse_as_exact_usd() {
        assert_eq!(parse_limit(&json!(12.5)).unwrap(), Some(12_500_000_000));
        assert_eq!(parse_limit(&Value::Null).unwrap(), None);
        assert!(parse_limit(&json!(-1)).is_err());
        assert!(parse_limit(&json!("5")).is_err());
        assert_eq!(
            parse_reset(&json!("weekly")).unwrap(),
            pb::LimitReset::Weekly
        );
        assert!(parse_reset(&json!("hourly")).is_err());
        assert!(parse_rpm(&json!(0)).is_err());
    }
}
