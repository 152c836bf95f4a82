//! The `provider` routing preferences object, parsed and validated once.
//! Field semantics follow OpenRouter's (reference section 2.5).

use serde::Deserialize;
use serde_json::Value;
use switchyard_kit::Price;

use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SortBy {
    Price,
    Throughput,
    Latency,
    /// Quality-first for tool calls; without tool-call quality data yet it
    /// orders by success rate, then throughput.
    Exacto,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Partition {
    /// Keep the `models` order; sort endpoints within each model.
    #[default]
    Model,
    /// Sort the endpoints of all listed models together.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub by: SortBy,
    pub partition: Partition,
}

/// Percentile cutoffs; every given one must be met.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Percentiles {
    pub p50: Option<f64>,
    pub p75: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
}

/// Hard price caps, USD per million tokens (prompt, completion) or per unit.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MaxPrice {
    /// Per token, converted from the per-million figure.
    pub prompt: Option<Price>,
    pub completion: Option<Price>,
    pub request: Option<Price>,
    pub image: Option<Price>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DataCollection {
    #[default]
    Allow,
    Deny,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProviderPrefs {
    pub order: Vec<String>,
    pub allow_fallbacks: bool,
    pub require_parameters: bool,
    pub data_collection: DataCollection,
    pub zdr: bool,
    pub only: Vec<String>,
    pub ignore: Vec<String>,
    pub quantizations: Vec<String>,
    pub sort: Option<Sort>,
    pub preferred_min_throughput: Option<Percentiles>,
    /// Seconds.
    pub preferred_max_latency: Option<Percentiles>,
    pub max_price: MaxPrice,
}

impl ProviderPrefs {
    pub fn defaults() -> ProviderPrefs {
        ProviderPrefs {
            allow_fallbacks: true,
            ..Default::default()
        }
    }

    /// Load balancing applies only when neither `sort` nor `order` is set.
    pub fn load_balanced(&self) -> bool {
        self.sort.is_none() && self.order.is_empty()
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::BadRequest(msg.into())
}

fn strings(v: &Value, field: &str) -> Result<Vec<String>, ApiError> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(|s| s.trim().to_owned())
                    .ok_or_else(|| bad(format!("provider.{field} must be a list of strings")))
            })
            .collect(),
        _ => Err(bad(format!("provider.{field} must be a list of strings"))),
    }
}

fn number(v: &Value, field: &str) -> Result<Option<f64>, ApiError> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => Ok(n.as_f64().filter(|x| x.is_finite() && *x >= 0.0)),
        // The spec types prices as strings; docs examples use numbers.
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && *x >= 0.0)
            .map(Some)
            .ok_or_else(|| bad(format!("provider.{field} must be a non-negative number"))),
        _ => Err(bad(format!(
            "provider.{field} must be a non-negative number"
        ))),
    }
}

fn percentiles(v: &Value, field: &str) -> Result<Option<Percentiles>, ApiError> {
    match v {
        Value::Null => Ok(None),
        Value::Number(_) | Value::String(_) => Ok(number(v, field)?.map(|p50| Percentiles {
            p50: Some(p50),
            ..Default::default()
        })),
        Value::Object(map) => {
            let mut out = Percentiles::default();
            for (k, value) in map {
                let slot = match k.as_str() {
                    "p50" => &mut out.p50,
                    "p75" => &mut out.p75,
                    "p90" => &mut out.p90,
                    "p99" => &mut out.p99,
                    other => {
                        return Err(bad(format!("provider.{field}.{other} is not a percentile")));
                    }
                };
                *slot = number(value, field)?;
            }
            Ok(Some(out))
        }
        _ => Err(bad(format!(
            "provider.{field} must be a number or percentile object"
        ))),
    }
}

/// USD per million tokens -> exact USD per token (decimal shift, no floats
/// in the result).
fn per_million(v: &Value, field: &str) -> Result<Option<Price>, ApiError> {
    per_unit(v, field, 6)
}

fn per_unit(v: &Value, field: &str, shift: usize) -> Result<Option<Price>, ApiError> {
    let text = match v {
        Value::Null => return Ok(None),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_owned(),
        _ => return Err(bad(format!("provider.max_price.{field} must be a number"))),
    };
    let price: Price = text.parse().map_err(|_| {
        bad(format!(
            "provider.max_price.{field} must be a non-negative number"
        ))
    })?;
    Ok(Some(Price::from_atto(
        price.atto() / 10u128.pow(shift as u32),
    )))
}

const KNOWN_QUANTIZATIONS: &[&str] = &[
    "int4", "int8", "fp4", "mxfp4", "nvfp4", "fp6", "fp8", "mxfp8", "fp16", "bf16", "fp32",
    "unknown",
];

