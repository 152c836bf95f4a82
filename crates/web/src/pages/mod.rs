//! The page renderers, and the markup pieces several of them share (sections, links, endpoint tables, uptime).

mod index;
mod model;
mod provider;
mod rankings;

use std::fmt::Write as _;

pub use index::models_index;
pub use model::model_page;
pub use provider::provider_page;
pub use rankings::rankings;

use crate::chart::{self, StatusBand};
use crate::data::{AppUsage, Endpoint, Site, UptimeSeries};
use crate::format;
use crate::html::{Esc, encode_path, safe_http_url};
use crate::layout::{Nav, document};

/// Hours of uptime history shown as bars.
const UPTIME_HOURS: i64 = 72;

/// A complete "not found" page carrying `message` (escaped).
pub fn not_found(site: &Site, message: &str) -> String {
    let main = format!(
        r#"<section class="not-found" aria-labelledby="nf-title"><h1 id="nf-title">Page not found</h1><p class="muted">{}</p><p><a href="/models">Browse all models</a> or see the <a href="/rankings">rankings</a>.</p></section>"#,
        Esc(message)
    );
    document(site, "Not found", message, Nav::Other, &main)
}

/// Opens a titled card section; close it with `</section>`.
fn open_section(out: &mut String, id: &str, title: &str, lede: &str) {
    let _ = write!(out, r#"<section class="section" id="{id}" aria-labelledby="{id}-title"><h2 id="{id}-title">{}</h2>"#, Esc(title));
    if !lede.is_empty() {
        let _ = write!(out, r#"<p class="lede">{}</p>"#, Esc(lede));
    }
}

/// `/openai/gpt-4`.
fn model_href(id: &str) -> String {
    format!("/{}", encode_path(id.trim_start_matches('/')))
}

/// `/providers/deepinfra`.
fn provider_href(slug: &str) -> String {
    format!("/providers/{}", encode_path(slug))
}

/// Plain text as paragraphs (blank lines separate them).
fn paragraphs(text: &str) -> String {
    let mut out = String::new();
    for para in text.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        let _ = write!(out, "<p>{}</p>", Esc(para));
    }
    out
}

/// An app name, linked to its site when the URL is http(s).
fn app_name(app: &AppUsage) -> String {
    match app.url.as_deref().and_then(safe_http_url) {
        Some(url) => format!(r#"<a href="{}" rel="nofollow noopener" target="_blank">{}</a>"#, Esc(url), Esc(display_name(&app.name))),
        None => Esc(display_name(&app.name)).to_string(),
    }
}

fn display_name(name: &str) -> &str {
    if name.trim().is_empty() { "Unnamed app" } else { name }
}

/// Top apps by tokens (ranked here, whatever order the caller used).
fn apps_table(out: &mut String, apps: &[AppUsage], caption: &str) {
    let mut ranked: Vec<&AppUsage> = apps.iter().collect();
    ranked.sort_by(|a, b| b.tokens.cmp(&a.tokens).then_with(|| a.name.cmp(&b.name)));
    let _ = write!(
        out,
        r#"<div class="table-wrap"><table><caption class="sr-only">{}</caption><thead><tr><th scope="col" class="num">Rank</th><th scope="col">App</th><th scope="col" class="num">Tokens</th><th scope="col" class="num">Requests</th></tr></thead><tbody>"#,
        Esc(caption)
    );
    for (rank, app) in ranked.iter().enumerate() {
        let _ = write!(
            out,
            r#"<tr><td class="num">{}</td><th scope="row">{}</th><td class="num" title="{} tokens">{}</td><td class="num">{}</td></tr>"#,
            rank + 1,
            app_name(app),
            format::thousands(app.tokens),
            format::tokens(app.tokens),
            format::thousands(app.requests)
        );
    }
    out.push_str("</tbody></table></div>");
}

/// Which thing the first column of an endpoints table names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RowSubject {
    /// The model page: one row per provider.
    Provider,
    /// The provider page: one row per model.
    Model,
}

/// The endpoint table: prices, limits and live stats, one row per endpoint.
fn endpoints_table(out: &mut String, endpoints: &[Endpoint], subject: RowSubject, caption: &str) {
    let first = match subject {
        RowSubject::Provider => "Provider",
        RowSubject::Model => "Model",
    };
    let _ = write!(
        out,
        r#"<div class="table-wrap"><table><caption class="sr-only">{}</caption><thead><tr><th scope="col">{first}</th><th scope="col">Tag</th><th scope="col" class="num">Context</th><th scope="col" class="num">Max output</th><th scope="col" class="num">Input $/M</th><th scope="col" class="num">Output $/M</th><th scope="col" class="num">Cache read $/M</th><th scope="col" class="num">Cache write $/M</th><th scope="col">Quantization</th><th scope="col" class="num">Latency</th><th scope="col" class="num">Throughput</th><th scope="col" class="num">Uptime</th></tr></thead><tbody>"#,
        Esc(caption)
    );
    for e in endpoints {
        let name = match subject {
            RowSubject::Provider => format!(r#"<a href="{}">{}</a>"#, Esc(&provider_href(&e.provider.slug)), Esc(&e.provider.name)),
            RowSubject::Model => {
                let label = if e.model_name.is_empty() { &e.model_id } else { &e.model_name };
                format!(r#"<a href="{}">{}</a>"#, Esc(&model_href(&e.model_id)), Esc(label))
            }
        };
        let tag = if e.tag.is_empty() {
            format::MISSING.to_owned()
        } else {
            format!(
                r#"<span class="tag"><code>{}</code><button type="button" data-copy="{}" aria-label="Copy tag {}">Copy</button></span>"#,
                Esc(&e.tag),
                Esc(&e.tag),
                Esc(&e.tag)
            )
        };
        let uptime = match e.uptime {
            Some(u) if u.is_finite() => {
                format!(r#"<span class="swatch {}" aria-hidden="true"></span> {}"#, StatusBand::of(Some(u)).class(), format::percent(u))
            }
            _ => format::MISSING.to_owned(),
        };
        let _ = write!(
            out,
            r#"<tr><th scope="row">{name}</th><td>{tag}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td>{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{uptime}</td></tr>"#,
            format::tokens(e.context_length),
            format::opt(e.max_output_tokens, format::tokens),
            format::price(e.input_price),
            format::price(e.output_price),
            format::price(e.cache_read_price),
            format::price(e.cache_write_price),
            Esc(e.quantization.as_deref().unwrap_or(format::MISSING)),
            format::opt(e.latency_ms, format::millis),
            format::opt(e.throughput, format::tokens_per_sec),
        );
    }
    out.push_str("</tbody></table></div>");
}

/// Hourly uptime bars, one row per series, over the 72 hours ending at `now`.
fn uptime_rows(out: &mut String, rows: &[UptimeSeries], now: i64, what: &str) {
    if rows.is_empty() {
        out.push_str(&chart::empty_state(&format!("Hourly uptime per {what}"), "Uptime appears once requests have been routed here."));
        return;
    }
    let bands = [StatusBand::Good, StatusBand::Degraded, StatusBand::Poor, StatusBand::NoData];
    out.push_str(r#"<ul class="legend" aria-label="Uptime colours">"#);
    for band in bands {
        let _ = write!(out, r#"<li><span class="swatch {}" aria-hidden="true"></span>{}</li>"#, band.class(), band.label());
    }
    out.push_str(r#"</ul><ul class="uptime-rows">"#);
    // Without a clock, all rows end at the newest sample of any row so their hours line up.
    let end = if now > 0 { now } else { rows.iter().flat_map(|r| r.hourly.iter().map(|p| p.0)).max().unwrap_or(0) };
    for row in rows {
        let slots = chart::hourly_slots(&row.hourly, end, UPTIME_HOURS);
        let known: Vec<f64> = slots.iter().filter_map(|s| s.1).collect();
        let average = if known.is_empty() { format::MISSING.to_owned() } else { format::percent(known.iter().sum::<f64>() / known.len() as f64) };
        let label = format!("Hourly uptime of {} over the last 3 days", row.label);
        let _ = write!(
            out,
            r#"<li class="uptime-row"><span class="uptime-name" title="{}">{}</span><div class="bars">{}</div><span class="uptime-avg"><span class="sr-only">Average </span>{average}</span></li>"#,
            Esc(&row.label),
            Esc(&row.label),
            chart::status_bars(&label, &slots, "No requests in the last 3 days.")
        );
    }
    out.push_str(r#"</ul><div class="uptime-axis" aria-hidden="true"><span>3 days ago</span><span>Now</span></div>"#);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_encoded() {
        assert_eq!(model_href("openai/gpt-4"), "/openai/gpt-4");
        assert_eq!(model_href("a/<b>"), "/a/%3Cb%3E");
        assert_eq!(provider_href("deep infra"), "/providers/deep%20infra");
    }

    #[test]
    fn app_links_only_for_http_urls() {
        let mut app = AppUsage { name: "<Evil>".into(), url: Some("javascript:alert(1)".into()), tokens: 1, requests: 1 };
        assert_eq!(app_name(&app), "&lt;Evil&gt;");
        app.url = Some("https://example.com/?a=1&b=\"2\"".into());
        assert_eq!(
            app_name(&app),
            r#"<a href="https://example.com/?a=1&amp;b=&quot;2&quot;" rel="nofollow noopener" target="_blank">&lt;Evil&gt;</a>"#
        );
    }

    #[test]
    fn paragraphs_split_on_blank_lines() {
        assert_eq!(paragraphs("One.\n\n  Two <x>.  \n\n\n"), "<p>One.</p><p>Two &lt;x&gt;.</p>");
        assert_eq!(paragraphs(""), "");
    }

    #[test]
    fn not_found_escapes_the_message() {
        let html = not_found(&Site::default(), "No model <script>x</script>");
        assert!(html.contains("No model &lt;script&gt;x&lt;/script&gt;"));
        assert!(!html.contains("<script>x"));
        assert!(html.contains("<h1"));
    }
}
