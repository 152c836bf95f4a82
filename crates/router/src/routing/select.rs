//! From the requested model(s) and preferences to an ordered list of
//! endpoints per model. Filters are hard (an endpoint that fails one is never
//! tried, and the reason is reported); orderings only rank.
//!
//! Order of work per model: variant, provider filters (only/ignore/order
//! without fallbacks, quantizations, data policy, max_price), request fit
//! (context, max_tokens, parameters, modalities), health (open breakers and
//! 429 cooldowns drop out — unless most endpoints are out, then health is
//! ignored), then ranking: `order`, else `sort`, else load balancing;
//! performance preferences demote; a sticky endpoint goes first.

use std::cmp::Ordering;
use std::sync::Arc;
use std::time::Instant;

use rand::Rng;
use switchyard_kit::Price;

use super::health::{Admission, Health};
use super::needs::Needs;
use super::perf::PerfSnapshot;
use super::prefs::{DataCollection, Partition, Percentiles, ProviderPrefs, Sort, SortBy};
use crate::catalog_view::{EndpointRoute, ModelEntry, RoutingTable};
use crate::error::{ApiError, Availability};

/// At most this many endpoints of one model are tried per request.
pub const MAX_ENDPOINTS_PER_MODEL: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Standard,
    /// Sort by throughput.
    Nitro,
    /// Sort by price.
    Floor,
    /// Only zero-priced endpoints.
    Free,
}

#[derive(Debug, Clone)]
pub struct Candidate {
    pub endpoint: Arc<EndpointRoute>,
    pub model: Arc<ModelEntry>,
    /// The model id reported to the client (with `:free` when requested).
    pub served_model: String,
    /// Health was ignored for this model: most endpoints were out.
    pub panic: bool,
}

/// One requested model (or, with `partition: none`, all of them together).
#[derive(Debug)]
pub struct Group {
    pub requested: String,
    pub candidates: Result<Vec<Candidate>, ApiError>,
}

pub struct Context<'a> {
    pub table: &'a RoutingTable,
    pub prefs: &'a ProviderPrefs,
    pub needs: &'a Needs,
    pub health: &'a Health,
    pub perf: &'a PerfSnapshot,
    /// The endpoint this conversation stuck to, if any.
    pub sticky: Option<&'a str>,
    /// The request itself, for exact token counts near a context limit.
    pub request: Option<&'a switchyard_proto::common::v1::ChatRequest>,
    pub now: Instant,
}

/// Splits `author/slug:variant`; an exact catalog id wins over a variant.
pub fn resolve<'t>(
    table: &'t RoutingTable,
    requested: &str,
) -> Option<(&'t Arc<ModelEntry>, Variant)> {
    if let Some(entry) = table.model(requested) {
        return Some((entry, Variant::Standard));
    }
    let (base, variant) = requested.rsplit_once(':')?;
    let variant = match variant {
        "nitro" => Variant::Nitro,
        "floor" => Variant::Floor,
        "free" => Variant::Free,
        _ => return None,
    };
    table.model(base).map(|e| (e, variant))
}

pub fn plan(models: &[String], cx: &Context<'_>) -> Vec<Group> {
    let mut groups: Vec<Group> = models.iter().map(|m| plan_model(m, cx)).collect();
    let global_sort = cx.prefs.sort.filter(|s| s.partition == Partition::None);
    if let (Some(sort), true) = (global_sort, groups.len() > 1) {
        let requested = models.join(",");
        let mut all: Vec<Candidate> = Vec::new();
        let mut last_err = None;
        for g in groups {
            match g.candidates {
                Ok(c) => all.extend(c),
                Err(e) => last_err = Some(e),
            }
        }
        if all.is_empty() {
            let err = last_err.unwrap_or_else(|| ApiError::UnknownModel(models[0].clone()));
            return vec![Group {
                requested,
                candidates: Err(err),
            }];
        }
        sort_by(&mut all, sort, cx.perf, |c| &c.endpoint);
        groups = vec![Group {
            requested,
            candidates: Ok(all),
        }];
    }
    groups
}

