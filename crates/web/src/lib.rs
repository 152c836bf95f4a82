//! Switchyard's public web pages, rendered as server-side HTML with inline SVG charts.
//!
//! A pure rendering library: fill a plain data struct, call its renderer, get a complete HTML document as a
//! `String`. No framework, no async, no external assets — one inline stylesheet and a small optional script.
//!
//! | Path | Renderer | Data |
//! |---|---|---|
//! | `/models` | [`models_index`] | [`ModelsIndex`] (with [`ModelsQuery::parse`] of the query string) |
//! | `/{author}/{slug}` | [`model_page`] | [`ModelPage`] |
//! | `/rankings` | [`rankings`] | [`Rankings`] (with [`Period::from_query`]) |
//! | `/providers/{slug}` | [`provider_page`] | [`ProviderPage`] |
//! | anything else | [`not_found`] | a message |
//!
//! All catalog and user text is HTML-escaped; URLs become links only when they are `http(s)`.

mod chart;
mod data;
mod format;
mod html;
mod layout;
mod pages;
mod query;

pub use data::{
    AppUsage, DailyTokens, EffectivePrice, Endpoint, ModelDailyTokens, ModelInfo, ModelPage,
    ModelsIndex, Period, ProviderInfo, ProviderPage, ProviderRef, ProviderSeries, RankedModel,
    Rankings, Site, TimeSeries, UptimeSeries,
};
pub use html::escape;
pub use pages::{model_page, models_index, not_found, provider_page, rankings};
pub use query::{ModelSort, ModelsQuery};
