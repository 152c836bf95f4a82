//! The public web pages (`/models`, `/{author}/{slug}`, `/rankings`,
//! `/providers/{slug}`), rendered by `switchyard-web` from the catalog
//! snapshot, the live and hourly stats, and usage-metering's rollups. Each
//! rendered page is cached for a few seconds; a page never waits long on
//! metering (its sections then show their empty states).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use switchyard_proto::metering::v1 as pb;
use switchyard_web as web;

use super::AppState;
use crate::catalog_view::{EndpointRoute, ModelEntry, RoutingTable};
use crate::stats::Agg;

const CACHE_TTL: Duration = Duration::from_secs(10);
const CACHE_ENTRIES: usize = 512;
const METERING_TIMEOUT: Duration = Duration::from_secs(2);
/// The Performance charts and live numbers.
const PERF_HOURS: i64 = 24;
/// The uptime bars.
const UPTIME_HOURS: i64 = 72;

struct CachedPage {
    at: Instant,
    status: u16,
    page: Arc<String>,
}

/// Rendered pages by path and query, briefly.
#[derive(Default)]
pub struct PageCache {
    pages: Mutex<HashMap<String, CachedPage>>,
}

impl PageCache {
    fn get(&self, key: &str) -> Option<(u16, Arc<String>)> {
        let pages = self.pages.lock().expect("page cache poisoned");
        pages
            .get(key)
            .filter(|c| c.at.elapsed() < CACHE_TTL)
            .map(|c| (c.status, c.page.clone()))
    }

    fn put(&self, key: String, status: u16, page: Arc<String>) {
        let mut pages = self.pages.lock().expect("page cache poisoned");
        if pages.len() >= CACHE_ENTRIES {
            pages.retain(|_, c| c.at.elapsed() < CACHE_TTL);
            if pages.len() >= CACHE_ENTRIES {
                pages.clear();
            }
        }
        pages.insert(
            key,
            CachedPage {
                at: Instant::now(),
                status,
                page,
            },
        );
    }
}

fn html(status: u16, page: Arc<String>) -> Response {
    let mut response = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        page.as_ref().clone(),
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        axum::http::header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=10"),
    );
    response
}

/// Serves from the cache or renders (and caches) the page.
async fn cached<F>(state: &AppState, key: String, render: F) -> Response
where
    F: std::future::Future<Output = (u16, String)>,
{
    if let Some((status, page)) = state.pages.get(&key) {
        return html(status, page);
    }
    let (status, page) = render.await;
    let page = Arc::new(page);
    state.pages.put(key, status, page.clone());
    html(status, page)
}

/// The API base URL as the browser reached us.
fn site(headers: &HeaderMap) -> web::Site {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .unwrap_or("localhost:8080");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .filter(|p| *p == "https")
        .unwrap_or("http");
    web::Site::new("Switchyard", format!("{scheme}://{host}/api/v1"))
}

fn per_million(price: switchyard_kit::Price) -> f64 {
    price.per_million_usd()
}

fn percent(value: Option<f64>) -> Option<f64> {
    value.filter(|v| v.is_finite())
}

fn endpoint_row(e: &EndpointRoute, model_name: &str, live: Option<&Agg>) -> web::Endpoint {
    let live = live.cloned().unwrap_or_default();
    web::Endpoint {
        provider: web::ProviderRef::new(e.provider_slug.clone(), e.provider_name.clone()),
        model_id: e.model_id.clone(),
        model_name: model_name.to_owned(),
        tag: e.tag.clone(),
        context_length: u64::from(e.context_length),
        max_output_tokens: e.max_completion_tokens.map(u64::from),
        input_price: Some(per_million(e.rates.prompt)),
        output_price: Some(per_million(e.rates.completion)),
        cache_read_price: e.cache_read_price.map(per_million),
        cache_write_price: e
            .pricing
            .input_cache_write
            .as_deref()
            .and_then(|p| p.parse::<switchyard_kit::Price>().ok())
            .map(per_million),
        quantization: e.quantization.clone(),
        latency_ms: live.ttft_quantile(0.5),
        throughput: live.throughput_at_least(0.5),
        uptime: percent(live.uptime()),
    }
}

