//! The `/models` filters: parsed from a GET query string, applied in Rust, written back into links.

use std::cmp::Ordering;
use std::fmt::Write as _;

use crate::data::ModelInfo;
use crate::html::{encode_query, query_pairs};

/// How `/models` is ordered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ModelSort {
    /// Most recently added first.
    #[default]
    Newest,
    /// Cheapest input price first (then output price); unknown prices last.
    Price,
    /// Largest context first.
    Context,
    /// Fastest throughput first; unknown last.
    Throughput,
    /// Lowest latency first; unknown last.
    Latency,
    /// Most tokens in the last week first.
    MostUsed,
}

impl ModelSort {
    /// All orders, in menu order.
    pub const ALL: [ModelSort; 6] = [
        ModelSort::Newest,
        ModelSort::Price,
        ModelSort::Context,
        ModelSort::Throughput,
        ModelSort::Latency,
        ModelSort::MostUsed,
    ];

    /// The `sort=` query value.
    pub fn as_param(self) -> &'static str {
        match self {
            ModelSort::Newest => "newest",
            ModelSort::Price => "price",
            ModelSort::Context => "context",
            ModelSort::Throughput => "throughput",
            ModelSort::Latency => "latency",
            ModelSort::MostUsed => "popular",
        }
    }

    /// Menu label.
    pub fn label(self) -> &'static str {
        match self {
            ModelSort::Newest => "Newest",
            ModelSort::Price => "Price: low to high",
            ModelSort::Context => "Context: high to low",
            ModelSort::Throughput => "Throughput: high to low",
            ModelSort::Latency => "Latency: low to high",
            ModelSort::MostUsed => "Most used",
        }
    }

    /// Parses a `sort=` value.
    pub fn from_param(value: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_param().eq_ignore_ascii_case(value.trim()))
    }
}

/// The visitor's filters on `/models`. Every field is optional; the default shows everything, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelsQuery {
    /// `q=`: words that must all appear in the model id or name (case-insensitive).
    pub text: String,
    /// `provider=`: provider slug (or name) that must serve the model.
    pub provider: Option<String>,
    /// `min_context=`: minimum context length in tokens (`128000`, `128k` and `1m` are accepted).
    pub min_context: Option<u64>,
    /// `max_price=`: maximum input price, USD per million tokens (`0` or `free` = free models only).
    pub max_price: Option<f64>,
    /// `modality=`: an input modality the model must accept, e.g. `image`.
    pub modality: Option<String>,
    /// `sort=`: see [`ModelSort::as_param`].
    pub sort: ModelSort,
}

impl ModelsQuery {
    /// Parses a raw query string such as `q=gpt&provider=openai&min_context=128k&sort=price`, with or without the
    /// leading `?`. Unknown keys and unparseable values are ignored, so any URL renders a page.
    pub fn parse(query: &str) -> Self {
        let mut parsed = Self::default();
        for (key, value) in query_pairs(query) {
            let value = value.trim();
            match key.as_str() {
                "q" => parsed.text = value.to_owned(),
                "provider" => parsed.provider = non_empty(value),
                "min_context" => parsed.min_context = parse_count(value).filter(|n| *n > 0),
                "max_price" => parsed.max_price = parse_price(value),
                "modality" => parsed.modality = non_empty(value).map(|m| m.to_ascii_lowercase()),
                "sort" => parsed.sort = ModelSort::from_param(value).unwrap_or_default(),
                _ => {}
            }
        }
        parsed
    }

    /// Serialises the query back (only non-default fields), without the leading `?`.
    pub fn to_query_string(&self) -> String {
        let mut out = String::new();
        let mut push = |key: &str, value: &str| {
            let sep = if out.is_empty() { "" } else { "&" };
            let _ = write!(out, "{sep}{key}={}", encode_query(value));
        };
        if !self.text.trim().is_empty() {
            push("q", self.text.trim());
        }
        if let Some(provider) = &self.provider {
            push("provider", provider);
        }
        if let Some(n) = self.min_context {
            push("min_context", &n.to_string());
        }
        if let Some(p) = self.max_price {
            push("max_price", &p.to_string());
        }
        if let Some(m) = &self.modality {
            push("modality", m);
        }
        if self.sort != ModelSort::default() {
            push("sort", self.sort.as_param());
        }
        out
    }

    /// Whether any filter (not counting the sort order) is set.
    pub fn is_filtered(&self) -> bool {
        !self.text.trim().is_empty()
            || self.provider.is_some()
            || self.min_context.is_some()
            || self.max_price.is_some()
            || self.modality.is_some()
    }

