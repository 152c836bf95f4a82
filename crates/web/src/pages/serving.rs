//! What the model and provider pages share about serving: the endpoint table and the hourly uptime rows.

use std::fmt::Write as _;

use super::{model_href, provider_href};
use crate::chart::{self, StatusBand};
use crate::data::{Endpoint, UptimeSeries};
use crate::format;
use crate::html::Esc;

/// Hours of uptime history shown as bars.
const UPTIME_HOURS: i64 = 72;

/// Which thing the first column of an endpoints table names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RowSubject {
    /// The model page: one row per provider.
    Provider,
    /// The provider page: one row per model.
    Model,
}

/// One column of the endpoint table: header, whether it is numeric, and how a cell is drawn (already escaped).
struct Column {
    header: &'static str,
    numeric: bool,
    cell: fn(&Endpoint) -> String,
}

/// Columns that stay even when every row is unknown: a dash there is information (no live stats yet).
const ALWAYS: [Column; 6] = [
    Column {
        header: "Tag",
        numeric: false,
        cell: tag_cell,
    },
    Column {
        header: "Context",
        numeric: true,
        cell: |e| format::tokens(e.context_length),
    },
    Column {
        header: "Input $/M",
        numeric: true,
        cell: |e| format::price(e.input_price),
    },
    Column {
        header: "Output $/M",
        numeric: true,
        cell: |e| format::price(e.output_price),
    },
    Column {
        header: "Latency",
        numeric: true,
        cell: |e| format::opt(e.latency_ms, format::millis),
    },
    Column {
        header: "Throughput",
        numeric: true,
        cell: |e| format::opt(e.throughput, format::tokens_per_sec),
    },
];

fn tag_cell(e: &Endpoint) -> String {
    if e.tag.is_empty() {
        return format::MISSING.to_owned();
    }
    format!(
        r#"<span class="tag"><code>{}</code><button type="button" data-copy="{}" aria-label="Copy tag {}">Copy</button></span>"#,
        Esc(&e.tag),
        Esc(&e.tag),
        Esc(&e.tag)
    )
}

fn uptime_cell(e: &Endpoint) -> String {
    match e.uptime {
        Some(u) if u.is_finite() => {
            format!(
                r#"<span class="swatch {}" aria-hidden="true"></span> {}"#,
                StatusBand::of(Some(u)).class(),
                format::percent(u)
            )
        }
        _ => format::MISSING.to_owned(),
    }
}