/// Parses the request's `provider` value (absent = defaults).
pub fn parse(value: Option<&Value>) -> Result<ProviderPrefs, ApiError> {
    let mut prefs = ProviderPrefs::defaults();
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(prefs);
    };
    let obj = value
        .as_object()
        .ok_or_else(|| bad("provider must be an object"))?;
    for (key, v) in obj {
        match key.as_str() {
            "order" => prefs.order = strings(v, key)?,
            "only" => prefs.only = strings(v, key)?,
            "ignore" => prefs.ignore = strings(v, key)?,
            "quantizations" => {
                prefs.quantizations = strings(v, key)?
                    .into_iter()
                    .map(|q| q.to_lowercase())
                    .collect();
                if let Some(q) = prefs
                    .quantizations
                    .iter()
                    .find(|q| !KNOWN_QUANTIZATIONS.contains(&q.as_str()))
                {
                    return Err(bad(format!(
                        "provider.quantizations: unknown quantization {q:?}"
                    )));
                }
            }
            "allow_fallbacks" => prefs.allow_fallbacks = v.as_bool().unwrap_or(true),
            "require_parameters" => prefs.require_parameters = v.as_bool().unwrap_or(false),
            "zdr" => prefs.zdr = v.as_bool().unwrap_or(false),
            "data_collection" => {
                prefs.data_collection = match v.as_str() {
                    None | Some("allow") => DataCollection::Allow,
                    Some("deny") => DataCollection::Deny,
                    Some(other) => {
                        return Err(bad(format!(
                            "provider.data_collection {other:?} is not allow|deny"
                        )));
                    }
                }
            }
            "sort" => prefs.sort = parse_sort(v)?,
            "preferred_min_throughput" => prefs.preferred_min_throughput = percentiles(v, key)?,
            "preferred_max_latency" => prefs.preferred_max_latency = percentiles(v, key)?,
            "max_price" => {
                let Some(m) = v.as_object() else {
                    if v.is_null() {
                        continue;
                    }
                    return Err(bad("provider.max_price must be an object"));
                };
                for (k, p) in m {
                    match k.as_str() {
                        "prompt" => prefs.max_price.prompt = per_million(p, k)?,
                        "completion" => prefs.max_price.completion = per_million(p, k)?,
                        "request" => prefs.max_price.request = per_unit(p, k, 0)?,
                        "image" => prefs.max_price.image = per_unit(p, k, 0)?,
                        // audio and future keys: accepted, not enforced yet.
                        _ => {}
                    }
                }
            }
            // Accepted and ignored: provider-specific options and flags that
            // do not change routing here (enforce_distillable_text, options).
            _ => {}
        }
    }
    Ok(prefs)
}

fn parse_sort(v: &Value) -> Result<Option<Sort>, ApiError> {
    let by = |s: &str| -> Result<SortBy, ApiError> {
        serde_json::from_value(Value::String(s.to_owned())).map_err(|_| {
            bad(format!(
                "provider.sort {s:?} is not price|throughput|latency|exacto"
            ))
        })
    };
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(Sort {
            by: by(s)?,
            partition: Partition::Model,
        })),
        Value::Object(map) => {
            let partition = match map.get("partition").and_then(Value::as_str) {
                None | Some("model") => Partition::Model,
                Some("none") => Partition::None,
                Some(other) => {
                    return Err(bad(format!(
                        "provider.sort.partition {other:?} is not model|none"
                    )));
                }
            };
            match map.get("by").and_then(Value::as_str) {
                Some(s) => Ok(Some(Sort {
                    by: by(s)?,
                    partition,
                })),
                None => Ok(None),
            }
        }
        _ => Err(bad("provider.sort must be a string or {by, partition}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_load_balance() {
        let p = parse(None).unwrap();
        assert!(p.allow_fallbacks && p.load_balanced());
        assert!(
            !parse(Some(&json!({"order": ["openai"]})))
                .unwrap()
                .load_balanced()
        );
        assert!(
            !parse(Some(&json!({"sort": "price"})))
                .unwrap()
                .load_balanced()
        );
    }

    #[test]
    fn every_field_parses() {
        let p = parse(Some(&json!({
            "order": ["openai", "DeepInfra"], "allow_fallbacks": false, "require_parameters": true,
            "data_collection": "deny", "zdr": true, "only": ["a"], "ignore": ["b"],
            "quantizations": ["FP8", "int4"], "sort": {"by": "throughput", "partition": "none"},
            "preferred_min_throughput": {"p90": 50}, "preferred_max_latency": 1.5,
            "max_price": {"prompt": 1, "completion": "2.5", "request": 0.01},
            "options": {"openai": {"x": 1}}, "enforce_distillable_text": true
        })))
        .unwrap();
        assert_eq!(p.order, ["openai", "DeepInfra"]);
        assert!(!p.allow_fallbacks && p.require_parameters && p.zdr);
        assert_eq!(p.data_collection, DataCollection::Deny);
        assert_eq!(p.quantizations, ["fp8", "int4"]);
        assert_eq!(
            p.sort,
            Some(Sort {
                by: SortBy::Throughput,
                partition: Partition::None
            })
        );
        assert_eq!(p.preferred_min_throughput.unwrap().p90, Some(50.0));
        assert_eq!(p.preferred_max_latency.unwrap().p50, Some(1.5));
        assert_eq!(p.max_price.prompt.unwrap().to_string(), "0.000001");
        assert_eq!(p.max_price.completion.unwrap().to_string(), "0.0000025");
        assert_eq!(p.max_price.request.unwrap().to_string(), "0.01");
    }

    #[test]
    fn rejects_nonsense() {
        for bad_value in [
            json!("openai"),
            json!({"sort": "fastest"}),
            json!({"sort": {"by": "price", "partition": "sometimes"}}),
            json!({"data_collection": "maybe"}),
            json!({"quantizations": ["fp7"]}),
            json!({"order": "openai"}),
            json!({"max_price": {"prompt": -1}}),
            json!({"preferred_max_latency": {"p42": 1}}),
        ] {
            assert!(parse(Some(&bad_value)).is_err(), "{bad_value}");
        }
    }
}
