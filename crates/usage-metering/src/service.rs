//! The metering use cases and their gRPC face.

use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use switchyard_kit::error::to_status;
use switchyard_kit::grpc::MAX_MESSAGE_BYTES;
use switchyard_proto::metering::v1 as pb;
use switchyard_proto::metering::v1::usage_metering_service_server::{
    UsageMeteringService, UsageMeteringServiceServer,
};
use tonic::{Request, Response, Status};

use crate::config::Config;
use crate::error::MeteringError;
use crate::keys::{self, ApiKey, KeyKind, NewKey, Pepper};
use crate::metrics::MeteringMetrics;
use crate::store::{
    AccountChoice, EmbeddedStore, KeyInsert, PostgresStore, RecordOutcome, Store, UsageRecord,
};
use crate::usage::{Generation, MAX_BATCH_EVENTS, UsageEvent};

/// Longer presented keys cannot be ours; skip hashing them.
const MAX_PRESENTED_KEY_BYTES: usize = 1024;

/// A key just created, with its text: the only time the text exists.
#[derive(Clone)]
pub struct CreatedKey {
    pub key: ApiKey,
    pub key_text: String,
}

impl std::fmt::Debug for CreatedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedKey")
            .field("key", &self.key)
            .field("key_text", &"[REDACTED]")
            .finish()
    }
}

/// The usage-metering service: cheap to clone, shared by every handler.
#[derive(Clone)]
pub struct Metering {
    store: Arc<dyn Store>,
    pepper: Pepper,
    metrics: MeteringMetrics,
}

impl Metering {
    /// Opens Postgres when a database URL is configured, else the embedded
    /// store in the data directory.
    pub async fn open(config: &Config) -> anyhow::Result<Metering> {
        match &config.database_url {
            Some(url) => {
                let pepper = match &config.key_pepper {
                    Some(secret) => Pepper::new(secret.clone()),
                    None => {
                        tracing::warn!(
                            "SWITCHYARD_KEY_PEPPER is not set; using the fixed development \
                             pepper, which is not safe for production"
                        );
                        Pepper::development()
                    }
                };
                let store = PostgresStore::connect(url).await?;
                Ok(Metering::with_store(Arc::new(store), pepper))
            }
            None => {
                let dir = &config.data_dir;
                tokio::fs::create_dir_all(dir)
                    .await
                    .with_context(|| format!("creating data directory {}", dir.display()))?;
                let pepper = match &config.key_pepper {
                    Some(secret) => Pepper::new(secret.clone()),
                    None => Pepper::load_or_create(dir)?,
                };
                let store = EmbeddedStore::open(&dir.join("metering.redb")).await?;
                Ok(Metering::with_store(Arc::new(store), pepper))
            }
        }
    }

    pub fn with_store(store: Arc<dyn Store>, pepper: Pepper) -> Metering {
        Metering {
            store,
            pepper,
            metrics: MeteringMetrics::default(),
        }
    }

    /// Exposes this service's metrics in `registry` (once per registry).
    pub fn register_metrics(&self, registry: &switchyard_kit::metrics::Registry) {
        self.metrics.register(registry);
    }

