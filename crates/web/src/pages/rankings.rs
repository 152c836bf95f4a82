//! `/rankings`: top models and apps by tokens for a day, week or month, with tokens per day for the leaders.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

use super::{apps_table, model_href, open_section};
use crate::chart::{self, BarSeries, PALETTE, Size, Unit};
use crate::data::{Period, RankedModel, Rankings};
use crate::format;
use crate::html::Esc;
use crate::layout::{Nav, document};

/// Rows per table.
const TOP: usize = 20;

/// Renders `/rankings`.
pub fn rankings(page: &Rankings) -> String {
    let mut main = String::with_capacity(24 * 1024);
    let _ = write!(
        main,
        r#"<h1>Rankings</h1><p class="lede">Models and apps by tokens processed through {}. {}.</p><nav aria-label="Period" class="segmented">"#,
        Esc(&page.site.name),
        page.period.label()
    );
    for period in Period::ALL {
        let current = if period == page.period {
            r#" aria-current="page""#
        } else {
            ""
        };
        let label = match period {
            Period::Day => "Day",
            Period::Week => "Week",
            Period::Month => "Month",
        };
        let _ = write!(
            main,
            r#"<a href="/rankings?period={}"{current}>{label}</a>"#,
            period.as_param()
        );
    }
    main.push_str("</nav>");
    top_models(&mut main, page);
    daily_chart(&mut main, page);
    open_section(
        &mut main,
        "top-apps",
        "Top apps",
        "Apps attributed through the HTTP-Referer and X-Title headers.",
    );
    if page.top_apps.is_empty() {
        main.push_str(&chart::empty_state(
            "Top apps",
            "Apps appear here once they send attributed requests.",
        ));
    } else {
        let mut apps = page.top_apps.clone();
        apps.sort_by_key(|app| std::cmp::Reverse(app.tokens));
        apps.truncate(TOP);
        apps_table(&mut main, &apps, "Top apps by tokens");
    }
    main.push_str("</section>");
    document(
        &page.site,
        "Rankings",
        "The most used models and apps by tokens.",
        Nav::Rankings,
        &main,
    )
}

fn top_models(out: &mut String, page: &Rankings) {
    open_section(out, "top-models", "Top models", "");
    let mut models: Vec<&RankedModel> = page.top_models.iter().collect();
    if models.is_empty() {
        out.push_str(&chart::empty_state(
            "Top models",
            "Rankings appear after the first requests.",
        ));
        out.push_str("</section>");
        return;
    }
    models.sort_by(|a, b| b.tokens.cmp(&a.tokens).then_with(|| a.id.cmp(&b.id)));
    let total: u64 = models.iter().map(|m| m.tokens).fold(0, u64::saturating_add);
    out.push_str(r#"<div class="table-wrap"><table><caption class="sr-only">Top models by tokens</caption><thead><tr><th scope="col" class="num">Rank</th><th scope="col">Model</th><th scope="col" class="num">Tokens</th><th scope="col" class="num">Share</th><th scope="col" class="num">Requests</th></tr></thead><tbody>"#);
    for (rank, m) in models.iter().take(TOP).enumerate() {
        let share = if total > 0 {
            format::percent(m.tokens as f64 * 100.0 / total as f64)
        } else {
            format::MISSING.to_owned()
        };
        let name = if m.name.is_empty() { &m.id } else { &m.name };
        let _ = write!(
            out,
            r#"<tr><td class="num">{}</td><th scope="row"><a href="{}">{}</a> <code class="muted">{}</code></th><td class="num" title="{} tokens">{}</td><td class="num">{share}</td><td class="num">{}</td></tr>"#,
            rank + 1,
            Esc(&model_href(&m.id)),
            Esc(name),
            Esc(&m.id),
            format::thousands(m.tokens),
            format::tokens(m.tokens),
            format::thousands(m.requests)
        );
    }
    out.push_str("</tbody></table></div></section>");
}

fn daily_chart(out: &mut String, page: &Rankings) {
    open_section(
        out,
        "tokens-per-day",
        "Tokens per day",
        "Daily tokens for the top models, stacked.",
    );
    let charted = &page.daily[..page.daily.len().min(PALETTE.len())];
    let days: BTreeSet<&str> = charted
        .iter()
        .flat_map(|m| m.days.iter().map(|(d, _)| d.as_str()))
        .collect();
    let days: Vec<&str> = days.into_iter().collect();
    let series: Vec<BarSeries> = charted
        .iter()
        .map(|m| {
            let by_day: HashMap<&str, u64> = m.days.iter().map(|(d, t)| (d.as_str(), *t)).collect();
            let name = if m.name.is_empty() {
                &m.model_id
            } else {
                &m.name
            };
            BarSeries::new(
                name.clone(),
                days.iter()
                    .map(|d| by_day.get(d).map(|t| *t as f64))
                    .collect(),
            )
        })
        .collect();
    let categories: Vec<String> = days.iter().map(|d| format::day_label(d)).collect();
    out.push_str(&chart::stacked_bars(
        "Tokens per day for the top models",
        Unit::Tokens,
        &categories,
        &series,
        Size::Wide,
        "Daily usage appears after the first requests.",
    ));
    out.push_str("</section>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ModelDailyTokens;

    #[test]
    fn period_links_mark_the_current_one() {
        let html = rankings(&Rankings {
            period: Period::Month,
            ..Rankings::default()
        });
        assert!(html.contains(r#"<a href="/rankings?period=month" aria-current="page">Month</a>"#));
        assert!(html.contains(r#"<a href="/rankings?period=day">Day</a>"#));
        assert_eq!(html.matches(r#"data-empty="true""#).count(), 3);
    }

    #[test]
    fn models_ranked_with_shares_and_chart_aligned_by_day() {
        let page = Rankings {
            top_models: vec![
                RankedModel {
                    id: "b/small".into(),
                    name: "Small".into(),
                    tokens: 250,
                    requests: 5,
                },
                RankedModel {
                    id: "a/big".into(),
                    name: "Big".into(),
                    tokens: 750,
                    requests: 9,
                },
            ],
            daily: vec![
                ModelDailyTokens {
                    model_id: "a/big".into(),
                    name: "Big".into(),
                    days: vec![("2024-06-02".into(), 500), ("2024-06-01".into(), 250)],
                },
                ModelDailyTokens {
                    model_id: "b/small".into(),
                    name: String::new(),
                    days: vec![("2024-06-01".into(), 250)],
                },
            ],
            ..Rankings::default()
        };
        let html = rankings(&page);
        assert!(html.find(">Big<").unwrap() < html.find(">Small<").unwrap());
        assert!(html.contains(">75%<") && html.contains(">25%<"));
        assert!(html.contains(r#"data-points="3""#));
        assert!(html.contains("Jun 1 · b/small: 250 tokens (total 500 tokens)"));
    }
}
