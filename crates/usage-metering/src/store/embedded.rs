//! Embedded storage in one redb file: JSON values, one write transaction per
//! call. redb serialises writers, which gives the same idempotency and
//! all-or-nothing batches as Postgres.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use redb::{Database, ReadableTable, Table, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{AccountChoice, KeyInsert, RecordOutcome, Store, UsageRecord};
use crate::keys::ApiKey;
use crate::usage::Generation;

const ACCOUNTS: TableDefinition<&str, &[u8]> = TableDefinition::new("accounts");
const KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("api_keys");
/// http_referer -> app.
const APPS: TableDefinition<&str, &[u8]> = TableDefinition::new("apps");
const GENERATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("generations");
const SEQUENCES: TableDefinition<&str, u64> = TableDefinition::new("sequences");
const APP_ID_SEQUENCE: &str = "app_id";

#[derive(Serialize, Deserialize)]
struct StoredAccount {
    created_at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
struct StoredApp {
    id: i64,
    title: Option<String>,
    created_at: DateTime<Utc>,
}

#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
}

/// Page cache of the embedded database, bytes.
const EMBEDDED_CACHE_BYTES: usize = 16 * 1024 * 1024;

impl EmbeddedStore {
    /// Opens (or creates) the database file and its tables.
    pub async fn open(path: &Path) -> anyhow::Result<EmbeddedStore> {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || {
            // redb's default page cache is 1 GiB; a laptop router needs far
            // less (the hot set is keys and the latest generations).
            let db = redb::Builder::new()
                .set_cache_size(EMBEDDED_CACHE_BYTES)
                .create(&path)
                .with_context(|| format!("opening embedded database {}", path.display()))?;
            let txn = db.begin_write()?;
            txn.open_table(ACCOUNTS)?;
            txn.open_table(KEYS)?;
            txn.open_table(APPS)?;
            txn.open_table(GENERATIONS)?;
            txn.open_table(SEQUENCES)?;
            txn.commit()?;
            Ok(EmbeddedStore { db: Arc::new(db) })
        })
        .await?
    }

    /// redb is synchronous; keep its I/O off the async workers.
    async fn blocking<T, F>(&self, f: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> anyhow::Result<T> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db)).await?
    }
}

fn read_json<T: serde::de::DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> anyhow::Result<Option<T>> {
    match table.get(key)? {
        Some(value) => Ok(Some(serde_json::from_slice(value.value())?)),
        None => Ok(None),
    }
}

fn upsert_app(
    apps: &mut Table<&str, &[u8]>,
    sequences: &mut Table<&str, u64>,
    referer: &str,
    title: Option<&str>,
) -> anyhow::Result<i64> {
    let app = match read_json::<StoredApp>(apps, referer)? {
        Some(mut app) => {
            if let Some(title) = title {
                app.title = Some(title.to_owned());
            }
            app
        }
        None => {
            let next = sequences.get(APP_ID_SEQUENCE)?.map_or(0, |v| v.value()) + 1;
            sequences.insert(APP_ID_SEQUENCE, next)?;
            StoredApp {
                id: i64::try_from(next)?,
                title: title.map(str::to_owned),
                created_at: Utc::now(),
            }
        }
    };
    apps.insert(referer, serde_json::to_vec(&app)?.as_slice())?;
    Ok(app.id)
}

#[tonic::async_trait]
impl Store for EmbeddedStore {
    async fn insert_key(&self, key: ApiKey, account: AccountChoice) -> anyhow::Result<KeyInsert> {
        self.blocking(move |db| {
            let txn = db.begin_write()?;
            let outcome = {
                let mut keys = txn.open_table(KEYS)?;
                let mut accounts = txn.open_table(ACCOUNTS)?;
                if let Some(existing) = read_json::<ApiKey>(&keys, &key.hash)? {
                    return Ok(KeyInsert::AlreadyExists(existing));
                }
                match &account {
                    AccountChoice::New(id) => {
                        let account = StoredAccount {
                            created_at: key.created_at,
                        };
                        accounts.insert(id.as_str(), serde_json::to_vec(&account)?.as_slice())?;
                    }
                    AccountChoice::Existing(id) => {
                        if accounts.get(id.as_str())?.is_none() {
                            return Ok(KeyInsert::AccountNotFound);
                        }
                    }
                }
                keys.insert(key.hash.as_str(), serde_json::to_vec(&key)?.as_slice())?;
                KeyInsert::Created(key)
            };
            txn.commit()?;
            Ok(outcome)
        })
        .await
    }

    async fn find_key(&self, hash: &str) -> anyhow::Result<Option<ApiKey>> {
        let hash = hash.to_owned();
        self.blocking(move |db| read_json(&db.begin_read()?.open_table(KEYS)?, &hash))
            .await
    }

    async fn record_usage(&self, records: Vec<UsageRecord>) -> anyhow::Result<RecordOutcome> {
        if records.is_empty() {
            return Ok(RecordOutcome::default());
        }
        self.blocking(move |db| {
            let txn = db.begin_write()?;
            let mut outcome = RecordOutcome::default();
            {
                let mut generations = txn.open_table(GENERATIONS)?;
                let mut apps = txn.open_table(APPS)?;
                let mut sequences = txn.open_table(SEQUENCES)?;
                for UsageRecord { event, cost } in records {
                    // Apps are upserted before the duplicate check, as in Postgres.
                    let app_id = match &event.http_referer {
                        Some(referer) => Some(upsert_app(
                            &mut apps,
                            &mut sequences,
                            referer,
                            event.app_title.as_deref(),
                        )?),
                        None => None,
                    };
                    let id = event.generation_id.clone();
                    if generations.get(id.as_str())?.is_some() {
                        outcome.duplicates += 1;
                        continue;
                    }
                    outcome.cost += cost.total;
                    let generation = Generation {
                        event,
                        cost,
                        app_id,
                    };
                    generations.insert(id.as_str(), serde_json::to_vec(&generation)?.as_slice())?;
                    outcome.recorded += 1;
                }
            }
            txn.commit()?;
            Ok(outcome)
        })
        .await
    }

    async fn get_generation(
        &self,
        id: &str,
        account_id: &str,
    ) -> anyhow::Result<Option<Generation>> {
        let (id, account_id) = (id.to_owned(), account_id.to_owned());
        self.blocking(move |db| {
            let generation: Option<Generation> =
                read_json(&db.begin_read()?.open_table(GENERATIONS)?, &id)?;
            Ok(generation.filter(|g| g.event.account_id == account_id))
        })
        .await
    }
}
