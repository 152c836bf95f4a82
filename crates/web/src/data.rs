//! The plain data the pages are rendered from. Callers fill these from the catalog and usage stores.
//!
//! Units, everywhere: prices are USD per million tokens (`None` = unknown, `Some(0.0)` = free); timestamps are
//! unix seconds (UTC); days are `"YYYY-MM-DD"`; latency is milliseconds (time to first token); throughput is
//! output tokens per second; uptime and availability are percentages 0–100 (`None` = no data).

use crate::query::ModelsQuery;

/// One timestamped sample; `None` is a gap (no data for that moment), drawn as a break in the line.
pub type TimeSeries = Vec<(i64, Option<f64>)>;

/// Site-wide settings every page needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Site {
    /// Product name shown in the header and page titles, e.g. `"Switchyard"`.
    pub name: String,
    /// Public API base URL used in sample code, e.g. `"http://localhost:8080/api/v1"` (no trailing slash needed).
    pub base_url: String,
}

impl Site {
    /// Builds the site settings.
    pub fn new(name: impl Into<String>, base_url: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            base_url: base_url.into(),
        }
    }
}

impl Default for Site {
    fn default() -> Self {
        Self::new("Switchyard", "http://localhost:8080/api/v1")
    }
}

/// A provider as it is linked from other pages (`/providers/{slug}`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProviderRef {
    /// URL slug, e.g. `"deepinfra"`.
    pub slug: String,
    /// Display name, e.g. `"DeepInfra"`.
    pub name: String,
}

impl ProviderRef {
    /// Builds a provider reference.
    pub fn new(slug: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            slug: slug.into(),
            name: name.into(),
        }
    }
}

/// A model as the catalog describes it. The models list uses every field; the model page uses the descriptive
/// ones (the live-stat fields are taken from [`Endpoint`] rows there).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelInfo {
    /// `author/slug`, e.g. `"openai/gpt-4"`; the page lives at `/{id}`.
    pub id: String,
    /// Display name, e.g. `"OpenAI: GPT-4"`.
    pub name: String,
    /// Plain-text description (escaped on output; blank lines separate paragraphs).
    pub description: String,
    /// When the model was added, unix seconds.
    pub created: i64,
    /// Largest context window across endpoints, tokens.
    pub context_length: u64,
    /// Lowest list price for input tokens, USD per million.
    pub input_price: Option<f64>,
    /// Lowest list price for output tokens, USD per million.
    pub output_price: Option<f64>,
    /// Training-data cutoff as shown to people, e.g. `"2023-12"`, when known.
    pub knowledge_cutoff: Option<String>,
    /// E.g. `["text", "image"]`.
    pub input_modalities: Vec<String>,
    /// E.g. `["text"]`.
    pub output_modalities: Vec<String>,
    /// Providers serving the model (used by the provider filter).
    pub providers: Vec<ProviderRef>,
    /// Median throughput across endpoints, tokens/s.
    pub throughput: Option<f64>,
    /// Median latency (time to first token) across endpoints, ms.
    pub latency_ms: Option<f64>,
    /// Tokens processed in the last 7 days (the "most used" sort).
    pub weekly_tokens: u64,
}

/// One provider endpoint serving one model: a row of the model page's provider table and of the provider page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Endpoint {
    pub provider: ProviderRef,
    /// The model served, `author/slug` (used on the provider page).
    pub model_id: String,
    /// The model's display name (used on the provider page).
    pub model_name: String,
    /// Endpoint tag usable in `provider.order`, e.g. `"deepinfra/fp8"`.
    pub tag: String,
    /// Context window, tokens.
    pub context_length: u64,
    /// Maximum completion tokens, when limited.
    pub max_output_tokens: Option<u64>,
    /// USD per million input tokens.
    pub input_price: Option<f64>,
    /// USD per million output tokens.
    pub output_price: Option<f64>,
    /// USD per million cached input tokens read.
    pub cache_read_price: Option<f64>,
    /// USD per million input tokens written to the cache.
    pub cache_write_price: Option<f64>,
    /// E.g. `"fp8"`, `"bf16"`.
    pub quantization: Option<String>,
    /// Recent median time to first token, ms.
    pub latency_ms: Option<f64>,
    /// Recent median throughput, tokens/s.
    pub throughput: Option<f64>,
    /// Recent uptime, percent 0–100.
    pub uptime: Option<f64>,
}

/// One provider's values over time (a line in a chart).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProviderSeries {
    /// Provider display name (the legend entry).
    pub provider: String,
    pub points: TimeSeries,
}

/// What users actually paid at one provider over the past hour, next to the list price.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EffectivePrice {
    /// Provider display name.
    pub provider: String,
    /// Paid USD per million input tokens after caching discounts, traffic-weighted.
    pub effective_input: Option<f64>,
    /// Paid USD per million output tokens, traffic-weighted.
    pub effective_output: Option<f64>,
    /// List USD per million input tokens.
    pub list_input: Option<f64>,
    /// List USD per million output tokens.
    pub list_output: Option<f64>,
    /// Tokens observed in the window (the weight of this row).
    pub tokens: u64,
}