    /// The gRPC server for this service, to serve or to call in-process.
    pub fn grpc_server(&self) -> UsageMeteringServiceServer<Metering> {
        UsageMeteringServiceServer::new(self.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// The key behind a presented key text, disabled or not.
    pub async fn authenticate(&self, key_text: &str) -> Result<Option<ApiKey>, MeteringError> {
        if key_text.is_empty() || key_text.len() > MAX_PRESENTED_KEY_BYTES {
            self.metrics.key_looked_up("not_found");
            return Ok(None);
        }
        let key = self.store.find_key(&self.pepper.hash(key_text)).await?;
        self.metrics.key_looked_up(match &key {
            Some(key) if key.disabled => "disabled",
            Some(_) => "found",
            None => "not_found",
        });
        Ok(key)
    }

    /// Creates a key; an imported key that exists already is returned as is.
    pub async fn create_key(&self, new: NewKey) -> Result<CreatedKey, MeteringError> {
        let key_text = new.key_text.expose_secret().to_owned();
        let now = Utc::now();
        let key = ApiKey {
            hash: self.pepper.hash(&key_text),
            account_id: new
                .account_id
                .clone()
                .unwrap_or_else(keys::generate_account_id),
            name: new.name,
            kind: new.kind,
            disabled: false,
            label: keys::label(&key_text),
            // Millisecond precision: what the API exposes and every store keeps.
            created_at: DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now),
        };
        let account = match new.account_id {
            Some(id) => AccountChoice::Existing(id),
            None => AccountChoice::New(key.account_id.clone()),
        };
        match self.store.insert_key(key, account.clone()).await? {
            KeyInsert::Created(key) => Ok(CreatedKey { key, key_text }),
            KeyInsert::AlreadyExists(key) if new.imported => Ok(CreatedKey { key, key_text }),
            KeyInsert::AlreadyExists(_) => {
                Err(anyhow::anyhow!("generated key collides with a stored key").into())
            }
            KeyInsert::AccountNotFound => match account {
                AccountChoice::Existing(id) | AccountChoice::New(id) => {
                    Err(MeteringError::AccountNotFound(id))
                }
            },
        }
    }

    /// Bootstrap helper for the CLI and the all-in-one binary: imports
    /// `import_key` (idempotently) or generates a new key on a new account.
    pub async fn ensure_key(
        &self,
        name: &str,
        kind: KeyKind,
        import_key: Option<&str>,
    ) -> anyhow::Result<CreatedKey> {
        let new = NewKey::parse(name, kind, "", import_key)?;
        Ok(self.create_key(new).await?)
    }

    /// Prices and records a batch; all of it or, if any event is malformed,
    /// none of it.
    pub async fn record_usage(
        &self,
        events: Vec<pb::UsageEvent>,
    ) -> Result<RecordOutcome, MeteringError> {
        if events.len() > MAX_BATCH_EVENTS {
            return Err(MeteringError::BatchTooLarge(events.len()));
        }
        let records = events
            .into_iter()
            .enumerate()
            .map(|(index, raw)| {
                let event = UsageEvent::parse(index, raw)?;
                let cost = event.cost();
                Ok(UsageRecord { event, cost })
            })
            .collect::<Result<Vec<_>, MeteringError>>()?;
        let started = std::time::Instant::now();
        let outcome = self.store.record_usage(records).await?;
        self.metrics.batch_recorded(&outcome, started.elapsed());
        tracing::debug!(outcome.recorded, outcome.duplicates, "usage recorded");
        Ok(outcome)
    }

    pub async fn get_generation(
        &self,
        id: &str,
        account_id: &str,
    ) -> Result<Option<Generation>, MeteringError> {
        if id.is_empty() || account_id.is_empty() {
            return Ok(None);
        }
        Ok(self.store.get_generation(id, account_id).await?)
    }
}

#[tonic::async_trait]
impl UsageMeteringService for Metering {
    async fn authenticate_key(
        &self,
        request: Request<pb::AuthenticateKeyRequest>,
    ) -> Result<Response<pb::AuthenticateKeyResponse>, Status> {
        let key = self
            .authenticate(&request.get_ref().key)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::AuthenticateKeyResponse {
            key: key.map(Into::into),
        }))
    }

    async fn create_key(
        &self,
        request: Request<pb::CreateKeyRequest>,
    ) -> Result<Response<pb::CreateKeyResponse>, Status> {
        let req = request.into_inner();
        let new = NewKey::parse(
            &req.name,
            req.kind().into(),
            &req.account_id,
            req.import_key.as_deref(),
        )
        .map_err(to_status)?;
        let created = Metering::create_key(self, new).await.map_err(to_status)?;
        Ok(Response::new(pb::CreateKeyResponse {
            key: Some(created.key.into()),
            key_text: created.key_text,
        }))
    }

    async fn record_usage(
        &self,
        request: Request<pb::RecordUsageRequest>,
    ) -> Result<Response<pb::RecordUsageResponse>, Status> {
        let outcome = Metering::record_usage(self, request.into_inner().events)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::RecordUsageResponse {
            recorded: outcome.recorded,
            duplicates: outcome.duplicates,
        }))
    }

    async fn get_generation(
        &self,
        request: Request<pb::GetGenerationRequest>,
    ) -> Result<Response<pb::GetGenerationResponse>, Status> {
        let req = request.get_ref();
        let generation = Metering::get_generation(self, &req.id, &req.account_id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::GetGenerationResponse {
            generation: generation.map(Into::into),
        }))
    }
}
