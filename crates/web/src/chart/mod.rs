//! Small inline-SVG charts: multi-series lines, stacked and grouped bars, hourly status bars.
//!
//! Every chart scales through its `viewBox`, carries `role="img"`, an `aria-label` and `data-points="N"` (how many
//! data values it draws), puts a `<title>` tooltip on each point or bar, and keeps its legend in HTML so it stays
//! readable on a phone. With nothing to draw it renders an explicit empty state (`data-empty="true"`) instead.

mod bars;
mod line;
mod status;

use std::fmt::Write as _;

pub(crate) use bars::{BarSeries, grouped_bars, stacked_bars};
pub(crate) use line::{LineOptions, LineSeries, line_chart};

pub(crate) use status::{StatusBand, hourly_slots, status_bars};

use crate::format;
use crate::html::Esc;

/// Colour-blind-friendly palette (after Okabe & Ito), readable on light and dark backgrounds.
pub(crate) const PALETTE: [&str; 8] = [
    "#3b82f6", "#e69f00", "#009e73", "#cc79a7", "#d55e00", "#56b4e9", "#8b5cf6", "#94a3b8",
];

/// The colour of series `i`.
pub(crate) fn colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// What a chart's values measure; decides axis titles, tick labels and tooltips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    Tokens,
    UsdPerM,
    Millis,
    TokensPerSec,
    Percent,
}

impl Unit {
    /// Axis title, drawn above the y axis.
    fn axis_title(self) -> &'static str {
        match self {
            Unit::Tokens => "Tokens",
            Unit::UsdPerM => "USD per 1M tokens",
            Unit::Millis => "Milliseconds",
            Unit::TokensPerSec => "Tokens per second",
            Unit::Percent => "Percent",
        }
    }

    /// Short tick label.
    fn tick(self, v: f64) -> String {
        match self {
            Unit::Tokens | Unit::Millis | Unit::TokensPerSec => format::compact(v),
            Unit::UsdPerM => format::usd(v),
            Unit::Percent => format!("{}%", format::compact(v)),
        }
    }

    /// Full value with unit, for tooltips.
    pub(crate) fn value(self, v: f64) -> String {
        match self {
            Unit::Tokens => format!("{} tokens", format::compact(v)),
            Unit::UsdPerM => format!("{} / 1M tokens", format::usd(v)),
            Unit::Millis => format::millis(v),
            Unit::TokensPerSec => format::tokens_per_sec(v),
            Unit::Percent => format::percent(v),
        }
    }
}

/// How much room a chart gets. Both scale to their container; a wide chart has a wider canvas so its text stays
/// the same size when it spans a whole section, and larger text on phones (see the stylesheet).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Size {
    /// Half a section on a laptop (two charts side by side), a full row on a phone.
    #[default]
    Normal,
    /// A whole section.
    Wide,
}

impl Size {
    fn width(self) -> f64 {
        match self {
            Size::Normal => 560.0,
            Size::Wide => 840.0,
        }
    }

    fn height(self) -> f64 {
        match self {
            Size::Normal => 250.0,
            Size::Wide => 320.0,
        }
    }

    /// The plot area inside the margins, which leave room for tick labels at phone sizes.
    fn plot(self) -> Plot {
        let (left, top, bottom) = match self {
            Size::Normal => (70.0, 32.0, 32.0),
            Size::Wide => (96.0, 44.0, 42.0),
        };
        Plot {
            left,
            right: self.width() - 20.0,
            top,
            bottom: self.height() - bottom,
        }
    }

    fn class(self) -> &'static str {
        match self {
            Size::Normal => "chart-svg",
            Size::Wide => "chart-svg wide",
        }
    }
}

/// The plot area in viewBox units.
#[derive(Debug, Clone, Copy)]
struct Plot {
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
}

impl Plot {
    fn width(&self) -> f64 {
        self.right - self.left
    }

    fn height(&self) -> f64 {
        self.bottom - self.top
    }
}

/// A value axis: nice rounded bounds and the ticks between them.
#[derive(Debug, Clone, PartialEq)]
struct Scale {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

impl Scale {
    /// Rounds `[lo, hi]` outwards to a 1/2/5×10ⁿ step, aiming for about four intervals.
    fn nice(lo: f64, hi: f64) -> Self {
        let (lo, hi) = if hi > lo {
            (lo, hi)
        } else if lo == 0.0 {
            (0.0, 1.0)
        } else {
            let pad = lo.abs() * 0.1;
            (lo - pad, hi + pad)
        };
        let step = nice_step((hi - lo) / 4.0);
        let lo_n = (lo / step).floor() * step;
        let hi_n = (hi / step).ceil() * step;
        let count = ((hi_n - lo_n) / step).round() as usize;
        // Multiplying rather than accumulating keeps rounding error from growing along the axis.
        let ticks = (0..=count).map(|k| lo_n + step * k as f64).collect();
        Scale {
            lo: lo_n,
            hi: hi_n,
            ticks,
        }
    }