fn model_info(
    entry: &ModelEntry,
    live: &HashMap<String, Agg>,
    weekly_tokens: u64,
) -> web::ModelInfo {
    let m = &entry.model;
    let arch = m.architecture.clone().unwrap_or_default();
    let cheapest = entry.endpoints.first();
    let mut providers: Vec<web::ProviderRef> = Vec::new();
    for e in &entry.endpoints {
        if !providers.iter().any(|p| p.slug == e.provider_slug) {
            providers.push(web::ProviderRef::new(
                e.provider_slug.clone(),
                e.provider_name.clone(),
            ));
        }
    }
    let best = |f: &dyn Fn(&Agg) -> Option<f64>, better: fn(f64, f64) -> bool| {
        entry
            .endpoints
            .iter()
            .filter_map(|e| live.get(&e.id).and_then(f))
            .fold(None, |acc: Option<f64>, v| match acc {
                Some(a) if !better(v, a) => Some(a),
                _ => Some(v),
            })
    };
    web::ModelInfo {
        id: m.id.clone(),
        name: m.name.clone(),
        description: m.description.clone(),
        created: m.created,
        context_length: u64::from(m.context_length),
        input_price: cheapest.map(|e| per_million(e.rates.prompt)),
        output_price: cheapest.map(|e| per_million(e.rates.completion)),
        knowledge_cutoff: m.knowledge_cutoff.clone(),
        input_modalities: arch.input_modalities.clone(),
        output_modalities: arch.output_modalities.clone(),
        providers,
        throughput: best(&|a| a.throughput_at_least(0.5), |v, a| v > a),
        latency_ms: best(&|a| a.ttft_quantile(0.5), |v, a| v < a),
        weekly_tokens,
    }
}

/// Calls metering with a short deadline; None (logged) when it does not answer.
async fn ask<T, F>(what: &str, call: F) -> Option<T>
where
    F: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    match tokio::time::timeout(METERING_TIMEOUT, call).await {
        Ok(Ok(r)) => Some(r.into_inner()),
        Ok(Err(status)) => {
            tracing::warn!(%status, what, "usage-metering call for a page failed");
            None
        }
        Err(_) => {
            tracing::warn!(what, "usage-metering call for a page timed out");
            None
        }
    }
}

fn days_ago(days: i64) -> String {
    (Utc::now().date_naive() - chrono::Duration::days(days)).to_string()
}

/// Tokens (prompt + completion) per model over the last `days` days,
/// today included.
async fn tokens_by_model(state: &AppState, days: i64) -> Vec<pb::ModelDayTokens> {
    ask(
        "rankings",
        state.metering.clone().get_rankings(pb::GetRankingsRequest {
            start_date: days_ago(days - 1),
            end_date: days_ago(0),
        }),
    )
    .await
    .map(|r| r.rows)
    .unwrap_or_default()
}

async fn live_stats(state: &AppState, table: &RoutingTable) -> HashMap<String, Agg> {
    let ids: Vec<String> = table
        .models
        .values()
        .flat_map(|m| m.endpoints.iter().map(|e| e.id.clone()))
        .collect();
    state.engine.perf().read(&ids, 30).await.endpoints
}

pub async fn models_index(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    let key = format!("/models?{query}");
    let st = state.clone();
    cached(&state, key, async move {
        let table = st.engine.catalog().current();
        let live = live_stats(&st, &table).await;
        let mut weekly: HashMap<String, u64> = HashMap::new();
        for row in tokens_by_model(&st, 7).await {
            *weekly.entry(row.model).or_default() += row.prompt_tokens + row.completion_tokens;
        }
        let mut models: Vec<web::ModelInfo> = table
            .models
            .values()
            .map(|entry| {
                model_info(
                    entry,
                    &live,
                    weekly.get(&entry.model.id).copied().unwrap_or(0),
                )
            })
            .collect();
        models.sort_by(|a, b| a.id.cmp(&b.id));
        let page = web::models_index(&web::ModelsIndex {
            site: site(&headers),
            models,
            query: web::ModelsQuery::parse(&query),
        });
        (200, page)
    })
    .await
}