fn plan_model(requested: &str, cx: &Context<'_>) -> Group {
    let candidates = (|| {
        let (entry, variant) = resolve(cx.table, requested)
            .ok_or_else(|| ApiError::UnknownModel(requested.to_owned()))?;
        let served_model = if variant == Variant::Free {
            requested.to_owned()
        } else {
            entry.model.id.clone()
        };
        if entry.endpoints.is_empty() {
            return Err(ApiError::NoEndpoints(Availability::new(
                "no_endpoints",
                requested,
                Vec::new(),
            )));
        }
        let prompt_tokens = prompt_tokens_for(entry, cx);
        let mut excluded: Vec<&'static str> = Vec::new();
        let mut kept: Vec<Arc<EndpointRoute>> = Vec::new();
        let takes_images = entry
            .model
            .architecture
            .as_ref()
            .is_some_and(|a| a.input_modalities.iter().any(|m| m == "image"));
        if cx.needs.image_input && !takes_images {
            excluded.push("modality");
        } else {
            for e in &entry.endpoints {
                match filter(e, variant, cx, prompt_tokens) {
                    Some(reason) if !excluded.contains(&reason) => excluded.push(reason),
                    Some(_) => {}
                    None => kept.push(e.clone()),
                }
            }
        }
        soft_capability_preference(&mut kept, cx);
        if kept.is_empty() {
            return Err(availability_error(requested, excluded, cx, prompt_tokens));
        }
        // Health: 429 cooldowns are always respected; open breakers drop out
        // unless most endpoints are out (then health is ignored: panic).
        let total = kept.len();
        let mut cooling_until: Option<Instant> = None;
        let mut ejected = 0;
        let mut healthy = Vec::with_capacity(total);
        for e in kept {
            match cx.health.unavailable(&e.id, cx.now) {
                Some(Admission::CoolingDown(until)) => {
                    cooling_until = Some(cooling_until.map_or(until, |u| u.min(until)));
                }
                Some(_) => ejected += 1,
                None => healthy.push(e),
            }
        }
        let panic = ejected * 2 > total && healthy.len() < total;
        let mut ordered = if panic {
            entry
                .endpoints
                .iter()
                .filter(|e| filter(e, variant, cx, prompt_tokens).is_none())
                .filter(|e| {
                    !matches!(
                        cx.health.unavailable(&e.id, cx.now),
                        Some(Admission::CoolingDown(_))
                    )
                })
                .cloned()
                .collect()
        } else {
            healthy
        };
        if ordered.is_empty() {
            return Err(match cooling_until {
                Some(until) => ApiError::RateLimitedUpstream {
                    retry_after_secs: until.saturating_duration_since(cx.now).as_secs().max(1),
                },
                None => availability_error(requested, vec!["unhealthy"], cx, prompt_tokens),
            });
        }
        rank(&mut ordered, variant, cx);
        ordered.truncate(MAX_ENDPOINTS_PER_MODEL);
        Ok(ordered
            .into_iter()
            .map(|endpoint| Candidate {
                endpoint,
                model: entry.clone(),
                served_model: served_model.clone(),
                panic,
            })
            .collect())
    })();
    Group {
        requested: requested.to_owned(),
        candidates,
    }
}

fn availability_error(
    requested: &str,
    excluded: Vec<&'static str>,
    cx: &Context<'_>,
    prompt_tokens: u64,
) -> ApiError {
    if excluded == ["context_length"] {
        return ApiError::ContextTooLong {
            requested: prompt_tokens + cx.needs.max_tokens.unwrap_or(0) as u64,
        };
    }
    ApiError::NoEndpoints(Availability::new(
        "constraint_filtered",
        requested,
        excluded,
    ))
}

/// Does `pattern` (slug, display name or full tag) name this endpoint?
pub fn matches(pattern: &str, e: &EndpointRoute) -> bool {
    if pattern.contains('/') {
        pattern.eq_ignore_ascii_case(&e.tag)
    } else {
        pattern.eq_ignore_ascii_case(&e.provider_slug)
            || pattern.eq_ignore_ascii_case(&e.provider_name)
    }
}

fn quantization_matches(wanted: &str, actual: &str) -> bool {
    wanted == actual
        || (wanted == "fp4" && matches!(actual, "mxfp4" | "nvfp4"))
        || (wanted == "fp8" && actual == "mxfp8")
}

fn over(price: Price, cap: Option<Price>) -> bool {
    cap.is_some_and(|cap| price > cap)
}

