//! Renders every page from the preview's sample data (and from empty data) and checks the markup a browser and a
//! screen reader rely on: sections, headings, escaping, links, chart data counts and empty states.

#[path = "../examples/preview/sample.rs"]
mod sample;

use std::collections::HashSet;

use switchyard_web::{
    ModelPage, ModelsIndex, Period, ProviderPage, Rankings, Site, model_page, models_index,
    not_found, provider_page, rankings,
};

/// Every `data-points="N"` in document order.
fn data_points(html: &str) -> Vec<usize> {
    html.split(r#"data-points=""#)
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().parse().unwrap())
        .collect()
}

/// Every value of `attr="…"` in document order.
fn attr_values<'a>(html: &'a str, attr: &str) -> Vec<&'a str> {
    let needle = format!(r#" {attr}=""#);
    html.split(needle.as_str())
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap())
        .collect()
}

/// Checks document-wide invariants every page must keep.
fn assert_well_formed(html: &str) {
    assert!(html.starts_with("<!doctype html><html lang=\"en\">"));
    assert!(html.ends_with("</html>"));
    for tag in [
        "section", "table", "svg", "figure", "ul", "ol", "main", "nav", "form", "dl", "pre", "div",
    ] {
        let opened =
            html.matches(&format!("<{tag} ")).count() + html.matches(&format!("<{tag}>")).count();
        let closed = html.matches(&format!("</{tag}>")).count();
        assert_eq!(opened, closed, "unbalanced <{tag}>");
    }
    // Exactly one script and one stylesheet: ours.
    assert_eq!(html.matches("<script").count(), 1, "injected script");
    assert_eq!(html.matches("<style").count(), 1);
    assert_eq!(html.matches("<h1").count(), 1, "one h1 per page");
    // Headings never skip a level going down.
    let mut last = 0;
    for (i, _) in html.match_indices("<h") {
        let Some(level) = html[i + 2..].chars().next().and_then(|c| c.to_digit(10)) else {
            continue;
        };
        assert!(level <= last + 1, "heading jumps from h{last} to h{level}");
        last = level;
    }
    let mut ids = HashSet::new();
    for id in attr_values(html, "id") {
        assert!(ids.insert(id), "duplicate id {id}");
    }
    for href in attr_values(html, "href") {
        assert!(
            href.starts_with('/')
                || href.starts_with('#')
                || href.starts_with("https://")
                || href.starts_with("http://"),
            "unexpected href {href}"
        );
    }
    for label in attr_values(html, "for") {
        assert!(ids.contains(label), "label for missing control {label}");
    }
    let bare_inf = html.match_indices("inf").any(|(i, _)| {
        let before = html[..i]
            .chars()
            .next_back()
            .is_some_and(char::is_alphanumeric);
        let after = html[i + 3..]
            .chars()
            .next()
            .is_some_and(char::is_alphanumeric);
        !before && !after
    });
    assert!(
        !html.contains("NaN") && !bare_inf,
        "non-finite number leaked"
    );
    // Every drawn chart has data; empty ones are placeholders instead.
    assert!(
        data_points(html).iter().all(|n| *n > 0),
        "a chart was drawn without data"
    );
}

fn count_some(points: &[(i64, Option<f64>)]) -> usize {
    points.iter().filter(|p| p.1.is_some()).count()
}