/// The endpoint table: prices, limits and live stats, one row per endpoint. Optional columns (max output, cache
/// prices, quantization) are left out when no row has a value, which keeps the table narrow on phones.
pub(super) fn endpoints_table(
    out: &mut String,
    endpoints: &[Endpoint],
    subject: RowSubject,
    caption: &str,
) {
    let [tag, context, input, output, latency, throughput] = ALWAYS;
    let optional = [
        (
            Column {
                header: "Max output",
                numeric: true,
                cell: |e| format::opt(e.max_output_tokens, format::tokens),
            },
            endpoints.iter().any(|e| e.max_output_tokens.is_some()),
        ),
        (
            Column {
                header: "Cache read $/M",
                numeric: true,
                cell: |e| format::price(e.cache_read_price),
            },
            endpoints.iter().any(|e| e.cache_read_price.is_some()),
        ),
        (
            Column {
                header: "Cache write $/M",
                numeric: true,
                cell: |e| format::price(e.cache_write_price),
            },
            endpoints.iter().any(|e| e.cache_write_price.is_some()),
        ),
        (
            Column {
                header: "Quantization",
                numeric: false,
                cell: |e| Esc(e.quantization.as_deref().unwrap_or(format::MISSING)).to_string(),
            },
            endpoints.iter().any(|e| e.quantization.is_some()),
        ),
    ];
    let [max_output, cache_read, cache_write, quantization] =
        optional.map(|(column, shown)| shown.then_some(column));
    let columns: Vec<Column> = [
        Some(tag),
        Some(context),
        max_output,
        Some(input),
        Some(output),
        cache_read,
        cache_write,
        quantization,
        Some(latency),
        Some(throughput),
    ]
    .into_iter()
    .flatten()
    .chain([Column {
        header: "Uptime",
        numeric: true,
        cell: uptime_cell,
    }])
    .collect();
    let first = match subject {
        RowSubject::Provider => "Provider",
        RowSubject::Model => "Model",
    };
    let _ = write!(
        out,
        r#"<div class="table-wrap"><table><caption class="sr-only">{}</caption><thead><tr><th scope="col">{first}</th>"#,
        Esc(caption)
    );
    for c in &columns {
        let class = if c.numeric { r#" class="num""# } else { "" };
        let _ = write!(out, r#"<th scope="col"{class}>{}</th>"#, c.header);
    }
    out.push_str("</tr></thead><tbody>");
    for e in endpoints {
        let name = match subject {
            RowSubject::Provider => format!(
                r#"<a href="{}">{}</a>"#,
                Esc(&provider_href(&e.provider.slug)),
                Esc(&e.provider.name)
            ),
            RowSubject::Model => {
                let label = if e.model_name.is_empty() {
                    &e.model_id
                } else {
                    &e.model_name
                };
                format!(
                    r#"<a href="{}">{}</a>"#,
                    Esc(&model_href(&e.model_id)),
                    Esc(label)
                )
            }
        };
        let _ = write!(out, r#"<tr><th scope="row">{name}</th>"#);
        for c in &columns {
            let class = if c.numeric { r#" class="num""# } else { "" };
            let _ = write!(out, "<td{class}>{}</td>", (c.cell)(e));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");
}

/// Hourly uptime bars, one row per series, over the 72 hours ending at `now`.
pub(super) fn uptime_rows(out: &mut String, rows: &[UptimeSeries], now: i64, what: &str) {
    if rows.is_empty() {
        out.push_str(&chart::empty_state(
            &format!("Hourly uptime per {what}"),
            "Uptime appears once requests have been routed here.",
        ));
        return;
    }
    let bands = [
        StatusBand::Good,
        StatusBand::Degraded,
        StatusBand::Poor,
        StatusBand::NoData,
    ];
    out.push_str(r#"<ul class="legend" aria-label="Uptime colours">"#);
    for band in bands {
        let _ = write!(
            out,
            r#"<li><span class="swatch {}" aria-hidden="true"></span>{}</li>"#,
            band.class(),
            band.label()
        );
    }
    out.push_str(r#"</ul><ul class="uptime-rows">"#);
    // Without a clock, all rows end at the newest sample of any row so their hours line up.
    let end = if now > 0 {
        now
    } else {
        rows.iter()
            .flat_map(|r| r.hourly.iter().map(|p| p.0))
            .max()
            .unwrap_or(0)
    };
    for row in rows {
        let slots = chart::hourly_slots(&row.hourly, end, UPTIME_HOURS);
        let known: Vec<f64> = slots.iter().filter_map(|s| s.1).collect();
        let average = if known.is_empty() {
            format::MISSING.to_owned()
        } else {
            format::percent(known.iter().sum::<f64>() / known.len() as f64)
        };
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
    fn endpoint_table_drops_columns_nobody_fills() {
        let mut e = Endpoint {
            tag: "x/fp8".into(),
            context_length: 8_192,
            ..Endpoint::default()
        };
        let mut html = String::new();
        endpoints_table(
            &mut html,
            std::slice::from_ref(&e),
            RowSubject::Provider,
            "t",
        );
        assert!(
            !html.contains("Cache read")
                && !html.contains("Quantization")
                && !html.contains("Max output")
        );
        assert!(html.contains(">Latency<") && html.contains(">Uptime<"));
        e.cache_read_price = Some(0.1);
        html.clear();
        endpoints_table(&mut html, &[e], RowSubject::Provider, "t");
        assert!(html.contains("Cache read $/M") && !html.contains("Cache write"));
        assert_eq!(
            html.matches("<th scope=\"col\"").count(),
            html.matches("<td").count() + 1
        );
    }
}