/// An app's usage (attributed through `HTTP-Referer` / `X-Title`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppUsage {
    /// App title.
    pub name: String,
    /// App site; linked only when it is an http(s) URL.
    pub url: Option<String>,
    pub tokens: u64,
    pub requests: u64,
}

/// One UTC day of token usage.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DailyTokens {
    /// `"YYYY-MM-DD"`.
    pub date: String,
    pub prompt: u64,
    pub completion: u64,
    pub reasoning: u64,
}

/// One row of hourly uptime bars.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UptimeSeries {
    /// Row label: a provider name on the model page, a model name on the provider page.
    pub label: String,
    /// `(hour_start_unix, uptime_percent)`; hours that are absent or `None` show grey.
    pub hourly: TimeSeries,
}

/// Everything `/{author}/{slug}` shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelPage {
    pub site: Site,
    /// Render time, unix seconds: the uptime bars cover the 72 hours ending at this hour
    /// (0 = end at the newest sample).
    pub now: i64,
    pub model: ModelInfo,
    /// One per provider endpoint.
    pub endpoints: Vec<Endpoint>,
    /// Latency (ms) per provider over time.
    pub latency: Vec<ProviderSeries>,
    /// Throughput (tokens/s) per provider over time.
    pub throughput: Vec<ProviderSeries>,
    /// Effective vs list price per provider, past hour.
    pub effective_pricing: Vec<EffectivePrice>,
    /// Top apps this month; the page sorts them by tokens.
    pub top_apps: Vec<AppUsage>,
    /// Daily tokens, oldest first.
    pub daily_tokens: Vec<DailyTokens>,
    /// Hourly uptime per provider.
    pub uptime: Vec<UptimeSeries>,
    /// Last 24 h: percent of requests the router answered (with fallbacks).
    pub availability_with_fallbacks: TimeSeries,
    /// Last 24 h: percent a single provider would have answered without routing.
    pub availability_without_routing: TimeSeries,
}

/// Everything `/models` shows: the whole catalog plus the visitor's filters (see [`ModelsQuery::parse`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelsIndex {
    pub site: Site,
    pub models: Vec<ModelInfo>,
    pub query: ModelsQuery,
}

/// The window the rankings cover.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Period {
    Day,
    #[default]
    Week,
    Month,
}

impl Period {
    /// All periods, in display order.
    pub const ALL: [Period; 3] = [Period::Day, Period::Week, Period::Month];

    /// The `period=` query value.
    pub fn as_param(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
        }
    }

    /// Parses `day`, `week` or `month`.
    pub fn from_param(value: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_param().eq_ignore_ascii_case(value.trim()))
    }

    /// Reads `period=` from a raw query string; anything missing or unknown is [`Period::Week`].
    pub fn from_query(query: &str) -> Self {
        crate::html::query_pairs(query)
            .filter(|(key, _)| key == "period")
            .find_map(|(_, value)| Self::from_param(&value))
            .unwrap_or_default()
    }

    /// `Today`, `This week`, `This month`.
    pub fn label(self) -> &'static str {
        match self {
            Period::Day => "Today",
            Period::Week => "This week",
            Period::Month => "This month",
        }
    }
}

/// A model's usage in the selected period.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RankedModel {
    /// `author/slug`.
    pub id: String,
    pub name: String,
    pub tokens: u64,
    pub requests: u64,
}

/// Tokens per day for one model (a stack in the rankings chart).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelDailyTokens {
    pub model_id: String,
    pub name: String,
    /// `("YYYY-MM-DD", tokens)`, any order; days missing for one model count as zero.
    pub days: Vec<(String, u64)>,
}

/// Everything `/rankings` shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rankings {
    pub site: Site,
    pub period: Period,
    /// Top models in the period; the page sorts them by tokens.
    pub top_models: Vec<RankedModel>,
    /// Top apps in the period; the page sorts them by tokens.
    pub top_apps: Vec<AppUsage>,
    /// Tokens per day for the top models (the first eight are charted).
    pub daily: Vec<ModelDailyTokens>,
}

/// What is known about a provider. `None` flags render as "Unknown".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProviderInfo {
    pub slug: String,
    pub name: String,
    /// E.g. `"US"` or `"San Francisco, US"`.
    pub headquarters: Option<String>,
    /// Countries or regions, e.g. `["US", "EU"]`.
    pub datacenters: Vec<String>,
    pub privacy_policy_url: Option<String>,
    pub terms_of_service_url: Option<String>,
    pub status_page_url: Option<String>,
    /// Whether the provider may train on prompts and completions.
    pub trains_on_data: Option<bool>,
    /// Whether the provider keeps prompts after answering.
    pub retains_prompts: Option<bool>,
    /// How long prompts are kept, when they are.
    pub retention_days: Option<u32>,
    /// Whether the provider offers zero data retention.
    pub zero_data_retention: Option<bool>,
}

/// Everything `/providers/{slug}` shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProviderPage {
    pub site: Site,
    /// Render time, unix seconds (see [`ModelPage::now`]).
    pub now: i64,
    pub provider: ProviderInfo,
    /// The provider's endpoints, one per model.
    pub endpoints: Vec<Endpoint>,
    /// Hourly uptime: one row for the provider overall, or one per model.
    pub uptime: Vec<UptimeSeries>,
}
