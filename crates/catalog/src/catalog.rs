//! The service core: a store plus the current snapshot in a `watch`
//! channel. Reads are served from the snapshot; every write commits to the
//! store first, then publishes the new snapshot. Watchers only ever see the
//! latest value, so a slow one never holds a writer up.

use std::sync::Arc;

use anyhow::Context;
use switchyard_kit::Shutdown;
use tokio::sync::watch;

use crate::Config;
use crate::domain::{CatalogSnapshot, Endpoint, Model, Provider};
use crate::error::CatalogError;
use crate::metrics::CatalogMetrics;
use crate::seed::Seed;
use crate::store::{Batch, CatalogStore, EmbeddedStore, Outcome, PostgresStore};

/// File name of the embedded store inside `--data-dir`.
pub const EMBEDDED_FILE: &str = "catalog.redb";

#[derive(Clone)]
pub struct Catalog {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn CatalogStore>,
    snapshot: watch::Sender<Arc<CatalogSnapshot>>,
    /// Ends open WatchCatalog streams, which would otherwise keep a
    /// draining server alive forever.
    closing: Shutdown,
    metrics: CatalogMetrics,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("version", &self.snapshot().version)
            .finish_non_exhaustive()
    }
}

impl Catalog {
    /// Opens Postgres when `database_url` is set, else the embedded store in
    /// `data_dir`; runs migrations; applies the seed file if one is given.
    pub async fn open(config: &Config) -> anyhow::Result<Catalog> {
        let store: Arc<dyn CatalogStore> = match &config.database_url {
            Some(url) => Arc::new(PostgresStore::connect(url).await?),
            None => {
                let path = config.data_dir.join(EMBEDDED_FILE);
                tracing::info!(path = %path.display(), "using embedded catalog storage");
                Arc::new(EmbeddedStore::open(&path).await?)
            }
        };
        let catalog = Catalog::with_store(store).await?;
        if let Some(path) = &config.seed {
            let seed = crate::seed::load(path)?;
            let outcome = catalog
                .apply_seed(&seed)
                .await
                .with_context(|| format!("applying catalog seed {}", path.display()))?;
            tracing::info!(
                seed = %path.display(),
                changed = outcome.changed,
                version = outcome.version,
                "catalog seed applied"
            );
        }
        Ok(catalog)
    }

    /// A catalog over an already opened store.
    pub async fn with_store(store: Arc<dyn CatalogStore>) -> Result<Catalog, CatalogError> {
        let snapshot = store.snapshot().await?;
        let metrics = CatalogMetrics::default();
        metrics.published(&snapshot);
        let (tx, _) = watch::channel(Arc::new(snapshot));
        Ok(Catalog {
            inner: Arc::new(Inner {
                store,
                snapshot: tx,
                closing: Shutdown::new(),
                metrics,
            }),
        })
    }

    /// Exposes this catalog's metrics in `registry` (once per registry).
    pub fn register_metrics(&self, registry: &switchyard_kit::metrics::Registry) {
        self.inner.metrics.register(registry);
    }

    pub(crate) fn metrics(&self) -> &CatalogMetrics {
        &self.inner.metrics
    }

    /// The current snapshot (cheap: an `Arc` clone).
    pub fn snapshot(&self) -> Arc<CatalogSnapshot> {
        self.inner.snapshot.borrow().clone()
    }

    /// A receiver that sees every newer snapshot (coalesced if slow).
    pub fn subscribe(&self) -> watch::Receiver<Arc<CatalogSnapshot>> {
        self.inner.snapshot.subscribe()
    }

    pub fn store(&self) -> &Arc<dyn CatalogStore> {
        &self.inner.store
    }

    /// Applies a batch atomically and, if it changed anything, publishes the
    /// new snapshot before returning.
    pub async fn apply(&self, batch: Batch) -> Result<Outcome, CatalogError> {
        let outcome = self.inner.store.apply(batch).await?;
        if outcome.changed > 0 {
            self.reload().await?;
        }
        Ok(outcome)
    }

    pub async fn apply_seed(&self, seed: &Seed) -> Result<Outcome, CatalogError> {
        self.apply(seed.to_batch()).await
    }

    pub async fn upsert_model(&self, model: Model) -> Result<u64, CatalogError> {
        let batch = Batch {
            models: vec![model],
            ..Batch::default()
        };
        Ok(self.apply(batch).await?.version)
    }

    pub async fn upsert_provider(&self, provider: Provider) -> Result<u64, CatalogError> {
        let batch = Batch {
            providers: vec![provider],
            ..Batch::default()
        };
        Ok(self.apply(batch).await?.version)
    }

    pub async fn upsert_endpoint(&self, endpoint: Endpoint) -> Result<u64, CatalogError> {
        let batch = Batch {
            endpoints: vec![endpoint],
            ..Batch::default()
        };
        Ok(self.apply(batch).await?.version)
    }

    /// Returns the new version and whether the endpoint existed.
    pub async fn delete_endpoint(&self, id: &str) -> Result<(u64, bool), CatalogError> {
        let batch = Batch {
            delete_endpoints: vec![id.to_owned()],
            ..Batch::default()
        };
        let outcome = self.apply(batch).await?;
        Ok((outcome.version, outcome.changed > 0))
    }

    /// Picks up changes written by another process (another replica on the
    /// same Postgres). Cheap when nothing changed: one version read.
    pub async fn refresh(&self) -> Result<(), CatalogError> {
        if self.inner.store.version().await? != self.snapshot().version {
            self.reload().await?;
        }
        Ok(())
    }

    /// Ends every open WatchCatalog stream now and any opened later; call
    /// when the server starts draining.
    pub fn close_watchers(&self) {
        self.inner.closing.trigger();
    }

    pub(crate) fn closing(&self) -> &Shutdown {
        &self.inner.closing
    }

    async fn reload(&self) -> Result<(), CatalogError> {
        let fresh = self.inner.store.snapshot().await?;
        // Concurrent writers may finish out of order; never publish an
        // older version over a newer one.
        self.inner.snapshot.send_if_modified(|current| {
            if fresh.version > current.version {
                self.inner.metrics.published(&fresh);
                *current = Arc::new(fresh);
                true
            } else {
                false
            }
        });
        Ok(())
    }
}
