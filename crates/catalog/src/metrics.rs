//! The catalog's Prometheus metrics: the published version, how many
//! models, providers and endpoints it holds, and open watch streams.

use std::sync::Arc;

use switchyard_kit::metrics::{Gauge, GaugeFamily, Registry};

use crate::domain::CatalogSnapshot;

/// Cheap to clone; every clone reports into the same series.
#[derive(Clone, Default)]
pub struct CatalogMetrics {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    version: Gauge,
    entries: GaugeFamily<1>,
    watchers: Gauge,
}

impl CatalogMetrics {
    pub fn register(&self, registry: &Registry) {
        registry.register(
            "switchyard_catalog_version",
            "Version of the catalog snapshot being served.",
            self.inner.version.clone(),
        );
        registry.register(
            "switchyard_catalog_entries",
            "Entries in the served snapshot, by kind (models, providers, endpoints).",
            self.inner.entries.clone(),
        );
        registry.register(
            "switchyard_catalog_watchers",
            "Open WatchCatalog streams.",
            self.inner.watchers.clone(),
        );
    }

    pub fn published(&self, snapshot: &CatalogSnapshot) {
        self.inner
            .version
            .set(i64::try_from(snapshot.version).unwrap_or(i64::MAX));
        for (kind, count) in [
            ("models", snapshot.models.len()),
            ("providers", snapshot.providers.len()),
            ("endpoints", snapshot.endpoints.len()),
        ] {
            self.inner
                .entries
                .get_or_create(&[("kind", kind.to_owned())])
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }

    /// Counts a watcher until the returned guard is dropped.
    pub fn watcher(&self) -> WatcherGuard {
        self.inner.watchers.inc();
        WatcherGuard(self.inner.watchers.clone())
    }
}

/// Held by a watch stream; uncounts it when the stream goes away.
pub struct WatcherGuard(Gauge);

impl Drop for WatcherGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
