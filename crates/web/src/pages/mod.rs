//! The page renderers, and the markup pieces several of them share (sections, links, endpoint tables, uptime).

mod code;
mod index;
mod model;
mod provider;
mod rankings;
mod serving;

use std::fmt::Write as _;

pub use index::models_index;
pub use model::model_page;
pub use provider::provider_page;
pub use rankings::rankings;

use crate::data::{AppUsage, Site};
use crate::format;
use crate::html::{Esc, encode_path, safe_http_url};
use crate::layout::{Nav, document};

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
    let _ = write!(
        out,
        r#"<section class="section" id="{id}" aria-labelledby="{id}-title"><h2 id="{id}-title">{}</h2>"#,
        Esc(title)
    );
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
        Some(url) => format!(
            r#"<a href="{}" rel="nofollow noopener" target="_blank">{}</a>"#,
            Esc(url),
            Esc(display_name(&app.name))
        ),
        None => Esc(display_name(&app.name)).to_string(),
    }
}

fn display_name(name: &str) -> &str {
    if name.trim().is_empty() {
        "Unnamed app"
    } else {
        name
    }
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
        let mut app = AppUsage {
            name: "<Evil>".into(),
            url: Some("javascript:alert(1)".into()),
            tokens: 1,
            requests: 1,
        };
        assert_eq!(app_name(&app), "&lt;Evil&gt;");
        app.url = Some("https://example.com/?a=1&b=\"2\"".into());
        assert_eq!(
            app_name(&app),
            r#"<a href="https://example.com/?a=1&amp;b=&quot;2&quot;" rel="nofollow noopener" target="_blank">&lt;Evil&gt;</a>"#
        );
    }

    #[test]
    fn paragraphs_split_on_blank_lines() {
        assert_eq!(
            paragraphs("One.\n\n  Two <x>.  \n\n\n"),
            "<p>One.</p><p>Two &lt;x&gt;.</p>"
        );
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
