//! `/{author}/{slug}`: one model's overview, providers, performance, prices paid, apps, activity, uptime and code.

use std::fmt::Write as _;

use super::serving::{RowSubject, endpoints_table, uptime_rows};
use super::{apps_table, open_section, paragraphs};
use crate::chart::{self, BarSeries, LineOptions, LineSeries, Size, Unit};
use crate::data::{EffectivePrice, ModelPage, ProviderSeries};
use crate::format;
use crate::html::Esc;
use crate::layout::{Nav, document};

const SECTIONS: [(&str, &str); 7] = [
    ("providers", "Providers"),
    ("performance", "Performance"),
    ("effective-pricing", "Effective pricing"),
    ("apps", "Apps"),
    ("activity", "Activity"),
    ("uptime", "Uptime"),
    ("sample-code", "Sample code"),
];

/// Apps listed at most.
const TOP_APPS: usize = 20;

/// Renders a model page.
pub fn model_page(page: &ModelPage) -> String {
    let mut main = String::with_capacity(48 * 1024);
    overview(&mut main, page);
    providers(&mut main, page);
    performance(&mut main, page);
    effective_pricing(&mut main, &page.effective_pricing);
    apps(&mut main, page);
    activity(&mut main, page);
    uptime(&mut main, page);
    super::code::sample_code(&mut main, &page.site.base_url, &page.model.id);
    let m = &page.model;
    let name = if m.name.is_empty() { &m.id } else { &m.name };
    let description = format!(
        "{name}: {} context, {} input and {} output per million tokens.",
        format::tokens(m.context_length),
        format::price(m.input_price),
        format::price(m.output_price)
    );
    document(&page.site, name, &description, Nav::Models, &main)
}