/// Hourly points of `value` over the window ending now.
fn series(ring: &[(i64, Agg)], value: impl Fn(&Agg) -> Option<f64>) -> web::TimeSeries {
    ring.iter().map(|(t, a)| (*t, value(a))).collect()
}

pub async fn model_page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((author, slug)): Path<(String, String)>,
) -> Response {
    let id = format!("{author}/{slug}");
    let st = state.clone();
    cached(&state, format!("/{id}"), async move {
        let site = site(&headers);
        let table = st.engine.catalog().current();
        let Some(entry) = crate::routing::select::resolve(&table, &id).map(|(e, _)| e.clone())
        else {
            return (
                404,
                web::not_found(&site, &format!("No model called {id}.")),
            );
        };
        let model_id = entry.model.id.clone();
        let ids: Vec<String> = entry.endpoints.iter().map(|e| e.id.clone()).collect();
        let perf = st.engine.perf();
        let mut metering = st.metering.clone();
        let (live, hourly, usage, weekly) = tokio::join!(
            perf.read(&ids, 30),
            perf.hourly(&ids, std::slice::from_ref(&model_id), UPTIME_HOURS),
            ask(
                "model usage",
                metering.get_model_usage(pb::GetModelUsageRequest {
                    model: model_id.clone(),
                    days: 30,
                    now_ms: 0,
                })
            ),
            tokens_by_model(&st, 7),
        );
        let weekly_tokens = weekly
            .iter()
            .filter(|r| r.model == model_id)
            .map(|r| r.prompt_tokens + r.completion_tokens)
            .sum();
        let now = Utc::now().timestamp();
        let perf_since = (now / 3600 - PERF_HOURS + 1) * 3600;
        let provider_of: HashMap<&str, &EndpointRoute> = entry
            .endpoints
            .iter()
            .map(|e| (e.id.as_str(), e.as_ref()))
            .collect();
        let mut latency = Vec::new();
        let mut throughput = Vec::new();
        let mut uptime = Vec::new();
        for e in &entry.endpoints {
            let ring = hourly.endpoints.get(&e.id).cloned().unwrap_or_default();
            let recent: Vec<(i64, Agg)> = ring
                .iter()
                .filter(|(t, _)| *t >= perf_since)
                .cloned()
                .collect();
            let label = if entry
                .endpoints
                .iter()
                .filter(|o| o.provider_name == e.provider_name)
                .count()
                > 1
            {
                format!("{} ({})", e.provider_name, e.tag)
            } else {
                e.provider_name.clone()
            };
            latency.push(web::ProviderSeries {
                provider: label.clone(),
                points: series(&recent, |a| a.ttft_quantile(0.5)),
            });
            throughput.push(web::ProviderSeries {
                provider: label.clone(),
                points: series(&recent, |a| a.throughput_at_least(0.5)),
            });
            uptime.push(web::UptimeSeries {
                label,
                hourly: series(&ring, |a| percent(a.uptime())),
            });
        }
        let avail = hourly.models.get(&model_id).cloned().unwrap_or_default();
        let share = |num: u64, den: u64| (den > 0).then(|| num as f64 * 100.0 / den as f64);
        let recent_avail: Vec<_> = avail.iter().filter(|(t, _)| *t >= perf_since).collect();
        let usage = usage.unwrap_or_default();
        // Effective pricing: what was paid per million tokens since the
        // start of the previous hour, per endpoint.
        let since_ms = ((now / 3600) - 1) * 3600 * 1000;
        let mut paid: BTreeMap<String, pb::EffectivePrice> = BTreeMap::new();
        for p in usage.prices.iter().filter(|p| p.hour_ms >= since_ms) {
            let agg = paid
                .entry(p.endpoint_id.clone())
                .or_insert_with(|| pb::EffectivePrice {
                    provider_name: p.provider_name.clone(),
                    endpoint_id: p.endpoint_id.clone(),
                    ..Default::default()
                });
            agg.requests += p.requests;
            agg.prompt_tokens += p.prompt_tokens;
            agg.completion_tokens += p.completion_tokens;
            agg.cached_tokens += p.cached_tokens;
            agg.prompt_cost_nanos += p.prompt_cost_nanos;
            agg.completion_cost_nanos += p.completion_cost_nanos;
        }
        let rate =
            |cost: i64, tokens: u64| (tokens > 0).then(|| cost as f64 / 1e9 / tokens as f64 * 1e6);
        let effective_pricing = paid
            .values()
            .map(|p| {
                let list = provider_of.get(p.endpoint_id.as_str());
                web::EffectivePrice {
                    provider: p.provider_name.clone(),
                    effective_input: rate(p.prompt_cost_nanos, p.prompt_tokens),
                    effective_output: rate(p.completion_cost_nanos, p.completion_tokens),
                    list_input: list.map(|e| per_million(e.rates.prompt)),
                    list_output: list.map(|e| per_million(e.rates.completion)),
                    tokens: p.prompt_tokens + p.completion_tokens,
                }
            })
            .collect();
        let page = web::model_page(&web::ModelPage {
            site,
            now,
            model: model_info(&entry, &live.endpoints, weekly_tokens),
            endpoints: entry
                .endpoints
                .iter()
                .map(|e| endpoint_row(e, &entry.model.name, live.endpoints.get(&e.id)))
                .collect(),
            latency,
            throughput,
            effective_pricing,
            top_apps: usage
                .top_apps
                .iter()
                .map(|a| web::AppUsage {
                    name: if a.title.is_empty() {
                        a.http_referer.clone()
                    } else {
                        a.title.clone()
                    },
                    url: Some(a.http_referer.clone()),
                    tokens: a.tokens,
                    requests: a.requests,
                })
                .collect(),
            daily_tokens: usage
                .daily
                .iter()
                .map(|d| web::DailyTokens {
                    date: d.date.clone(),
                    prompt: d.prompt_tokens,
                    completion: d.completion_tokens,
                    reasoning: d.reasoning_tokens,
                })
                .collect(),
            uptime,
            availability_with_fallbacks: recent_avail
                .iter()
                .map(|(t, a)| (*t, share(a.served, a.total)))
                .collect(),
            availability_without_routing: recent_avail
                .iter()
                .map(|(t, a)| (*t, share(a.first_ok, a.total)))
                .collect(),
        });
        (200, page)
    })
    .await
}