#[test]
fn model_page_shows_every_section_with_real_data() {
    let page = sample::model_page();
    let html = model_page(&page);
    assert_well_formed(&html);
    for id in [
        "overview",
        "providers",
        "performance",
        "effective-pricing",
        "apps",
        "activity",
        "uptime",
        "sample-code",
    ] {
        assert!(
            html.contains(&format!(r#"id="{id}""#)),
            "missing section {id}"
        );
        if id != "overview" {
            assert!(html.contains(&format!(r#"aria-labelledby="{id}-title""#)));
            assert!(
                html.contains(&format!(r##"href="#{id}""##)),
                "section nav lacks {id}"
            );
        }
    }
    assert!(
        !html.contains(r#"data-empty="true""#),
        "realistic data leaves nothing empty"
    );
    assert!(html.contains("Meta: Llama 3.1 70B Instruct"));
    assert!(html.contains(r#"data-copy="meta-llama/llama-3.1-70b-instruct""#));
    assert!(
        html.contains("Jul 20, 2024")
            && html.contains("131,072 tokens")
            && html.contains("$0.23 / M tokens")
    );
    assert!(html.contains("December 2023"));
    assert_eq!(
        html.matches(r#"<tr><th scope="row"><a href="/providers/"#)
            .count(),
        4
    );
    assert!(html.contains(r#"href="https://cline.bot""#));
    assert!(html.contains("Acme internal &lt;tools&gt;") && !html.contains("javascript:"));

    let latency: usize = page.latency.iter().map(|s| count_some(&s.points)).sum();
    let throughput: usize = page.throughput.iter().map(|s| count_some(&s.points)).sum();
    let activity = page
        .daily_tokens
        .iter()
        .map(|d| {
            [d.prompt, d.completion, d.reasoning]
                .iter()
                .filter(|v| **v > 0)
                .count()
        })
        .sum();
    let priced_input = page
        .effective_pricing
        .iter()
        .filter(|p| p.effective_input.is_some())
        .count();
    let priced_output = page
        .effective_pricing
        .iter()
        .filter(|p| p.effective_output.is_some())
        .count();
    let mut expected = vec![latency, throughput, priced_input, priced_output, activity];
    expected.extend(page.uptime.iter().map(|u| count_some(&u.hourly).min(72)));
    expected.push(
        count_some(&page.availability_with_fallbacks)
            + count_some(&page.availability_without_routing),
    );
    assert_eq!(data_points(&html), expected);
    // Lambda's gap hours draw grey bars.
    assert!(html.contains("st-none") && html.contains("st-poor") && html.contains("st-degraded"));
}

#[test]
fn model_page_with_no_traffic_shows_empty_states() {
    let page = sample::empty_model_page();
    let html = model_page(&page);
    assert_well_formed(&html);
    assert!(data_points(&html).is_empty());
    // Providers, latency, throughput, effective pricing, apps, activity, uptime bars, availability.
    assert_eq!(html.matches(r#"data-empty="true""#).count(), 8);
    assert!(html.contains("No traffic yet"));
    assert!(html.contains("Pricing not published") || html.contains("Unknown"));
    // The model's description tries to inject a script; it must arrive as text.
    assert!(html.contains("&lt;script&gt;alert(&#39;xss&#39;)&lt;/script&gt;"));
    assert!(html.contains("Acme: Preview &lt;beta&gt;"));
    assert!(html.contains(r#"id="sample-code""#));

    let bare = model_page(&ModelPage::default());
    assert_well_formed(&bare);
}

#[test]
fn models_index_filters_sorts_and_escapes() {
    let html = models_index(&sample::index(""));
    assert_well_formed(&html);
    assert_eq!(
        html.matches("<li data-search=").count(),
        sample::models().len()
    );
    assert!(html.contains("&lt;script&gt;alert(&#39;xss&#39;)&lt;/script&gt;"));
    for name in [
        "q",
        "provider",
        "min_context",
        "max_price",
        "modality",
        "sort",
    ] {
        assert!(
            html.contains(&format!(r#"name="{name}""#)),
            "form lacks {name}"
        );
    }
    assert!(html.contains(r#"<form class="filters" method="get" action="/models""#));

    let html = models_index(&sample::index("modality=image&sort=price"));
    assert_well_formed(&html);
    let order: Vec<&str> = attr_values(&html, "href")
        .into_iter()
        .filter(|h| h.matches('/').count() == 2)
        .collect();
    assert_eq!(
        order,
        [
            "/google/gemini-2.0-flash",
            "/openai/gpt-4o-mini",
            "/openai/gpt-4o"
        ]
    );

    let html = models_index(&sample::index("provider=lambda&min_context=100k"));
    assert!(html.contains(r#"href="/meta-llama/llama-3.1-70b-instruct""#));
    assert!(html.contains(r#"Showing <span id="shown-count">1</span>"#));

    let html = models_index(&sample::index("q=%3Cscript%3E"));
    assert_well_formed(&html);
    assert!(html.contains(r#"value="&lt;script&gt;""#));
    assert!(html.contains(r#"data-empty="true""#));

    assert_well_formed(&models_index(&ModelsIndex::default()));
}

#[test]
fn rankings_for_every_period_and_when_empty() {
    for period in Period::ALL {
        let page = sample::rankings(period);
        let html = rankings(&page);
        assert_well_formed(&html);
        for id in ["top-models", "tokens-per-day", "top-apps"] {
            assert!(html.contains(&format!(r#"id="{id}""#)));
        }
        assert!(html.contains(&format!(
            r#"href="/rankings?period={}" aria-current="page""#,
            period.as_param()
        )));
        let bars: usize = page
            .daily
            .iter()
            .map(|m| m.days.iter().filter(|d| d.1 > 0).count())
            .sum();
        assert_eq!(data_points(&html), [bars]);
    }
    let html = rankings(&Rankings::default());
    assert_well_formed(&html);
    assert_eq!(html.matches(r#"data-empty="true""#).count(), 3);
    assert_eq!(Period::from_query("?period=month"), Period::Month);
    assert_eq!(Period::from_query("period=year"), Period::Week);
}

#[test]
fn provider_page_shows_policy_endpoints_and_uptime() {
    let page = sample::provider_page();
    let html = provider_page(&page);
    assert_well_formed(&html);
    for id in ["overview", "data-policy", "endpoints", "uptime"] {
        assert!(html.contains(&format!(r#"id="{id}""#)));
    }
    assert!(
        html.contains("Palo Alto, US") && html.contains(r#"href="https://deepinfra.com/privacy""#)
    );
    assert!(html.contains(r#"href="/qwen/qwen-2.5-coder-32b-instruct""#));
    assert_eq!(
        data_points(&html),
        page.uptime
            .iter()
            .map(|u| count_some(&u.hourly))
            .collect::<Vec<_>>()
    );

    let html = provider_page(&ProviderPage::default());
    assert_well_formed(&html);
    assert!(html.contains("Unknown"));
}

#[test]
fn not_found_page() {
    let html = not_found(&Site::default(), "No model called <acme/x>.");
    assert_well_formed(&html);
    assert!(html.contains("No model called &lt;acme/x&gt;."));
    assert!(html.contains(r#"href="/models""#));
}
