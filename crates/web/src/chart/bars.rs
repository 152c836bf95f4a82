//! Bar charts over categories (days, providers): stacked, or grouped with optional reference markers.

use std::fmt::Write as _;

use super::{
    Scale, Size, Swatch, Unit, colour, empty_state, finite, legend, open_svg, truncate, value_axis,
    x_label,
};
use crate::html::Esc;

/// One colour of bars: a value per category, plus optional reference values drawn as markers (e.g. list price).
#[derive(Debug, Clone, Default)]
pub(crate) struct BarSeries {
    pub name: String,
    pub values: Vec<Option<f64>>,
    pub reference: Vec<Option<f64>>,
}

impl BarSeries {
    pub(crate) fn new(name: impl Into<String>, values: Vec<Option<f64>>) -> Self {
        Self {
            name: name.into(),
            values,
            reference: Vec::new(),
        }
    }

    fn value(&self, category: usize) -> Option<f64> {
        finite(self.values.get(category).copied().flatten()).map(|v| v.max(0.0))
    }

    fn reference(&self, category: usize) -> Option<f64> {
        finite(self.reference.get(category).copied().flatten()).map(|v| v.max(0.0))
    }
}

/// Every `step`-th category gets a label, so at most about ten fit under the plot.
fn label_step(categories: usize) -> usize {
    categories.div_ceil(10).max(1)
}

/// How many bars are drawn: stacked charts skip zero segments, grouped charts draw a sliver for zero.
fn bar_count(categories: &[String], series: &[BarSeries], skip_zero: bool) -> usize {
    (0..categories.len())
        .map(|c| {
            series
                .iter()
                .filter(|s| s.value(c).is_some_and(|v| v > 0.0 || !skip_zero))
                .count()
        })
        .sum()
}

/// Bars stacked per category (e.g. prompt, completion and reasoning tokens per day). Empty state when nothing
/// is positive.
pub(crate) fn stacked_bars(
    label: &str,
    unit: Unit,
    categories: &[String],
    series: &[BarSeries],
    size: Size,
    empty_detail: &str,
) -> String {
    let total = |c: usize| series.iter().filter_map(|s| s.value(c)).sum::<f64>();
    let max_total = (0..categories.len()).map(total).fold(0.0, f64::max);
    let count = bar_count(categories, series, true);
    if count == 0 || max_total <= 0.0 {
        return empty_state(label, empty_detail);
    }
    let plot = size.plot();
    let scale = Scale::nice(0.0, max_total);
    let slot = plot.width() / categories.len() as f64;
    let bar_width = (slot * 0.72).max(1.0);
    let every = label_step(categories.len());

    let mut out = String::with_capacity(2048 + count * 170);
    out.push_str(r#"<figure class="chart">"#);
    open_svg(
        &mut out,
        size,
        &format!("{label} ({} categories)", categories.len()),
        count,
    );
    value_axis(&mut out, &plot, &scale, unit);
    for (c, category) in categories.iter().enumerate() {
        let x = plot.left + slot * c as f64 + (slot - bar_width) / 2.0;
        let mut base = 0.0;
        for (i, s) in series.iter().enumerate() {
            let Some(v) = s.value(c).filter(|v| *v > 0.0) else {
                continue;
            };
            let (y_top, y_bottom) = (scale.y(&plot, base + v), scale.y(&plot, base));
            let _ = write!(
                out,
                r#"<rect x="{x:.1}" y="{y_top:.1}" width="{bar_width:.1}" height="{:.1}" fill="{}"><title>{} · {}: {} (total {})</title></rect>"#,
                (y_bottom - y_top).max(0.5),
                colour(i),
                Esc(category),
                Esc(&s.name),
                Esc(&unit.value(v)),
                Esc(&unit.value(total(c)))
            );
            base += v;
        }
        if c % every == 0 {
            x_label(
                &mut out,
                &plot,
                x + bar_width / 2.0,
                &truncate(category, 10),
                (c / every) % 2 == 1,
            );
        }
    }
    out.push_str("</svg>");
    let entries: Vec<(&str, &str, Swatch)> = series
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), colour(i), Swatch::Block))
        .collect();
    out.push_str(&legend(&entries));
    out.push_str("</figure>");
    out
}

