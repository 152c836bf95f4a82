//! Embedded catalog storage in one redb file: rows as JSON keyed by id, plus
//! the version counter. redb is synchronous, so every call runs on the
//! blocking pool; its single writer serialises batches.

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableTable, Table, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Batch, CatalogStore, Outcome};
use crate::domain::CatalogSnapshot;
use crate::error::CatalogError;

const MODELS: TableDefinition<&str, &[u8]> = TableDefinition::new("models");
const PROVIDERS: TableDefinition<&str, &[u8]> = TableDefinition::new("providers");
const ENDPOINTS: TableDefinition<&str, &[u8]> = TableDefinition::new("endpoints");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const VERSION_KEY: &str = "version";
/// Bumped when the stored row encoding changes, so a future release can
/// tell an old file from a new one.
const FORMAT_KEY: &str = "format";
const FORMAT: u64 = 1;

#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").finish_non_exhaustive()
    }
}

fn db_error<E: Into<redb::Error>>(err: E) -> CatalogError {
    CatalogError::Internal(anyhow::Error::new(err.into()).context("embedded catalog store"))
}

impl EmbeddedStore {
    /// Opens (or creates) the store at `path`, creating parent directories.
    pub async fn open(path: &Path) -> anyhow::Result<EmbeddedStore> {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || -> anyhow::Result<EmbeddedStore> {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            // The whole catalog is a few hundred KB; redb's default 1 GiB
            // page cache would only hold memory.
            let db = redb::Builder::new()
                .set_cache_size(4 * 1024 * 1024)
                .create(&path)
                .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
            let txn = db.begin_write()?;
            {
                txn.open_table(MODELS)?;
                txn.open_table(PROVIDERS)?;
                txn.open_table(ENDPOINTS)?;
                let mut meta = txn.open_table(META)?;
                let format = meta.get(FORMAT_KEY)?.map(|v| v.value());
                match format {
                    None => {
                        meta.insert(FORMAT_KEY, FORMAT)?;
                    }
                    Some(FORMAT) => {}
                    Some(other) => anyhow::bail!(
                        "{} has catalog format {other}; this build reads format {FORMAT}",
                        path.display()
                    ),
                }
            }
            txn.commit()?;
            Ok(EmbeddedStore { db: Arc::new(db) })
        })
        .await?
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, CatalogError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, CatalogError> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| CatalogError::Internal(e.into()))?
    }
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CatalogError> {
    serde_json::to_vec(value).map_err(|e| CatalogError::Internal(e.into()))
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CatalogError> {
    serde_json::from_slice(bytes).map_err(|e| CatalogError::Internal(e.into()))
}

/// Writes `value` under `key` unless the same bytes are already there;
/// returns whether anything changed.
fn put<T: Serialize>(
    table: &mut Table<&str, &[u8]>,
    key: &str,
    value: &T,
) -> Result<bool, CatalogError> {
    let bytes = encode(value)?;
    let same = table
        .get(key)
        .map_err(db_error)?
        .is_some_and(|old| old.value() == bytes.as_slice());
    if !same {
        table.insert(key, bytes.as_slice()).map_err(db_error)?;
    }
    Ok(!same)
}

fn read_all<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Vec<T>, CatalogError> {
    let mut out = Vec::new();
    for row in table.iter().map_err(db_error)? {
        let (_, value) = row.map_err(db_error)?;
        out.push(decode(value.value())?);
    }
    Ok(out)
}

fn apply_in(txn: &redb::WriteTransaction, batch: Batch) -> Result<Outcome, CatalogError> {
    let mut providers = txn.open_table(PROVIDERS).map_err(db_error)?;
    let mut models = txn.open_table(MODELS).map_err(db_error)?;
    let mut endpoints = txn.open_table(ENDPOINTS).map_err(db_error)?;
    let mut meta = txn.open_table(META).map_err(db_error)?;
    let mut changed = 0;
    for p in &batch.providers {
        changed += usize::from(put(&mut providers, &p.slug, p)?);
    }
    for m in &batch.models {
        changed += usize::from(put(&mut models, &m.id, m)?);
    }
    for e in &batch.endpoints {
        if models.get(e.model_id.as_str()).map_err(db_error)?.is_none() {
            return Err(CatalogError::UnknownModel(e.model_id.clone()));
        }
        if providers
            .get(e.provider_slug.as_str())
            .map_err(db_error)?
            .is_none()
        {
            return Err(CatalogError::UnknownProvider(e.provider_slug.clone()));
        }
        changed += usize::from(put(&mut endpoints, &e.id, e)?);
    }
    for id in &batch.delete_endpoints {
        changed += usize::from(endpoints.remove(id.as_str()).map_err(db_error)?.is_some());
    }
    let mut version = meta
        .get(VERSION_KEY)
        .map_err(db_error)?
        .map_or(0, |v| v.value());
    if changed > 0 {
        version += 1;
        meta.insert(VERSION_KEY, version).map_err(db_error)?;
    }
    Ok(Outcome { version, changed })
}

#[tonic::async_trait]
impl CatalogStore for EmbeddedStore {
    async fn snapshot(&self) -> Result<CatalogSnapshot, CatalogError> {
        self.blocking(|db| {
            let txn = db.begin_read().map_err(db_error)?;
            let meta = txn.open_table(META).map_err(db_error)?;
            let version = meta
                .get(VERSION_KEY)
                .map_err(db_error)?
                .map_or(0, |v| v.value());
            Ok(CatalogSnapshot {
                version,
                models: read_all(&txn.open_table(MODELS).map_err(db_error)?)?,
                providers: read_all(&txn.open_table(PROVIDERS).map_err(db_error)?)?,
                endpoints: read_all(&txn.open_table(ENDPOINTS).map_err(db_error)?)?,
            })
        })
        .await
    }

    async fn version(&self) -> Result<u64, CatalogError> {
        self.blocking(|db| {
            let txn = db.begin_read().map_err(db_error)?;
            let meta = txn.open_table(META).map_err(db_error)?;
            let version = meta.get(VERSION_KEY).map_err(db_error)?;
            Ok(version.map_or(0, |v| v.value()))
        })
        .await
    }

    async fn apply(&self, batch: Batch) -> Result<Outcome, CatalogError> {
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(db_error)?;
            match apply_in(&txn, batch) {
                Ok(outcome) => {
                    txn.commit().map_err(db_error)?;
                    Ok(outcome)
                }
                Err(err) => {
                    txn.abort().map_err(db_error)?;
                    Err(err)
                }
            }
        })
        .await
    }
}