    /// Whether `model` passes every filter.
    pub fn matches(&self, model: &ModelInfo) -> bool {
        if !self.text.trim().is_empty() {
            let haystack = format!("{} {}", model.id, model.name).to_lowercase();
            if !self
                .text
                .to_lowercase()
                .split_whitespace()
                .all(|word| haystack.contains(word))
            {
                return false;
            }
        }
        if let Some(wanted) = &self.provider
            && !model
                .providers
                .iter()
                .any(|p| p.slug.eq_ignore_ascii_case(wanted) || p.name.eq_ignore_ascii_case(wanted))
        {
            return false;
        }
        if let Some(min) = self.min_context
            && model.context_length < min
        {
            return false;
        }
        if let Some(max) = self.max_price
            && !model.input_price.is_some_and(|p| p <= max + 1e-12)
        {
            return false;
        }
        if let Some(modality) = &self.modality
            && !model
                .input_modalities
                .iter()
                .any(|m| m.eq_ignore_ascii_case(modality))
        {
            return false;
        }
        true
    }

    /// The models that pass the filters, in the requested order (ties broken by id, so the order is stable).
    pub fn apply<'a>(&self, models: &'a [ModelInfo]) -> Vec<&'a ModelInfo> {
        let mut kept: Vec<&ModelInfo> = models.iter().filter(|m| self.matches(m)).collect();
        kept.sort_by(|a, b| self.compare(a, b).then_with(|| a.id.cmp(&b.id)));
        kept
    }

    fn compare(&self, a: &ModelInfo, b: &ModelInfo) -> Ordering {
        match self.sort {
            ModelSort::Newest => b.created.cmp(&a.created),
            ModelSort::Price => ascending_known(a.input_price, b.input_price)
                .then_with(|| ascending_known(a.output_price, b.output_price)),
            ModelSort::Context => b.context_length.cmp(&a.context_length),
            ModelSort::Throughput => descending_known(a.throughput, b.throughput),
            ModelSort::Latency => ascending_known(a.latency_ms, b.latency_ms),
            ModelSort::MostUsed => b.weekly_tokens.cmp(&a.weekly_tokens),
        }
    }
}

/// Orders present values ascending and puts missing or non-finite ones last.
fn ascending_known(a: Option<f64>, b: Option<f64>) -> Ordering {
    match (a.filter(|v| v.is_finite()), b.filter(|v| v.is_finite())) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// Orders present values descending and puts missing or non-finite ones last.
fn descending_known(a: Option<f64>, b: Option<f64>) -> Ordering {
    match (a.filter(|v| v.is_finite()), b.filter(|v| v.is_finite())) {
        (Some(x), Some(y)) => y.total_cmp(&x),
        (x, y) => ascending_known(x, y),
    }
}

fn non_empty(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_owned())
}

/// `128000`, `128k`, `1m`, `1.5M` → tokens.
fn parse_count(value: &str) -> Option<u64> {
    let lower = value.to_ascii_lowercase().replace([',', '_'], "");
    let (number, scale) = match lower.as_bytes().last()? {
        b'k' => (&lower[..lower.len() - 1], 1e3),
        b'm' => (&lower[..lower.len() - 1], 1e6),
        _ => (lower.as_str(), 1.0),
    };
    let n = number.trim().parse::<f64>().ok()? * scale;
    (0.0..1e15).contains(&n).then_some(n.round() as u64)
}