/// Prompt tokens for this model: the estimate, or an exact count with the
/// model's tokenizer when the estimate is too close to a context limit.
fn prompt_tokens_for(entry: &ModelEntry, cx: &Context<'_>) -> u64 {
    let estimate = cx.needs.prompt_tokens;
    let wanted = estimate + cx.needs.max_tokens.unwrap_or(0) as u64;
    let near_a_limit = entry
        .endpoints
        .iter()
        .any(|e| super::tokens::ambiguous(wanted, e.context_length as u64));
    match (
        near_a_limit,
        super::tokens::tokenizer(&entry.model),
        cx.request,
    ) {
        (true, Some(bpe), Some(request)) => super::tokens::count(bpe, request),
        _ => estimate,
    }
}

/// The hard filters; `Some(reason)` excludes the endpoint.
fn filter(
    e: &EndpointRoute,
    variant: Variant,
    cx: &Context<'_>,
    prompt_tokens: u64,
) -> Option<&'static str> {
    let p = cx.prefs;
    let needs = cx.needs;
    if variant == Variant::Free && !(e.rates.prompt.is_zero() && e.rates.completion.is_zero()) {
        return Some("free_variant");
    }
    if !p.only.is_empty() && !p.only.iter().any(|o| matches(o, e)) {
        return Some("allowed_providers");
    }
    if p.ignore.iter().any(|i| matches(i, e)) {
        return Some("allowed_providers");
    }
    if !p.allow_fallbacks && !p.order.is_empty() && !p.order.iter().any(|o| matches(o, e)) {
        return Some("allowed_providers");
    }
    if !p.quantizations.is_empty() {
        let actual = e
            .quantization
            .as_deref()
            .unwrap_or("unknown")
            .to_lowercase();
        if !p
            .quantizations
            .iter()
            .any(|q| quantization_matches(q, &actual))
        {
            return Some("quantization");
        }
    }
    if p.zdr && e.zero_data_retention != Some(true) {
        return Some("data_policy:zdr");
    }
    if p.data_collection == DataCollection::Deny
        && (e.may_train != Some(false) || e.retains_prompts != Some(false))
        && e.zero_data_retention != Some(true)
    {
        return Some("data_policy:training");
    }
    let m = &p.max_price;
    if over(e.rates.prompt, m.prompt)
        || over(e.rates.completion, m.completion)
        || over(e.rates.request, m.request)
        || e.image_price.is_some_and(|i| over(i, m.image))
    {
        return Some("max_price");
    }
    let wanted = prompt_tokens + needs.max_tokens.unwrap_or(0) as u64;
    if wanted > e.context_length as u64 {
        return Some("context_length");
    }
    if let (Some(max), Some(limit)) = (needs.max_tokens, e.max_completion_tokens)
        && max > limit
    {
        return Some("context_length");
    }
    if p.require_parameters && !needs.params.iter().all(|param| supports(e, param)) {
        return Some("require_parameters");
    }
    None
}

fn supports(e: &EndpointRoute, param: &str) -> bool {
    e.supported_parameters.iter().any(|s| s == param)
        // Aliases: either spelling of the token limit; structured outputs
        // imply response_format.
        || (param == "max_completion_tokens" && e.supported_parameters.iter().any(|s| s == "max_tokens"))
        || (param == "response_format" && e.supported_parameters.iter().any(|s| s == "structured_outputs"))
}

/// Without `require_parameters`, tools and structured outputs are still a
/// soft requirement: if some endpoints support them, only those are used.
fn soft_capability_preference(kept: &mut Vec<Arc<EndpointRoute>>, cx: &Context<'_>) {
    for param in cx.needs.soft.iter() {
        if kept.iter().any(|e| supports(e, param)) {
            kept.retain(|e| supports(e, param));
        }
    }
}

fn rank(endpoints: &mut Vec<Arc<EndpointRoute>>, variant: Variant, cx: &Context<'_>) {
    let p = cx.prefs;
    let sort = p.sort.or(match variant {
        Variant::Nitro => Some(Sort {
            by: SortBy::Throughput,
            partition: Partition::Model,
        }),
        Variant::Floor => Some(Sort {
            by: SortBy::Price,
            partition: Partition::Model,
        }),
        _ => None,
    });
    if let Some(sort) = sort {
        sort_by(endpoints, sort, cx.perf, |e| e);
    } else if p.order.is_empty() {
        load_balance(endpoints, cx);
    }
    if !p.order.is_empty() {
        // Stable: ordered providers first, in the given order; the rest keep
        // their (sorted or cheapest-first) order behind them.
        endpoints.sort_by_key(|e| {
            p.order
                .iter()
                .position(|o| matches(o, e))
                .unwrap_or(usize::MAX)
        });
    }
    demote_slow(endpoints, cx);
    if let Some(sticky) = cx.sticky.filter(|_| p.order.is_empty())
        && let Some(i) = endpoints.iter().position(|e| e.id == sticky)
    {
        let e = endpoints.remove(i);
        endpoints.insert(0, e);
    }
}

