//! Hourly status bars: one thin bar per hour, coloured by uptime band.

use std::collections::HashMap;
use std::fmt::Write as _;

use super::{empty_state, finite};
use crate::format;
use crate::html::Esc;

/// Uptime bands, as the status colours show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusBand {
    /// ≥ 95 %.
    Good,
    /// ≥ 85 %.
    Degraded,
    /// < 85 %.
    Poor,
    NoData,
}

impl StatusBand {
    pub(crate) fn of(uptime: Option<f64>) -> Self {
        match finite(uptime) {
            None => StatusBand::NoData,
            Some(v) if v >= 95.0 => StatusBand::Good,
            Some(v) if v >= 85.0 => StatusBand::Degraded,
            Some(_) => StatusBand::Poor,
        }
    }

    /// CSS class carrying the colour (so dark mode can adjust it).
    pub(crate) fn class(self) -> &'static str {
        match self {
            StatusBand::Good => "st-good",
            StatusBand::Degraded => "st-degraded",
            StatusBand::Poor => "st-poor",
            StatusBand::NoData => "st-none",
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            StatusBand::Good => "≥ 95%",
            StatusBand::Degraded => "≥ 85%",
            StatusBand::Poor => "< 85%",
            StatusBand::NoData => "No data",
        }
    }
}

/// The `hours` hourly slots ending with the hour containing `end` (or the newest sample when `end` is 0), filled
/// from `hourly`; hours without a sample are `None`. Samples are bucketed by the hour they start in.
pub(crate) fn hourly_slots(
    hourly: &[(i64, Option<f64>)],
    end: i64,
    hours: i64,
) -> Vec<(i64, Option<f64>)> {
    let end = if end > 0 {
        end
    } else {
        hourly.iter().map(|p| p.0).max().unwrap_or(0)
    };
    let last_hour = end.div_euclid(3600) * 3600;
    let by_hour: HashMap<i64, f64> = hourly
        .iter()
        .filter_map(|&(t, v)| finite(v).map(|v| (t.div_euclid(3600) * 3600, v.clamp(0.0, 100.0))))
        .collect();
    (0..hours)
        .rev()
        .map(|k| last_hour - k * 3600)
        .map(|h| (h, by_hour.get(&h).copied()))
        .collect()
}

/// One row of bars, or a compact empty state when no hour has data.
pub(crate) fn status_bars(label: &str, slots: &[(i64, Option<f64>)], empty_detail: &str) -> String {
    let count = slots.iter().filter(|s| finite(s.1).is_some()).count();
    if count == 0 {
        return empty_state(label, empty_detail);
    }
    const WIDTH: f64 = 720.0;
    let slot = WIDTH / slots.len() as f64;
    let gap = (slot * 0.2).min(2.0);
    let mut out = String::with_capacity(256 + slots.len() * 120);
    let _ = write!(
        out,
        r#"<svg class="status-svg" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} 32" preserveAspectRatio="none" role="img" aria-label="{} ({count} of {} hours with data)" data-points="{count}">"#,
        Esc(label),
        slots.len()
    );
    for (i, &(hour, uptime)) in slots.iter().enumerate() {
        let band = StatusBand::of(uptime);
        let value = finite(uptime).map_or_else(|| "no data".to_owned(), format::percent);
        let _ = write!(
            out,
            r#"<rect class="{}" x="{:.2}" y="0" width="{:.2}" height="32" rx="1.5"><title>{}: {}</title></rect>"#,
            band.class(),
            slot * i as f64 + gap / 2.0,
            slot - gap,
            format::date_time(hour),
            value
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 1_717_200_000; // 2024-06-01 00:00 UTC

    #[test]
    fn bands_follow_the_thresholds() {
        assert_eq!(StatusBand::of(Some(100.0)), StatusBand::Good);
        assert_eq!(StatusBand::of(Some(95.0)), StatusBand::Good);
        assert_eq!(StatusBand::of(Some(94.99)), StatusBand::Degraded);
        assert_eq!(StatusBand::of(Some(85.0)), StatusBand::Degraded);
        assert_eq!(StatusBand::of(Some(84.9)), StatusBand::Poor);
        assert_eq!(StatusBand::of(None), StatusBand::NoData);
        assert_eq!(StatusBand::of(Some(f64::NAN)), StatusBand::NoData);
    }

    #[test]
    fn slots_fill_missing_hours_and_end_at_now() {
        let data = vec![
            (HOUR + 120, Some(99.0)),
            (HOUR + 2 * 3600, Some(80.0)),
            (HOUR - 500 * 3600, Some(50.0)),
        ];
        let slots = hourly_slots(&data, HOUR + 2 * 3600 + 59, 72);
        assert_eq!(slots.len(), 72);
        assert_eq!(slots[71], (HOUR + 2 * 3600, Some(80.0)));
        assert_eq!(slots[70], (HOUR + 3600, None));
        assert_eq!(slots[69], (HOUR, Some(99.0)));
        assert_eq!(slots.iter().filter(|s| s.1.is_some()).count(), 2);
        // Without a clock the newest sample ends the window.
        assert_eq!(hourly_slots(&data, 0, 3).last().unwrap().0, HOUR + 2 * 3600);
        assert!(hourly_slots(&[], 0, 72).iter().all(|s| s.1.is_none()));
    }

    #[test]
    fn renders_one_rect_per_hour() {
        let slots = hourly_slots(
            &[
                (HOUR, Some(99.5)),
                (HOUR - 3600, Some(90.0)),
                (HOUR - 7200, Some(10.0)),
            ],
            HOUR,
            72,
        );
        let html = status_bars("OpenAI uptime", &slots, "");
        assert_eq!(html.matches("<rect").count(), 72);
        assert!(html.contains(r#"data-points="3""#));
        for class in ["st-good", "st-degraded", "st-poor", "st-none"] {
            assert!(html.contains(class), "{class}");
        }
        assert!(html.contains("Jun 1, 00:00 UTC: 99.5%"));
        assert!(
            status_bars("x", &hourly_slots(&[], HOUR, 72), "").contains(r#"data-empty="true""#)
        );
    }
}
