//! `/providers/{slug}`: who a provider is, what it does with data, the models it serves and how reliably.

use std::fmt::Write as _;

use super::open_section;
use super::serving::{RowSubject, endpoints_table, uptime_rows};
use crate::chart;
use crate::data::ProviderPage;
use crate::html::{Esc, safe_http_url};
use crate::layout::{Nav, document};

/// Renders a provider page.
pub fn provider_page(page: &ProviderPage) -> String {
    let p = &page.provider;
    let name = if p.name.is_empty() { &p.slug } else { &p.name };
    let mut main = String::with_capacity(16 * 1024);
    let _ = write!(
        main,
        r#"<section id="overview" aria-labelledby="overview-title"><p class="crumbs"><a href="/models">Models</a> / Providers</p><h1 id="overview-title">{}</h1><dl class="facts">"#,
        Esc(name)
    );
    let datacenters = if p.datacenters.is_empty() {
        "Unknown".to_owned()
    } else {
        p.datacenters.join(", ")
    };
    for (label, value) in [
        (
            "Headquarters",
            p.headquarters
                .clone()
                .filter(|h| !h.trim().is_empty())
                .unwrap_or_else(|| "Unknown".to_owned()),
        ),
        ("Datacenters", datacenters),
        ("Models served", page.endpoints.len().to_string()),
    ] {
        let _ = write!(main, "<div><dt>{label}</dt><dd>{}</dd></div>", Esc(&value));
    }
    main.push_str("</dl>");
    let links: Vec<(&str, &str)> = [
        ("Privacy policy", &p.privacy_policy_url),
        ("Terms of service", &p.terms_of_service_url),
        ("Status page", &p.status_page_url),
    ]
    .into_iter()
    .filter_map(|(label, url)| url.as_deref().and_then(safe_http_url).map(|u| (label, u)))
    .collect();
    if !links.is_empty() {
        main.push_str(r#"<ul class="links">"#);
        for (label, url) in links {
            let _ = write!(
                main,
                r#"<li><a href="{}" rel="noopener" target="_blank">{label}</a></li>"#,
                Esc(url)
            );
        }
        main.push_str("</ul>");
    }
    main.push_str("</section>");

    open_section(
        &mut main,
        "data-policy",
        "Data policy",
        "As declared by the provider. Requests can require zero data retention per call.",
    );
    let retains = match (p.retains_prompts, p.retention_days) {
        (Some(true), Some(days)) => Flag::Text(format!("Yes, {days} days"), Tone::Bad),
        (Some(true), None) => Flag::Text("Yes".to_owned(), Tone::Bad),
        (Some(false), _) => Flag::Text("No".to_owned(), Tone::Good),
        (None, _) => Flag::Unknown,
    };
    main.push_str(r#"<ul class="flags">"#);
    for (label, flag) in [
        (
            "Trains on your data",
            Flag::from_bool(p.trains_on_data, false),
        ),
        ("Retains prompts", retains),
        (
            "Zero data retention",
            Flag::from_bool(p.zero_data_retention, true),
        ),
    ] {
        let _ = write!(main, "<li><span>{label}</span>{}</li>", flag.badge());
    }
    main.push_str("</ul></section>");

    open_section(
        &mut main,
        "endpoints",
        "Models",
        "Every model this provider serves, with list prices and live stats.",
    );
    if page.endpoints.is_empty() {
        main.push_str(&chart::empty_note(
            "Models",
            "No models yet",
            "This provider serves no models right now.",
        ));
    } else {
        endpoints_table(
            &mut main,
            &page.endpoints,
            RowSubject::Model,
            "Models served by this provider",
        );
    }
    main.push_str("</section>");

    open_section(
        &mut main,
        "uptime",
        "Uptime",
        "Hourly share of successful requests over the last 3 days.",
    );
    uptime_rows(&mut main, &page.uptime, page.now, "model");
    main.push_str("</section>");

    let description = format!("{name}: data policy, models served, prices and uptime.");
    document(&page.site, name, &description, Nav::Other, &main)
}

#[derive(Debug, Clone, Copy)]
enum Tone {
    Good,
    Bad,
}

enum Flag {
    Text(String, Tone),
    Unknown,
}

impl Flag {
    /// `yes_is_good` says which answer deserves the reassuring colour.
    fn from_bool(value: Option<bool>, yes_is_good: bool) -> Self {
        match value {
            Some(v) => Flag::Text(
                if v { "Yes" } else { "No" }.to_owned(),
                if v == yes_is_good {
                    Tone::Good
                } else {
                    Tone::Bad
                },
            ),
            None => Flag::Unknown,
        }
    }

    fn badge(&self) -> String {
        match self {
            Flag::Text(text, Tone::Good) => {
                format!(r#"<span class="badge yes">{}</span>"#, Esc(text))
            }
            Flag::Text(text, Tone::Bad) => {
                format!(r#"<span class="badge no">{}</span>"#, Esc(text))
            }
            Flag::Unknown => r#"<span class="badge">Unknown</span>"#.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ProviderInfo;

    #[test]
    fn unknown_policy_and_no_endpoints() {
        let html = provider_page(&ProviderPage {
            provider: ProviderInfo {
                slug: "acme".into(),
                ..ProviderInfo::default()
            },
            ..ProviderPage::default()
        });
        assert!(html.contains(">acme</h1>"));
        assert_eq!(
            html.matches(r#"<span class="badge">Unknown</span>"#)
                .count(),
            3
        );
        assert!(html.matches(r#"data-empty="true""#).count() >= 2);
    }

    #[test]
    fn policy_flags_and_safe_links() {
        let provider = ProviderInfo {
            slug: "acme".into(),
            name: "Acme".into(),
            trains_on_data: Some(false),
            retains_prompts: Some(true),
            retention_days: Some(30),
            zero_data_retention: Some(true),
            privacy_policy_url: Some("https://acme.example/privacy".into()),
            terms_of_service_url: Some("javascript:alert(1)".into()),
            ..ProviderInfo::default()
        };
        let html = provider_page(&ProviderPage {
            provider,
            ..ProviderPage::default()
        });
        assert!(html.contains(r#"<span class="badge no">Yes, 30 days</span>"#));
        assert_eq!(html.matches(r#"<span class="badge yes">"#).count(), 2);
        assert!(html.contains(r#"href="https://acme.example/privacy""#));
        assert!(!html.contains("javascript:"));
    }
}