pub async fn rankings(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    let period = web::Period::from_query(&query);
    let st = state.clone();
    cached(
        &state,
        format!("/rankings?{}", period.as_param()),
        async move {
            let days = match period {
                web::Period::Day => 1,
                web::Period::Week => 7,
                web::Period::Month => 30,
            };
            let table = st.engine.catalog().current();
            let mut metering = st.metering.clone();
            let (rows, apps) = tokio::join!(
                tokens_by_model(&st, days.max(14)),
                ask(
                    "app rankings",
                    metering.get_app_rankings(pb::GetAppRankingsRequest {
                        start_date: days_ago(days - 1),
                        end_date: days_ago(0),
                        model: String::new(),
                    })
                ),
            );
            let since = days_ago(days - 1);
            let name_of = |id: &str| {
                table
                    .model(id)
                    .map_or_else(|| id.to_owned(), |m| m.model.name.clone())
            };
            let mut totals: BTreeMap<String, (u64, u64)> = BTreeMap::new();
            let mut per_day: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
            for row in &rows {
                let tokens = row.prompt_tokens + row.completion_tokens;
                if row.date >= since {
                    let t = totals.entry(row.model.clone()).or_default();
                    t.0 += tokens;
                    t.1 += row.requests;
                }
                *per_day
                    .entry(row.model.clone())
                    .or_default()
                    .entry(row.date.clone())
                    .or_default() += tokens;
            }
            let mut top: Vec<(String, (u64, u64))> = totals.into_iter().collect();
            top.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(&b.0)));
            let daily = top
                .iter()
                .take(5)
                .map(|(id, _)| web::ModelDailyTokens {
                    model_id: id.clone(),
                    name: name_of(id),
                    days: per_day
                        .get(id)
                        .map(|d| d.iter().map(|(k, v)| (k.clone(), *v)).collect())
                        .unwrap_or_default(),
                })
                .collect();
            let page = web::rankings(&web::Rankings {
                site: site(&headers),
                period,
                top_models: top
                    .iter()
                    .take(20)
                    .map(|(id, (tokens, requests))| web::RankedModel {
                        id: id.clone(),
                        name: name_of(id),
                        tokens: *tokens,
                        requests: *requests,
                    })
                    .collect(),
                top_apps: apps
                    .map(|a| a.apps)
                    .unwrap_or_default()
                    .into_iter()
                    .take(20)
                    .map(|a| web::AppUsage {
                        name: if a.title.is_empty() {
                            a.http_referer.clone()
                        } else {
                            a.title
                        },
                        url: Some(a.http_referer),
                        tokens: a.tokens,
                        requests: a.requests,
                    })
                    .collect(),
                daily,
            });
            (200, page)
        },
    )
    .await
}