fn overview(out: &mut String, page: &ModelPage) {
    let m = &page.model;
    let name = if m.name.is_empty() { &m.id } else { &m.name };
    let author = m.id.split('/').next().unwrap_or_default();
    let _ = write!(
        out,
        r#"<section id="overview" aria-labelledby="overview-title"><p class="crumbs"><a href="/models">Models</a> / {}</p><h1 id="overview-title">{}</h1><div class="id-row"><code id="model-id">{}</code><button type="button" data-copy="{}" aria-label="Copy model id">Copy id</button></div>"#,
        Esc(author),
        Esc(name),
        Esc(&m.id),
        Esc(&m.id)
    );
    out.push_str(r#"<dl class="facts">"#);
    let mut fact = |label: &str, value: String| {
        let _ = write!(out, "<div><dt>{label}</dt><dd>{}</dd></div>", Esc(&value));
    };
    if m.created > 0 {
        fact("Created", format::date(m.created));
    }
    fact(
        "Context",
        format!("{} tokens", format::thousands(m.context_length)),
    );
    let per_million = |p: Option<f64>| {
        p.filter(|p| p.is_finite()).map_or_else(
            || "Unknown".to_owned(),
            |p| format!("{} / M tokens", format::usd(p)),
        )
    };
    fact("Input", per_million(m.input_price));
    fact("Output", per_million(m.output_price));
    if let Some(cutoff) = m
        .knowledge_cutoff
        .as_deref()
        .filter(|c| !c.trim().is_empty())
    {
        fact("Knowledge cutoff", cutoff.to_owned());
    }
    out.push_str("</dl>");
    if !m.input_modalities.is_empty() || !m.output_modalities.is_empty() {
        out.push_str(r#"<ul class="badges" aria-label="Modalities"><li class="muted">Input</li>"#);
        for modality in &m.input_modalities {
            let _ = write!(out, r#"<li class="badge in">{}</li>"#, Esc(modality));
        }
        out.push_str(r#"<li class="muted" aria-hidden="true">→</li><li class="muted">Output</li>"#);
        for modality in &m.output_modalities {
            let _ = write!(out, r#"<li class="badge">{}</li>"#, Esc(modality));
        }
        out.push_str("</ul>");
    }
    let description = paragraphs(&m.description);
    if !description.is_empty() {
        let _ = write!(out, r#"<div class="desc">{description}</div>"#);
    }
    out.push_str(r#"<nav class="subnav" aria-label="Sections"><ul>"#);
    for (id, label) in SECTIONS {
        let _ = write!(out, r##"<li><a href="#{id}">{label}</a></li>"##);
    }
    out.push_str("</ul></nav></section>");
}

fn providers(out: &mut String, page: &ModelPage) {
    let n = page.endpoints.len();
    let lede = match n {
        0 => String::new(),
        1 => "One provider serves this model.".to_owned(),
        n => format!(
            "{n} providers serve this model; the router picks among them and falls back when one fails."
        ),
    };
    open_section(out, "providers", "Providers", &lede);
    if n == 0 {
        out.push_str(&chart::empty_note(
            "Providers",
            "No providers yet",
            "No provider serves this model right now.",
        ));
    } else {
        endpoints_table(
            out,
            &page.endpoints,
            RowSubject::Provider,
            "Provider endpoints for this model",
        );
        out.push_str(r#"<p class="muted">Latency is the median time to first token; throughput is the median output tokens per second.</p>"#);
    }
    out.push_str("</section>");
}

fn series(list: &[ProviderSeries]) -> Vec<LineSeries<'_>> {
    list.iter()
        .map(|s| LineSeries {
            name: &s.provider,
            points: &s.points,
            dashed: false,
        })
        .collect()
}

fn performance(out: &mut String, page: &ModelPage) {
    open_section(
        out,
        "performance",
        "Performance",
        "Per provider over time. Gaps mean no requests in that interval.",
    );
    out.push_str(r#"<div class="grid-2"><div><h3>Latency (time to first token, ms)</h3>"#);
    let zero = LineOptions {
        zero_based: true,
        ..LineOptions::default()
    };
    out.push_str(&chart::line_chart(
        "Latency by provider",
        Unit::Millis,
        &series(&page.latency),
        zero,
        "Latency appears after the first requests.",
    ));
    out.push_str(r#"</div><div><h3>Throughput (tokens per second)</h3>"#);
    out.push_str(&chart::line_chart(
        "Throughput by provider",
        Unit::TokensPerSec,
        &series(&page.throughput),
        zero,
        "Throughput appears after the first requests.",
    ));
    out.push_str("</div></div></section>");
}

fn effective_pricing(out: &mut String, rows: &[EffectivePrice]) {
    open_section(
        out,
        "effective-pricing",
        "Effective pricing",
        "What requests actually cost per million tokens over the past hour, after cache discounts, next to the list price.",
    );
    let observed: Vec<&EffectivePrice> = rows.iter().collect();
    if observed.is_empty() {
        out.push_str(&chart::empty_state(
            "Effective pricing",
            "Effective prices appear once requests have been billed in the past hour.",
        ));
        out.push_str("</section>");
        return;
    }
    out.push_str(r#"<div class="table-wrap"><table><caption class="sr-only">Effective and list prices per provider, past hour</caption><thead><tr><th scope="col">Provider</th><th scope="col" class="num">Effective input</th><th scope="col" class="num">List input</th><th scope="col" class="num">Effective output</th><th scope="col" class="num">List output</th><th scope="col" class="num">Tokens observed</th></tr></thead><tbody>"#);
    for r in &observed {
        let _ = write!(
            out,
            r#"<tr><th scope="row">{}</th><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td></tr>"#,
            Esc(&r.provider),
            format::price(r.effective_input),
            format::price(r.list_input),
            format::price(r.effective_output),
            format::price(r.list_output),
            format::tokens(r.tokens)
        );
    }
    out.push_str("</tbody>");
    let total_tokens: u64 = observed.iter().map(|r| r.tokens).sum();
    if observed.len() > 1 && total_tokens > 0 {
        let weighted = |f: fn(&EffectivePrice) -> Option<f64>| {
            let (sum, weight) = observed
                .iter()
                .filter_map(|r| {
                    f(r).filter(|v| v.is_finite())
                        .map(|v| (v * r.tokens as f64, r.tokens as f64))
                })
                .fold((0.0, 0.0), |(s, w), (v, t)| (s + v, w + t));
            (weight > 0.0).then(|| sum / weight)
        };
        let _ = write!(
            out,
            r#"<tfoot><tr><th scope="row">All providers (weighted)</th><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td></tr></tfoot>"#,
            format::price(weighted(|r| r.effective_input)),
            format::price(weighted(|r| r.list_input)),
            format::price(weighted(|r| r.effective_output)),
            format::price(weighted(|r| r.list_output)),
            format::tokens(total_tokens)
        );
    }
    out.push_str("</table></div>");
    let categories: Vec<String> = observed.iter().map(|r| r.provider.clone()).collect();
    let chart = |title: &str,
                 effective: fn(&EffectivePrice) -> Option<f64>,
                 list: fn(&EffectivePrice) -> Option<f64>| {
        let mut bars = BarSeries::new(
            "Effective price",
            observed.iter().map(|r| effective(r)).collect(),
        );
        bars.reference = observed.iter().map(|r| list(r)).collect();
        let label = format!("{title} per provider: effective vs list price");
        let chart = chart::grouped_bars(
            &label,
            Unit::UsdPerM,
            &categories,
            &[bars],
            Some("List price"),
            Size::Normal,
            "No billed requests in the past hour.",
        );
        format!("<div><h3>{title}</h3>{chart}</div>")
    };
    out.push_str(r#"<div class="grid-2">"#);
    out.push_str(&chart(
        "Input price",
        |r| r.effective_input,
        |r| r.list_input,
    ));
    out.push_str(&chart(
        "Output price",
        |r| r.effective_output,
        |r| r.list_output,
    ));
    out.push_str("</div></section>");
}

fn apps(out: &mut String, page: &ModelPage) {
    open_section(
        out,
        "apps",
        "Apps using this model",
        "Top apps this month by tokens, attributed through the HTTP-Referer and X-Title headers.",
    );
    if page.top_apps.is_empty() {
        out.push_str(&chart::empty_state(
            "Top apps",
            "Apps appear here once they send attributed requests.",
        ));
    } else {
        // Rank the whole list before cutting it, so the cut keeps the largest apps.
        let mut ranked = page.top_apps.clone();
        ranked.sort_by_key(|app| std::cmp::Reverse(app.tokens));
        ranked.truncate(TOP_APPS);
        apps_table(out, &ranked, "Top apps using this model this month");
    }
    out.push_str("</section>");
}

fn activity(out: &mut String, page: &ModelPage) {
    let days = &page.daily_tokens;
    let (prompt, completion, reasoning) = days.iter().fold((0u64, 0u64, 0u64), |(p, c, r), d| {
        (
            p.saturating_add(d.prompt),
            c.saturating_add(d.completion),
            r.saturating_add(d.reasoning),
        )
    });
    let total = prompt.saturating_add(completion).saturating_add(reasoning);
    let lede = if total > 0 {
        format!(
            "{} tokens over {} days: {} prompt, {} completion, {} reasoning.",
            format::tokens(total),
            days.len(),
            format::tokens(prompt),
            format::tokens(completion),
            format::tokens(reasoning)
        )
    } else {
        "Tokens per UTC day.".to_owned()
    };
    open_section(out, "activity", "Recent activity", &lede);
    let categories: Vec<String> = days.iter().map(|d| format::day_label(&d.date)).collect();
    let as_series = |name: &str, f: fn(&crate::data::DailyTokens) -> u64| {
        BarSeries::new(name, days.iter().map(|d| Some(f(d) as f64)).collect())
    };
    let stacks = [
        as_series("Prompt", |d| d.prompt),
        as_series("Completion", |d| d.completion),
        as_series("Reasoning", |d| d.reasoning),
    ];
    out.push_str(&chart::stacked_bars(
        "Tokens per day by type",
        Unit::Tokens,
        &categories,
        &stacks,
        Size::Wide,
        "Daily token counts appear after the first requests.",
    ));
    out.push_str("</section>");
}

fn uptime(out: &mut String, page: &ModelPage) {
    open_section(
        out,
        "uptime",
        "Uptime",
        "Hourly share of successful requests per provider over the last 3 days.",
    );
    uptime_rows(out, &page.uptime, page.now, "provider");
    let _ = write!(out, "<h3>Availability over the last 24 hours</h3>");
    let with_label = format!("With {} fallbacks", page.site.name);
    let lines = [
        LineSeries {
            name: &with_label,
            points: &page.availability_with_fallbacks,
            dashed: false,
        },
        LineSeries {
            name: "Without routing (single provider)",
            points: &page.availability_without_routing,
            dashed: true,
        },
    ];
    out.push_str(&chart::line_chart(
        "Availability with and without fallback routing",
        Unit::Percent,
        &lines,
        LineOptions {
            min_span: 5.0,
            size: Size::Wide,
            ..LineOptions::default()
        },
        "Availability appears after the first requests.",
    ));
    out.push_str("</section>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{AppUsage, ModelInfo, Site};

    fn page() -> ModelPage {
        ModelPage {
            site: Site::new("Switchyard", "http://localhost:8080/api/v1/"),
            model: ModelInfo {
                id: "openai/gpt-4".into(),
                name: "GPT-4".into(),
                ..ModelInfo::default()
            },
            ..ModelPage::default()
        }
    }

    #[test]
    fn apps_are_ranked_by_tokens_and_capped() {
        let mut p = page();
        p.top_apps = (0..30)
            .map(|i| AppUsage {
                name: format!("app{i}"),
                url: None,
                tokens: i,
                requests: 1,
            })
            .collect();
        let html = model_page(&p);
        let first = html.find(">app29<").unwrap();
        let second = html.find(">app28<").unwrap();
        assert!(first < second);
        assert!(!html.contains(">app9<"), "only the top 20 are listed");
    }

    #[test]
    fn weighted_effective_price_row() {
        let mut p = page();
        p.effective_pricing = vec![
            EffectivePrice {
                provider: "A".into(),
                effective_input: Some(1.0),
                list_input: Some(2.0),
                tokens: 300,
                ..EffectivePrice::default()
            },
            EffectivePrice {
                provider: "B".into(),
                effective_input: Some(3.0),
                list_input: Some(4.0),
                tokens: 100,
                ..EffectivePrice::default()
            },
        ];
        let html = model_page(&p);
        assert!(html.contains("All providers (weighted)</th><td class=\"num\">$1.50</td><td class=\"num\">$2.50</td>"), "{html}");
    }
}