/// Bars side by side per category (e.g. effective input and output price per provider). A series' `reference`
/// values are drawn as a dark tick across its bar and listed in the legend as `reference_name`.
pub(crate) fn grouped_bars(
    label: &str,
    unit: Unit,
    categories: &[String],
    series: &[BarSeries],
    reference_name: Option<&str>,
    size: Size,
    empty_detail: &str,
) -> String {
    let count = bar_count(categories, series, false);
    if count == 0 {
        return empty_state(label, empty_detail);
    }
    let max = (0..categories.len())
        .flat_map(|c| {
            series
                .iter()
                .flat_map(move |s| [s.value(c), s.reference(c)])
        })
        .flatten()
        .fold(0.0, f64::max);
    let plot = size.plot();
    let scale = Scale::nice(0.0, max);
    let slot = plot.width() / categories.len() as f64;
    let group_width = slot * 0.78;
    let bar_width = (group_width / series.len().max(1) as f64).max(1.0);
    let every = label_step(categories.len());
    let label_chars = ((slot / 9.5) as usize).clamp(4, 18);

    let mut out = String::with_capacity(2048 + count * 200);
    out.push_str(r#"<figure class="chart">"#);
    open_svg(
        &mut out,
        size,
        &format!("{label} ({} categories)", categories.len()),
        count,
    );
    value_axis(&mut out, &plot, &scale, unit);
    let mut any_reference = false;
    for (c, category) in categories.iter().enumerate() {
        let group_left = plot.left + slot * c as f64 + (slot - group_width) / 2.0;
        for (i, s) in series.iter().enumerate() {
            let x = group_left + bar_width * i as f64;
            if let Some(v) = s.value(c) {
                let y = scale.y(&plot, v);
                let _ = write!(
                    out,
                    r#"<rect x="{:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" rx="2" fill="{}"><title>{} · {}: {}</title></rect>"#,
                    x + 1.0,
                    (bar_width - 2.0).max(1.0),
                    (plot.bottom - y).max(0.5),
                    colour(i),
                    Esc(category),
                    Esc(&s.name),
                    Esc(&unit.value(v))
                );
            }
            if let Some(r) = s.reference(c) {
                any_reference = true;
                let y = scale.y(&plot, r);
                let _ = write!(
                    out,
                    r#"<line class="ref" x1="{:.1}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}"><title>{} · {} ({}): {}</title></line>"#,
                    x,
                    x + bar_width,
                    Esc(category),
                    Esc(&s.name),
                    Esc(reference_name.unwrap_or("reference")),
                    Esc(&unit.value(r))
                );
            }
        }
        if c % every == 0 {
            x_label(
                &mut out,
                &plot,
                group_left + group_width / 2.0,
                &truncate(category, label_chars),
                false,
            );
        }
    }
    out.push_str("</svg>");
    let mut entries: Vec<(&str, &str, Swatch)> = series
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), colour(i), Swatch::Block))
        .collect();
    if let (true, Some(name)) = (any_reference, reference_name) {
        entries.push((name, "currentColor", Swatch::Marker));
    }
    out.push_str(&legend(&entries));
    out.push_str("</figure>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn days(n: usize) -> Vec<String> {
        (1..=n).map(|d| format!("Jun {d}")).collect()
    }

    #[test]
    fn stacked_counts_values_and_skips_zero_segments() {
        let series = vec![
            BarSeries::new("Prompt", vec![Some(1e9), Some(2e9), Some(0.0)]),
            BarSeries::new("Completion", vec![Some(5e8), None, Some(3e6)]),
        ];
        let html = stacked_bars(
            "Tokens per day",
            Unit::Tokens,
            &days(3),
            &series,
            Size::Normal,
            "",
        );
        assert!(html.contains(r#"data-points="4""#), "{html}");
        assert_eq!(html.matches("<rect").count(), 4);
        assert!(html.contains("Jun 1 · Prompt: 1B tokens (total 1.5B tokens)"));
        assert!(html.contains(">2B<") || html.contains(">2.5B<"));
    }

    #[test]
    fn stacked_all_zero_is_empty() {
        let series = vec![BarSeries::new("Prompt", vec![Some(0.0), Some(0.0)])];
        assert!(
            stacked_bars("Tokens", Unit::Tokens, &days(2), &series, Size::Normal, "")
                .contains(r#"data-empty="true""#)
        );
        assert!(
            stacked_bars("Tokens", Unit::Tokens, &[], &[], Size::Wide, "")
                .contains("No traffic yet")
        );
    }

    #[test]
    fn stacked_thins_labels_for_many_days() {
        let series = vec![BarSeries::new(
            "Tokens",
            (0..30).map(|d| Some(d as f64 + 1.0)).collect(),
        )];
        let html = stacked_bars("Tokens", Unit::Tokens, &days(30), &series, Size::Wide, "");
        assert!(html.contains(r#"data-points="30""#));
        assert!(html.contains(">Jun 1<") && !html.contains(">Jun 2<"));
        assert!(html.contains(r#"class="minor" x="#) && html.contains("wide"));
    }

    #[test]
    fn grouped_draws_bars_and_reference_markers() {
        let mut input = BarSeries::new("Input", vec![Some(0.42), None]);
        input.reference = vec![Some(0.5), Some(0.6)];
        let output = BarSeries::new("Output", vec![Some(1.5), Some(1.8)]);
        let categories = vec![
            "DeepInfra".to_owned(),
            "A very long provider name".to_owned(),
        ];
        let html = grouped_bars(
            "Effective price",
            Unit::UsdPerM,
            &categories,
            &[input, output],
            Some("List price"),
            Size::Normal,
            "",
        );
        assert!(html.contains(r#"data-points="3""#));
        assert_eq!(html.matches("<rect").count(), 3);
        assert_eq!(html.matches(r#"<line class="ref""#).count(), 2);
        assert!(html.contains("List price"));
        assert!(html.contains("$0.42 / 1M tokens"));
    }

    #[test]
    fn grouped_with_only_missing_values_is_empty() {
        let html = grouped_bars(
            "Price",
            Unit::UsdPerM,
            &["A".to_owned()],
            &[BarSeries::new("Input", vec![None])],
            None,
            Size::Normal,
            "x",
        );
        assert!(html.contains(r#"data-empty="true""#));
    }
}