pub async fn provider_page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(slug): Path<String>,
) -> Response {
    let st = state.clone();
    cached(&state, format!("/providers/{slug}"), async move {
        let site = site(&headers);
        let table = st.engine.catalog().current();
        let Some(provider) = table.providers.iter().find(|p| p.slug == slug).cloned() else {
            return (
                404,
                web::not_found(&site, &format!("No provider called {slug}.")),
            );
        };
        let mut endpoints: Vec<(Arc<EndpointRoute>, String)> = table
            .models
            .values()
            .flat_map(|m| {
                m.endpoints
                    .iter()
                    .filter(|e| e.provider_slug == slug)
                    .map(|e| (e.clone(), m.model.name.clone()))
            })
            .collect();
        endpoints.sort_by(|a, b| a.0.model_id.cmp(&b.0.model_id));
        let ids: Vec<String> = endpoints.iter().map(|(e, _)| e.id.clone()).collect();
        let perf = st.engine.perf();
        let (live, hourly) =
            tokio::join!(perf.read(&ids, 30), perf.hourly(&ids, &[], UPTIME_HOURS));
        let page = web::provider_page(&web::ProviderPage {
            site,
            now: Utc::now().timestamp(),
            provider: web::ProviderInfo {
                slug: provider.slug.clone(),
                name: provider.name.clone(),
                headquarters: provider.headquarters.clone(),
                datacenters: Vec::new(),
                privacy_policy_url: provider.privacy_policy_url.clone(),
                terms_of_service_url: provider.terms_of_service_url.clone(),
                status_page_url: provider.status_page_url.clone(),
                trains_on_data: provider.may_train,
                retains_prompts: provider.retains_prompts,
                retention_days: None,
                zero_data_retention: provider.zero_data_retention,
            },
            endpoints: endpoints
                .iter()
                .map(|(e, name)| endpoint_row(e, name, live.endpoints.get(&e.id)))
                .collect(),
            uptime: endpoints
                .iter()
                .map(|(e, name)| web::UptimeSeries {
                    label: name.clone(),
                    hourly: series(
                        hourly.endpoints.get(&e.id).map_or(&[][..], Vec::as_slice),
                        |a| percent(a.uptime()),
                    ),
                })
                .collect(),
        });
        (200, page)
    })
    .await
}

/// Any other path: the HTML not-found page for browsers, the JSON envelope
/// for API clients.
pub async fn fallback(headers: HeaderMap, uri: axum::http::Uri) -> Response {
    if uri.path().starts_with("/api/") {
        return crate::error::ApiError::RouteNotFound.into_response();
    }
    html(
        404,
        Arc::new(web::not_found(&site(&headers), "There is no page here.")),
    )
}