fn sort_by<T>(
    items: &mut [T],
    sort: Sort,
    perf: &PerfSnapshot,
    endpoint: impl Fn(&T) -> &Arc<EndpointRoute>,
) {
    let key = |e: &EndpointRoute| -> Option<f64> {
        let agg = perf.get(&e.id);
        match sort.by {
            SortBy::Price => Some(e.blended_price() as f64),
            SortBy::Throughput => agg.and_then(|a| a.throughput_at_least(0.5)).map(|t| -t),
            SortBy::Latency => agg.and_then(|a| a.ttft_quantile(0.5)),
            SortBy::Exacto => agg.and_then(|a| a.uptime()).map(|u| -u),
        }
    };
    // Missing data sorts last; ties keep the cheapest-first catalog order.
    items.sort_by(|a, b| match (key(endpoint(a)), key(endpoint(b))) {
        (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    });
}

/// Default load balancing: endpoints that failed in the last 30 s go last;
/// among the rest, the first is drawn with weight 1/price²; the others
/// follow cheapest first.
fn load_balance(endpoints: &mut Vec<Arc<EndpointRoute>>, cx: &Context<'_>) {
    let (mut stable, unstable): (Vec<_>, Vec<_>) = endpoints
        .drain(..)
        .partition(|e| !cx.health.recently_failed(&e.id, cx.now));
    if stable.len() > 1 {
        let first = weighted_pick(&stable, &mut rand::rng());
        let chosen = stable.remove(first);
        stable.insert(0, chosen);
    }
    stable.extend(unstable);
    *endpoints = stable;
}

fn weight(e: &EndpointRoute) -> f64 {
    // Free endpoints get the weight of a tiny price rather than infinity.
    let price = (e.blended_price() as f64).max(1.0);
    1.0 / (price * price)
}

pub fn weighted_pick(endpoints: &[Arc<EndpointRoute>], rng: &mut impl Rng) -> usize {
    let weights: Vec<f64> = endpoints.iter().map(|e| weight(e)).collect();
    let total: f64 = weights.iter().sum();
    let mut x = rng.random::<f64>() * total;
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    endpoints.len() - 1
}

fn meets(
    cutoffs: &Percentiles,
    value_at: impl Fn(f64) -> Option<f64>,
    ok: impl Fn(f64, f64) -> bool,
) -> bool {
    [
        (cutoffs.p50, 0.5),
        (cutoffs.p75, 0.75),
        (cutoffs.p90, 0.9),
        (cutoffs.p99, 0.99),
    ]
    .into_iter()
    .all(|(cutoff, q)| match (cutoff, value_at(q)) {
        (Some(cutoff), Some(v)) => ok(v, cutoff),
        // No cutoff, or no data yet: nothing to hold against it.
        _ => true,
    })
}

/// Endpoints below `preferred_min_throughput` or above
/// `preferred_max_latency` move to the end (never removed).
fn demote_slow(endpoints: &mut [Arc<EndpointRoute>], cx: &Context<'_>) {
    let p = cx.prefs;
    if p.preferred_min_throughput.is_none() && p.preferred_max_latency.is_none() {
        return;
    }
    endpoints.sort_by_key(|e| {
        let Some(agg) = cx.perf.get(&e.id) else {
            return false;
        };
        let fast_enough = p
            .preferred_min_throughput
            .is_none_or(|c| meets(&c, |q| agg.throughput_at_least(q), |v, c| v >= c));
        let quick_enough = p.preferred_max_latency.is_none_or(|c| {
            meets(
                &c,
                |q| agg.ttft_quantile(q).map(|ms| ms / 1000.0),
                |v, c| v <= c,
            )
        });
        !(fast_enough && quick_enough)
    });
}
