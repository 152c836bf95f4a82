//! Time-series line charts with one line per series; `None` samples break the line.

use std::fmt::Write as _;

use super::{
    Scale, Size, Swatch, Unit, colour, empty_state, finite, legend, open_svg, value_axis, x_label,
};
use crate::format;
use crate::html::Esc;

/// One line: a legend name and its `(unix_secs, value)` samples.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LineSeries<'a> {
    pub name: &'a str,
    pub points: &'a [(i64, Option<f64>)],
    /// Drawn dashed (used for "without routing" comparisons).
    pub dashed: bool,
}

/// How the value axis is chosen.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LineOptions {
    /// Start the axis at zero (latency, throughput) rather than near the smallest value (availability).
    pub zero_based: bool,
    /// The axis spans at least this much, so 99.9% vs 100% is not drawn as a cliff.
    pub min_span: f64,
    pub size: Size,
}

/// Candidate spacings for time ticks, seconds.
const TIME_STEPS: [i64; 12] = [
    900,
    1800,
    3600,
    2 * 3600,
    3 * 3600,
    6 * 3600,
    12 * 3600,
    86_400,
    2 * 86_400,
    7 * 86_400,
    14 * 86_400,
    28 * 86_400,
];

/// Renders a line chart, or the empty state when no series has a value.
pub(crate) fn line_chart(
    label: &str,
    unit: Unit,
    series: &[LineSeries<'_>],
    options: LineOptions,
    empty_detail: &str,
) -> String {
    let values = || {
        series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter_map(|&(t, v)| finite(v).map(|v| (t, v)))
    };
    let count = values().count();
    if count == 0 {
        return empty_state(label, empty_detail);
    }
    let (mut t_min, mut t_max, mut v_min, mut v_max) = (i64::MAX, i64::MIN, f64::MAX, f64::MIN);
    for (t, v) in values() {
        t_min = t_min.min(t);
        t_max = t_max.max(t);
        v_min = v_min.min(v);
        v_max = v_max.max(v);
    }
    let single_time = t_min == t_max;
    if single_time {
        // One timestamp: centre it in a one-hour window.
        t_min -= 1800;
        t_max += 1800;
    }
    let mut lo = if options.zero_based {
        v_min.min(0.0)
    } else {
        v_min
    };
    if v_max - lo < options.min_span {
        lo = v_max - options.min_span;
    }
    let scale = Scale::nice(lo, v_max);
    let plot = options.size.plot();
    let x = |t: i64| plot.left + (t - t_min) as f64 / (t_max - t_min) as f64 * plot.width();

    let mut out = String::with_capacity(2048 + count * 160);
    out.push_str(r#"<figure class="chart">"#);
    open_svg(
        &mut out,
        options.size,
        &format!("{label} ({count} values)"),
        count,
    );
    value_axis(&mut out, &plot, &scale, unit);
    if single_time {
        x_label(
            &mut out,
            &plot,
            x(t_min + 1800),
            &format::date_time(t_min + 1800),
            false,
        );
    } else {
        for tick in time_ticks(t_min, t_max) {
            x_label(&mut out, &plot, x(tick.0), &tick.1, false);
        }
    }
    for (i, s) in series.iter().enumerate() {
        let stroke = colour(i);
        let dash = if s.dashed {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        let _ = write!(
            out,
            r#"<g class="series" stroke="{stroke}" fill="{stroke}">"#
        );
        let mut points: Vec<(i64, Option<f64>)> = s.points.to_vec();
        points.sort_by_key(|p| p.0);
        for run in points
            .split(|p| finite(p.1).is_none())
            .filter(|run| run.len() > 1)
        {
            out.push_str(r#"<path fill="none" stroke-width="2" stroke-linejoin="round" d=""#);
            for (k, &(t, v)) in run.iter().enumerate() {
                let v = v.unwrap_or_default();
                let _ = write!(
                    out,
                    "{}{:.1},{:.1}",
                    if k == 0 { "M" } else { " L" },
                    x(t),
                    scale.y(&plot, v)
                );
            }
            let _ = write!(out, r#""{dash}/>"#);
        }
        // Many points: smaller dots, so the line stays readable (each still carries its tooltip).
        let dense = points.len() > 30;
        for (k, &(t, v)) in points.iter().enumerate() {
            let Some(v) = finite(v) else { continue };
            let alone = !(k > 0 && finite(points[k - 1].1).is_some()
                || points.get(k + 1).is_some_and(|p| finite(p.1).is_some()));
            let _ = write!(
                out,
                r#"<circle class="pt" cx="{:.1}" cy="{:.1}" r="{}"><title>{} · {}: {}</title></circle>"#,
                x(t),
                scale.y(&plot, v),
                if alone {
                    3.5
                } else if dense {
                    1.6
                } else {
                    2.5
                },
                Esc(s.name),
                format::date_time(t),
                Esc(&unit.value(v))
            );
        }
        out.push_str("</g>");
    }
    out.push_str("</svg>");
    let entries: Vec<(&str, &str, Swatch)> = series
        .iter()
        .enumerate()
        .map(|(i, s)| {
            (
                s.name,
                colour(i),
                if s.dashed {
                    Swatch::Dashed
                } else {
                    Swatch::Line
                },
            )
        })
        .collect();
    out.push_str(&legend(&entries));
    out.push_str("</figure>");
    out
}

/// Ticks on round UTC times, at most six. Daily ticks show the date; hourly ticks show the time, and the date
/// at midnight when the chart spans more than a day.
fn time_ticks(t_min: i64, t_max: i64) -> Vec<(i64, String)> {
    let span = t_max - t_min;
    let step = TIME_STEPS
        .into_iter()
        .find(|step| span / step <= 5)
        .unwrap_or(span.max(1));
    let first = t_min.div_euclid(step) * step + if t_min.rem_euclid(step) == 0 { 0 } else { step };
    let label = |t: i64| {
        if step >= 86_400 || (span > 86_400 && t.rem_euclid(86_400) == 0) {
            format::short_date(t)
        } else {
            format::hour_minute(t)
        }
    };
    let mut ticks: Vec<(i64, String)> = (0..)
        .map(|k| first + k * step)
        .take_while(|t| *t <= t_max)
        .map(|t| (t, label(t)))
        .collect();
    if ticks.is_empty() {
        ticks.push((t_min, label(t_min)));
    }
    ticks
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_717_200_000; // 2024-06-01 00:00 UTC

    fn points_attr(html: &str) -> usize {
        let start = html.find("data-points=\"").expect("data-points") + 13;
        html[start..].split('"').next().unwrap().parse().unwrap()
    }

    #[test]
    fn draws_every_value_with_gaps_breaking_the_line() {
        let a: Vec<_> = (0..6)
            .map(|h| {
                (
                    T0 + h * 3600,
                    if h == 2 { None } else { Some(100.0 + h as f64) },
                )
            })
            .collect();
        let b = vec![
            (T0, Some(250.0)),
            (T0 + 3600, Some(f64::NAN)),
            (T0 + 7200, Some(240.0)),
        ];
        let series = [
            LineSeries {
                name: "Alpha",
                points: &a,
                dashed: false,
            },
            LineSeries {
                name: "Beta <b>",
                points: &b,
                dashed: true,
            },
        ];
        let html = line_chart(
            "Latency",
            Unit::Millis,
            &series,
            LineOptions {
                zero_based: true,
                ..LineOptions::default()
            },
            "",
        );
        assert_eq!(points_attr(&html), 7);
        assert_eq!(html.matches("<circle").count(), 7);
        // Alpha splits into two runs (hours 0–1 and 3–5); Beta's points are both isolated.
        assert_eq!(html.matches("<path").count(), 2);
        assert!(html.contains("Beta &lt;b&gt;"));
        assert!(!html.contains("<b>"));
        assert!(html.contains(r#"role="img""#) && html.contains("aria-label="));
        assert!(html.contains("Milliseconds"));
    }

    #[test]
    fn single_point_is_visible() {
        let p = vec![(T0, Some(42.0))];
        let html = line_chart(
            "Throughput",
            Unit::TokensPerSec,
            &[LineSeries {
                name: "Solo",
                points: &p,
                dashed: false,
            }],
            LineOptions::default(),
            "",
        );
        assert_eq!(points_attr(&html), 1);
        assert!(html.contains(r#"r="3.5""#));
        assert!(!html.contains("<path"));
        assert!(html.contains("Jun 1, 00:00 UTC"));
        assert!(!html.contains("NaN"));
    }

    #[test]
    fn no_values_means_empty_state() {
        let gaps = vec![(T0, None), (T0 + 60, None)];
        let html = line_chart(
            "Latency",
            Unit::Millis,
            &[LineSeries {
                name: "A",
                points: &gaps,
                dashed: false,
            }],
            LineOptions::default(),
            "d",
        );
        assert!(html.contains(r#"data-empty="true""#));
        assert!(!html.contains("<svg"));
        assert!(
            line_chart("Latency", Unit::Millis, &[], LineOptions::default(), "")
                .contains("No traffic yet")
        );
    }

    #[test]
    fn percent_axis_keeps_a_minimum_span() {
        let p = vec![(T0, Some(99.9)), (T0 + 3600, Some(100.0))];
        let html = line_chart(
            "Availability",
            Unit::Percent,
            &[LineSeries {
                name: "A",
                points: &p,
                dashed: false,
            }],
            LineOptions {
                min_span: 5.0,
                ..LineOptions::default()
            },
            "",
        );
        assert!(html.contains(">95%<") && html.contains(">100%<"), "{html}");
    }

    #[test]
    fn time_ticks_are_round() {
        let ticks = time_ticks(T0 + 600, T0 + 24 * 3600);
        assert!(ticks.len() <= 6 && ticks.len() >= 3, "{ticks:?}");
        assert!(ticks.iter().all(|(t, _)| t % 3600 == 0));
        let days = time_ticks(T0, T0 + 30 * 86_400);
        assert!(days.iter().all(|(_, l)| l.contains(' ')), "{days:?}");
        let two_days = time_ticks(T0 + 600, T0 + 47 * 3600);
        assert!(
            two_days.iter().any(|(_, l)| l == "Jun 2")
                && two_days.iter().any(|(_, l)| l == "12:00"),
            "{two_days:?}"
        );
    }
}