fn parse_price(value: &str) -> Option<f64> {
    if value.eq_ignore_ascii_case("free") {
        return Some(0.0);
    }
    let n = value.trim_start_matches('$').parse::<f64>().ok()?;
    (n.is_finite() && n >= 0.0).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ProviderRef;

    fn model(
        id: &str,
        created: i64,
        context: u64,
        input: Option<f64>,
        tps: Option<f64>,
    ) -> ModelInfo {
        ModelInfo {
            id: id.to_owned(),
            name: id.to_uppercase(),
            created,
            context_length: context,
            input_price: input,
            output_price: input.map(|p| p * 3.0),
            input_modalities: vec!["text".into()],
            providers: vec![ProviderRef::new("openai", "OpenAI")],
            throughput: tps,
            latency_ms: tps.map(|t| 10_000.0 / t),
            weekly_tokens: context,
            ..ModelInfo::default()
        }
    }

    #[test]
    fn parses_every_field() {
        let q = ModelsQuery::parse(
            "?q=gpt+4&provider=openai&min_context=128k&max_price=%241.5&modality=Image&sort=price",
        );
        assert_eq!(q.text, "gpt 4");
        assert_eq!(q.provider.as_deref(), Some("openai"));
        assert_eq!(q.min_context, Some(128_000));
        assert_eq!(q.max_price, Some(1.5));
        assert_eq!(q.modality.as_deref(), Some("image"));
        assert_eq!(q.sort, ModelSort::Price);
        assert!(q.is_filtered());
    }

    #[test]
    fn ignores_garbage() {
        let q = ModelsQuery::parse("min_context=lots&max_price=-3&sort=random&provider=&x=1&%%%");
        assert_eq!(q, ModelsQuery::default());
        assert!(!q.is_filtered());
        assert_eq!(ModelsQuery::parse(""), ModelsQuery::default());
        assert_eq!(ModelsQuery::parse("max_price=free").max_price, Some(0.0));
        assert_eq!(
            ModelsQuery::parse("min_context=1.5M").min_context,
            Some(1_500_000)
        );
        assert_eq!(ModelsQuery::parse("max_price=NaN").max_price, None);
    }

    #[test]
    fn round_trips_through_the_query_string() {
        let q = ModelsQuery::parse(
            "q=llama 3&provider=deep infra&min_context=32000&max_price=0.5&modality=image&sort=latency",
        );
        assert_eq!(ModelsQuery::parse(&q.to_query_string()), q);
        assert_eq!(ModelsQuery::default().to_query_string(), "");
    }

    #[test]
    fn filters() {
        let mut vision = model("google/gemini-flash", 3, 1_000_000, Some(0.1), Some(150.0));
        vision.input_modalities.push("image".into());
        vision.providers = vec![ProviderRef::new("google-vertex", "Google Vertex")];
        let models = vec![
            model("openai/gpt-4", 1, 8_192, Some(30.0), Some(40.0)),
            model("openai/gpt-4o-mini", 2, 128_000, Some(0.15), None),
            vision,
            model("meta/llama-free", 4, 32_000, None, Some(90.0)),
        ];
        let ids = |q: &str| {
            ModelsQuery::parse(q)
                .apply(&models)
                .iter()
                .map(|m| m.id.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids("q=GPT 4o"), ["openai/gpt-4o-mini"]);
        assert_eq!(ids("provider=Google+Vertex"), ["google/gemini-flash"]);
        assert_eq!(ids("provider=google-vertex"), ["google/gemini-flash"]);
        assert_eq!(
            ids("min_context=100k"),
            ["google/gemini-flash", "openai/gpt-4o-mini"]
        );
        assert_eq!(
            ids("max_price=0.15"),
            ["google/gemini-flash", "openai/gpt-4o-mini"]
        );
        assert_eq!(ids("modality=image"), ["google/gemini-flash"]);
        assert_eq!(ids("q=nothing-matches"), Vec::<&str>::new());
    }

    #[test]
    fn sorts_with_unknowns_last() {
        let models = vec![
            model("a/old-cheap", 1, 4_000, Some(0.1), None),
            model("b/new-pricey", 9, 200_000, Some(10.0), Some(50.0)),
            model("c/unknown-price", 5, 32_000, None, Some(200.0)),
            model("d/mid", 7, 64_000, Some(1.0), Some(80.0)),
        ];
        let ids = |q: &str| {
            ModelsQuery::parse(q)
                .apply(&models)
                .iter()
                .map(|m| m.id.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            ids(""),
            ["b/new-pricey", "d/mid", "c/unknown-price", "a/old-cheap"]
        );
        assert_eq!(
            ids("sort=price"),
            ["a/old-cheap", "d/mid", "b/new-pricey", "c/unknown-price"]
        );
        assert_eq!(
            ids("sort=context"),
            ["b/new-pricey", "d/mid", "c/unknown-price", "a/old-cheap"]
        );
        assert_eq!(
            ids("sort=throughput"),
            ["c/unknown-price", "d/mid", "b/new-pricey", "a/old-cheap"]
        );
        assert_eq!(
            ids("sort=latency"),
            ["c/unknown-price", "d/mid", "b/new-pricey", "a/old-cheap"]
        );
        assert_eq!(
            ids("sort=popular"),
            ["b/new-pricey", "d/mid", "c/unknown-price", "a/old-cheap"]
        );
    }
}