    fn y(&self, plot: &Plot, v: f64) -> f64 {
        let t = (v - self.lo) / (self.hi - self.lo);
        plot.bottom - t.clamp(0.0, 1.0) * plot.height()
    }
}

fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    let fraction = raw / magnitude;
    let nice = if fraction < 1.5 {
        1.0
    } else if fraction < 3.0 {
        2.0
    } else if fraction < 7.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

/// Opens the `<svg>` root. `points` is the number of data values drawn (`data-points`).
fn open_svg(out: &mut String, size: Size, label: &str, points: usize) {
    let _ = write!(
        out,
        r#"<svg class="{}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {} {}" role="img" aria-label="{}" data-points="{points}">"#,
        size.class(),
        size.width(),
        size.height(),
        Esc(label)
    );
}

/// Horizontal grid lines with tick labels, and the unit title above the axis.
fn value_axis(out: &mut String, plot: &Plot, scale: &Scale, unit: Unit) {
    let _ = write!(
        out,
        r#"<text class="axis-title" x="2" y="2" dominant-baseline="hanging">{}</text>"#,
        unit.axis_title()
    );
    // With many ticks, every other label is minor (hidden on phones, where the text is larger).
    let thin = scale.ticks.len() > 5;
    for (k, &tick) in scale.ticks.iter().enumerate() {
        let y = scale.y(plot, tick);
        let class = if thin && k % 2 == 1 {
            r#" class="minor""#
        } else {
            ""
        };
        let _ = write!(
            out,
            r#"<line class="grid" x1="{:.1}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}"/><text{class} x="{:.1}" y="{y:.1}" text-anchor="end" dominant-baseline="middle">{}</text>"#,
            plot.left,
            plot.right,
            plot.left - 8.0,
            Esc(&unit.tick(tick))
        );
    }
    let _ = write!(
        out,
        r#"<line class="axis" x1="{:.1}" x2="{:.1}" y1="{:.1}" y2="{:.1}"/>"#,
        plot.left, plot.right, plot.bottom, plot.bottom
    );
}

/// A category or time label under the plot. Labels near the right edge are right-aligned to stay on the canvas;
/// `minor` labels are hidden on phones, where the text is larger.
fn x_label(out: &mut String, plot: &Plot, x: f64, text: &str, minor: bool) {
    let anchor = if x > plot.right - 24.0 {
        "end"
    } else {
        "middle"
    };
    let class = if minor { r#" class="minor""# } else { "" };
    let _ = write!(
        out,
        r#"<text{class} x="{x:.1}" y="{:.1}" text-anchor="{anchor}" dominant-baseline="hanging">{}</text>"#,
        plot.bottom + 8.0,
        Esc(text)
    );
}

/// How a legend entry is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Swatch {
    Line,
    Dashed,
    Block,
    Marker,
}

/// An HTML legend under a chart.
pub(crate) fn legend(entries: &[(&str, &str, Swatch)]) -> String {
    let mut out = String::from(r#"<ul class="legend">"#);
    for (name, colour, swatch) in entries {
        let class = match swatch {
            Swatch::Line => "sw-line",
            Swatch::Dashed => "sw-dashed",
            Swatch::Block => "sw-block",
            Swatch::Marker => "sw-marker",
        };
        let _ = write!(
            out,
            r#"<li><span class="swatch {class}" style="--c:{colour}" aria-hidden="true"></span>{}</li>"#,
            Esc(name)
        );
    }
    out.push_str("</ul>");
    out
}

/// The placeholder drawn instead of a chart with nothing to show.
pub(crate) fn empty_state(label: &str, detail: &str) -> String {
    empty_note(label, "No traffic yet", detail)
}

/// A placeholder for any empty block (chart, table, list), with its own headline.
pub(crate) fn empty_note(label: &str, headline: &str, detail: &str) -> String {
    format!(
        r#"<div class="chart-empty" data-empty="true" role="note" aria-label="{}: no data"><strong>{}</strong><span>{}</span></div>"#,
        Esc(label),
        Esc(headline),
        Esc(detail)
    )
}

/// Keeps NaN and infinities out of the geometry.
fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite())
}

/// Shortens long axis labels; the full text stays in the tooltip.
fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        text.to_owned()
    } else {
        let mut short: String = text.chars().take(max_chars.saturating_sub(1)).collect();
        short.push('…');
        short
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_scales() {
        assert_eq!(
            Scale::nice(0.0, 87.0).ticks,
            vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
        );
        let unit = Scale::nice(0.0, 0.0);
        assert_eq!((unit.lo, unit.hi, unit.ticks.len()), (0.0, 1.0, 6));
        let huge = Scale::nice(0.0, 7.3e12);
        assert_eq!((huge.lo, huge.hi), (0.0, 8e12));
        let tiny = Scale::nice(0.0, 3.2e-7);
        assert!(tiny.hi >= 3.2e-7 && tiny.hi < 5e-7, "{tiny:?}");
        let flat = Scale::nice(42.0, 42.0);
        assert!(flat.lo < 42.0 && flat.hi > 42.0);
        let pct = Scale::nice(95.0, 100.0);
        assert_eq!((pct.lo, pct.hi), (95.0, 100.0));
    }

    #[test]
    fn units_label_values() {
        assert_eq!(Unit::Tokens.tick(2_500_000.0), "2.5M");
        assert_eq!(Unit::UsdPerM.tick(0.5), "$0.50");
        assert_eq!(Unit::Percent.tick(99.5), "99.5%");
        assert_eq!(Unit::Millis.value(420.0), "420 ms");
        assert_eq!(Unit::UsdPerM.value(2.5), "$2.50 / 1M tokens");
    }

    #[test]
    fn empty_state_is_marked_and_escaped() {
        let html = empty_state("<b>", "nothing");
        assert!(html.contains(r#"data-empty="true""#));
        assert!(html.contains("No traffic yet"));
        assert!(html.contains("&lt;b&gt;"));
    }

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate("Together", 10), "Together");
        assert_eq!(truncate("Überlange Anbieter", 6), "Überl…");
    }
}
