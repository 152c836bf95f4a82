//! `/models`: the whole catalog, filtered and sorted server-side from the GET form's query.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::model_href;
use crate::data::{ModelInfo, ModelsIndex};
use crate::format;
use crate::html::Esc;
use crate::layout::{Nav, document};
use crate::query::{ModelSort, ModelsQuery};

/// Descriptions on the list are cut to this many characters (the model page shows all of it).
const DESCRIPTION_CHARS: usize = 260;

const CONTEXT_CHOICES: [u64; 8] = [
    4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 200_000, 1_000_000,
];
const PRICE_CHOICES: [f64; 6] = [0.0, 0.5, 1.0, 5.0, 10.0, 20.0];

/// Renders `/models`.
pub fn models_index(page: &ModelsIndex) -> String {
    let query = &page.query;
    let shown = query.apply(&page.models);
    let providers = provider_options(&page.models);
    let mut main = String::with_capacity(4096 + shown.len() * 900);
    let _ = write!(
        main,
        r#"<h1>Models</h1><p class="lede">{} models from {} providers, one API. Prices are USD per million tokens.</p><div class="index-layout">"#,
        page.models.len(),
        providers.len()
    );
    filter_form(&mut main, page, &providers);
    main.push_str(r#"<section aria-labelledby="results-title"><h2 id="results-title" class="sr-only">Results</h2>"#);
    let _ = write!(
        main,
        r#"<p class="result-count" aria-live="polite">Showing <span id="shown-count">{}</span> of {} models · sorted by {}</p>"#,
        shown.len(),
        page.models.len(),
        query.sort.label().to_lowercase()
    );
    if shown.is_empty() {
        let detail = if page.models.is_empty() {
            "The catalog is empty."
        } else {
            "No models match these filters."
        };
        let _ = write!(
            main,
            r#"<div class="chart-empty" data-empty="true" role="note"><strong>{detail}</strong><span><a href="/models">Clear all filters</a></span></div>"#
        );
    } else {
        main.push_str(r#"<ol class="model-list" id="model-list">"#);
        for model in &shown {
            model_card(&mut main, model);
        }
        main.push_str("</ol>");
    }
    main.push_str("</section></div>");
    let title = if query.is_filtered() {
        "Models (filtered)"
    } else {
        "Models"
    };
    document(
        &page.site,
        title,
        "Browse every model: prices, context length, speed and usage.",
        Nav::Models,
        &main,
    )
}

/// Provider slug → display name, for the provider menu.
fn provider_options(models: &[ModelInfo]) -> BTreeMap<String, String> {
    let mut providers = BTreeMap::new();
    for p in models.iter().flat_map(|m| m.providers.iter()) {
        providers
            .entry(p.slug.clone())
            .or_insert_with(|| p.name.clone());
    }
    providers
}

fn filter_form(out: &mut String, page: &ModelsIndex, providers: &BTreeMap<String, String>) {
    let q: &ModelsQuery = &page.query;
    let _ = write!(
        out,
        r#"<aside><form class="filters" method="get" action="/models" role="search" aria-labelledby="filters-title"><h2 id="filters-title">Filter models</h2><div class="field"><label for="filter-q">Search</label><input id="filter-q" name="q" type="search" value="{}" placeholder="Name or id" autocomplete="off"></div>"#,
        Esc(&q.text)
    );

    let mut provider_list: Vec<(String, String)> = vec![(String::new(), "Any provider".to_owned())];
    let mut names: Vec<(&String, &String)> = providers.iter().collect();
    names.sort_by_key(|(_, name)| name.to_lowercase());
    provider_list.extend(
        names
            .into_iter()
            .map(|(slug, name)| (slug.clone(), name.clone())),
    );
    select(
        out,
        "filter-provider",
        "provider",
        "Provider",
        &provider_list,
        q.provider.as_deref().unwrap_or(""),
    );

    let mut contexts: Vec<(String, String)> = vec![(String::new(), "Any length".to_owned())];
    let mut context_values = CONTEXT_CHOICES.to_vec();
    if let Some(n) = q.min_context.filter(|n| !context_values.contains(n)) {
        context_values.push(n);
        context_values.sort_unstable();
    }
    contexts.extend(context_values.into_iter().map(|n| {
        (
            n.to_string(),
            format!("{} tokens or more", format::tokens(n)),
        )
    }));
    select(
        out,
        "filter-context",
        "min_context",
        "Minimum context",
        &contexts,
        &q.min_context.map(|n| n.to_string()).unwrap_or_default(),
    );

    let mut prices: Vec<(String, String)> = vec![(String::new(), "Any price".to_owned())];
    let mut price_values = PRICE_CHOICES.to_vec();
    if let Some(p) = q.max_price.filter(|p| !price_values.contains(p)) {
        price_values.push(p);
        price_values.sort_by(f64::total_cmp);
    }
    prices.extend(price_values.into_iter().map(|p| {
        let label = if p == 0.0 {
            "Free only".to_owned()
        } else {
            format!("Up to {} / M input", format::usd(p))
        };
        (p.to_string(), label)
    }));
    select(
        out,
        "filter-price",
        "max_price",
        "Maximum input price",
        &prices,
        &q.max_price.map(|p| p.to_string()).unwrap_or_default(),
    );

    let mut modalities: Vec<String> = page
        .models
        .iter()
        .flat_map(|m| m.input_modalities.iter().map(|x| x.to_ascii_lowercase()))
        .collect();
    modalities.extend(q.modality.clone());
    modalities.sort();
    modalities.dedup();
    let mut modality_list: Vec<(String, String)> = vec![(String::new(), "Any input".to_owned())];
    modality_list.extend(modalities.into_iter().map(|m| (m.clone(), capitalise(&m))));
    select(
        out,
        "filter-modality",
        "modality",
        "Input modality",
        &modality_list,
        q.modality.as_deref().unwrap_or(""),
    );

    let sorts: Vec<(String, String)> = ModelSort::ALL
        .iter()
        .map(|s| (s.as_param().to_owned(), s.label().to_owned()))
        .collect();
    select(
        out,
        "filter-sort",
        "sort",
        "Sort by",
        &sorts,
        q.sort.as_param(),
    );

    out.push_str(r#"<div class="form-actions"><button class="btn-primary" type="submit">Apply</button><a href="/models">Reset</a></div></form></aside>"#);
}

fn select(
    out: &mut String,
    id: &str,
    name: &str,
    label: &str,
    options: &[(String, String)],
    selected: &str,
) {
    let _ = write!(
        out,
        r#"<div class="field"><label for="{id}">{label}</label><select id="{id}" name="{name}">"#
    );
    for (value, text) in options {
        let mark = if value.eq_ignore_ascii_case(selected) {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            out,
            r#"<option value="{}"{mark}>{}</option>"#,
            Esc(value),
            Esc(text)
        );
    }
    out.push_str("</select></div>");
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn model_card(out: &mut String, m: &ModelInfo) {
    let author = m.id.split('/').next().unwrap_or_default();
    let search = format!("{} {}", m.id, m.name).to_lowercase();
    let name = if m.name.is_empty() { &m.id } else { &m.name };
    let _ = write!(
        out,
        r#"<li data-search="{}"><article class="model-card"><h3><a href="{}">{}</a></h3><div class="mid"><code>{}</code> · by {}"#,
        Esc(&search),
        Esc(&model_href(&m.id)),
        Esc(name),
        Esc(&m.id),
        Esc(author)
    );
    if m.created > 0 {
        let _ = write!(out, " · added {}", format::date(m.created));
    }
    out.push_str("</div>");
    let description = m
        .description
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if !description.is_empty() {
        let short = if description.chars().count() > DESCRIPTION_CHARS {
            let mut cut: String = description.chars().take(DESCRIPTION_CHARS).collect();
            cut.push('…');
            cut
        } else {
            description
        };
        let _ = write!(out, r#"<p class="desc">{}</p>"#, Esc(&short));
    }
    let _ = write!(
        out,
        r#"<ul class="stats"><li><strong>{}</strong> context</li>"#,
        format::tokens(m.context_length)
    );
    if m.input_price.is_none() && m.output_price.is_none() {
        out.push_str("<li>Pricing not published</li>");
    } else {
        let _ = write!(
            out,
            "<li><strong>{}</strong>/M input</li><li><strong>{}</strong>/M output</li>",
            format::price(m.input_price),
            format::price(m.output_price)
        );
    }
    if let Some(t) = m.throughput.filter(|t| t.is_finite()) {
        let _ = write!(
            out,
            "<li><strong>{}</strong></li>",
            format::tokens_per_sec(t)
        );
    }
    if let Some(l) = m.latency_ms.filter(|l| l.is_finite()) {
        let _ = write!(
            out,
            "<li><strong>{}</strong> latency</li>",
            format::millis(l)
        );
    }
    if m.weekly_tokens > 0 {
        let _ = write!(
            out,
            "<li><strong>{}</strong> tokens/week</li>",
            format::tokens(m.weekly_tokens)
        );
    }
    out.push_str("</ul>");
    if !m.input_modalities.is_empty() {
        out.push_str(r#"<ul class="badges" aria-label="Input modalities">"#);
        for modality in &m.input_modalities {
            let _ = write!(out, r#"<li class="badge in">{}</li>"#, Esc(modality));
        }
        out.push_str("</ul>");
    }
    out.push_str("</article></li>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{ProviderRef, Site};

    fn catalog() -> Vec<ModelInfo> {
        let mk = |id: &str, name: &str, created: i64, price: f64, modalities: &[&str]| ModelInfo {
            id: id.into(),
            name: name.into(),
            description: "A model.".into(),
            created,
            context_length: 128_000,
            input_price: Some(price),
            output_price: Some(price * 4.0),
            input_modalities: modalities.iter().map(|m| (*m).to_owned()).collect(),
            providers: vec![ProviderRef::new(id.split('/').next().unwrap(), "Prov")],
            ..ModelInfo::default()
        };
        vec![
            mk("openai/gpt-4o", "GPT-4o", 2, 2.5, &["text", "image"]),
            mk("meta/llama-3-8b", "Llama 3 8B", 1, 0.05, &["text"]),
        ]
    }

    #[test]
    fn filters_and_keeps_form_state() {
        let page = ModelsIndex {
            site: Site::default(),
            models: catalog(),
            query: ModelsQuery::parse("q=llama&sort=price&max_price=0.07"),
        };
        let html = models_index(&page);
        assert!(html.contains(r#"href="/meta/llama-3-8b""#));
        assert!(!html.contains(r#"href="/openai/gpt-4o""#));
        assert!(html.contains(r#"value="llama""#));
        assert!(html.contains(r#"<option value="price" selected>"#));
        assert!(
            html.contains(r#"<option value="0.07" selected>"#),
            "custom price kept as an option"
        );
        assert!(html.contains(r#"Showing <span id="shown-count">1</span> of 2 models"#));
        assert!(html.contains(r#"<label for="filter-q">"#));
    }

    #[test]
    fn no_match_shows_an_empty_state() {
        let page = ModelsIndex {
            site: Site::default(),
            models: catalog(),
            query: ModelsQuery::parse("q=zzz"),
        };
        let html = models_index(&page);
        assert!(html.contains(r#"data-empty="true""#) && html.contains("No models match"));
        let empty = models_index(&ModelsIndex::default());
        assert!(empty.contains("The catalog is empty."));
    }

    #[test]
    fn long_descriptions_are_cut_and_escaped() {
        let mut models = catalog();
        models[0].description = format!("<script>alert(1)</script> {}", "word ".repeat(200));
        let html = models_index(&ModelsIndex {
            models,
            ..ModelsIndex::default()
        });
        assert!(!html.contains("<script>alert"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains('…'));
    }
}
