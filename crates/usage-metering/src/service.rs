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
use crate::keys::{self, ApiKey, KeyKind, KeyPatch, LimitReset, NewKey, Pepper};
use crate::ledger::{
    AccountSummary, Billing, KeyDetails, LeaseGrant, LeaseRequest, LedgerCheck, PostOutcome,
    Transfer,
};
use crate::metrics::MeteringMetrics;
use crate::store::DayRange;
use crate::store::{
    AccountChoice, EmbeddedStore, KeyInsert, ModelUsage, PostgresStore, RecordOutcome, Store,
    UsageRecord,
};

/// Page size of key listings, as OpenRouter pages `/keys`.
const KEY_PAGE: u32 = 100;
/// `/activity` covers the last 30 completed UTC days.
const ACTIVITY_DAYS: i64 = 30;
const MAX_MODEL_DAYS: u32 = 90;
const MAX_RANKING_DAYS: i64 = 366;
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
        if switchyard_kit::api_key::shape(key_text) == switchyard_kit::api_key::Shape::Corrupt {
            self.metrics.key_looked_up("malformed");
            return Ok(None);
        }
        let key = self
            .store
            .find_key(&self.pepper.hash(key_text))
            .await?
            .filter(|key| self.pepper.verify(key_text, &key.hash))
            .map(|mut key| {
                // An expired key is reported as disabled: it stops working.
                key.disabled = !key.is_active(Utc::now());
                key
            });
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
            settings: new.settings,
            updated_at: None,
        };
        let account = match new.account_id {
            Some(id) => AccountChoice::Existing(id),
            None => AccountChoice::New(key.account_id.clone(), new.billing),
        };
        match self.store.insert_key(key, account.clone()).await? {
            KeyInsert::Created(key) => Ok(CreatedKey { key, key_text }),
            KeyInsert::AlreadyExists(key) if new.imported => Ok(CreatedKey { key, key_text }),
            KeyInsert::AlreadyExists(_) => {
                Err(anyhow::anyhow!("generated key collides with a stored key").into())
            }
            KeyInsert::AccountNotFound => match account {
                AccountChoice::Existing(id) | AccountChoice::New(id, _) => {
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
        billing: Billing,
    ) -> anyhow::Result<CreatedKey> {
        let mut new = NewKey::parse(name, kind, "", import_key)?;
        new.billing = billing;
        Ok(self.create_key(new).await?)
    }

    /// Bootstrap: a new account with a management key and an inference key,
    /// and `credits_nanos` of credit on it (0 = none).
    pub async fn bootstrap(
        &self,
        name: &str,
        billing: Billing,
        credits_nanos: i64,
    ) -> anyhow::Result<(CreatedKey, CreatedKey)> {
        let management = self
            .ensure_key(
                &format!("{name} (management)"),
                KeyKind::Management,
                None,
                billing,
            )
            .await?;
        let account = management.key.account_id.clone();
        let mut inference = NewKey::parse(name, KeyKind::Inference, &account, None)?;
        inference.billing = billing;
        let inference = self.create_key(inference).await?;
        if credits_nanos > 0 {
            self.post_transfer(pb::PostTransferRequest {
                account_id: account,
                kind: pb::TransferKind::TopUp.into(),
                amount_nanos: credits_nanos,
                idempotency_key: format!("bootstrap-{}", management.key.hash),
                memo: "bootstrap credit".into(),
            })
            .await?;
        }
        Ok((management, inference))
    }

    pub async fn list_keys(
        &self,
        account_id: &str,
        include_disabled: bool,
        offset: u32,
        limit: u32,
    ) -> Result<Vec<KeyDetails>, MeteringError> {
        let limit = if limit == 0 {
            KEY_PAGE
        } else {
            limit.min(KEY_PAGE)
        };
        Ok(self
            .store
            .list_keys(account_id, include_disabled, offset, limit, Utc::now())
            .await?)
    }

    pub async fn key_details(
        &self,
        account_id: &str,
        hash: &str,
    ) -> Result<KeyDetails, MeteringError> {
        self.store
            .key_details(account_id, hash, Utc::now())
            .await?
            .ok_or(MeteringError::KeyNotFound)
    }

    pub async fn update_key(
        &self,
        account_id: &str,
        hash: &str,
        patch: KeyPatch,
    ) -> Result<KeyDetails, MeteringError> {
        if patch.is_empty() {
            return Err(MeteringError::InvalidKeyRequest(
                "No update fields provided",
            ));
        }
        self.store
            .update_key(account_id, hash, patch, Utc::now())
            .await?
            .ok_or(MeteringError::KeyNotFound)?;
        self.key_details(account_id, hash).await
    }

    pub async fn delete_key(&self, account_id: &str, hash: &str) -> Result<(), MeteringError> {
        if self.store.delete_key(account_id, hash, Utc::now()).await? {
            Ok(())
        } else {
            Err(MeteringError::KeyNotFound)
        }
    }

    pub async fn account(&self, account_id: &str) -> Result<AccountSummary, MeteringError> {
        self.store
            .account(account_id, Utc::now())
            .await?
            .ok_or_else(|| MeteringError::AccountNotFound(account_id.to_owned()))
    }

    /// Posts a top-up or refund; the same idempotency key posts once.
    pub async fn post_transfer(
        &self,
        request: pb::PostTransferRequest,
    ) -> Result<pb::PostTransferResponse, MeteringError> {
        let transfer = Transfer::from_pb(&request)?;
        let id = transfer.id.clone();
        let account = transfer.account_id.clone();
        match self.store.post_transfer(transfer).await? {
            PostOutcome::Posted { balance_nanos } => {
                tracing::info!(transfer = %id, account = %account, "transfer posted");
                Ok(pb::PostTransferResponse {
                    transfer_id: id,
                    duplicate: false,
                    balance_nanos,
                })
            }
            PostOutcome::Duplicate { balance_nanos } => Ok(pb::PostTransferResponse {
                transfer_id: id,
                duplicate: true,
                balance_nanos,
            }),
            PostOutcome::AccountNotFound => Err(MeteringError::AccountNotFound(account)),
        }
    }

    pub async fn check_ledger(&self) -> Result<LedgerCheck, MeteringError> {
        Ok(self.store.check_ledger().await?)
    }

    pub async fn acquire_lease(
        &self,
        request: pb::AcquireLeaseRequest,
    ) -> Result<pb::AcquireLeaseResponse, MeteringError> {
        let request = LeaseRequest::from_pb(request)?;
        let now = Utc::now();
        let grant = self.store.acquire_lease(request, now).await?;
        Ok(match grant {
            Some(LeaseGrant {
                lease_id,
                decision,
                expires_at,
            }) => pb::AcquireLeaseResponse {
                lease_id,
                granted_nanos: decision.granted_nanos,
                unlimited: decision.unlimited,
                denial: decision.denial.into(),
                expires_in_ms: (expires_at - now).num_milliseconds(),
                available_nanos: decision.available_nanos,
            },
            None => pb::AcquireLeaseResponse {
                denial: pb::LeaseDenial::KeyUnknown.into(),
                ..Default::default()
            },
        })
    }

    pub async fn release_lease(&self, lease_id: &str) -> Result<i64, MeteringError> {
        Ok(self.store.release_lease(lease_id).await?)
    }

    /// Releases expired holds every 30 seconds until `shutdown`.
    pub fn start_sweeper(&self, shutdown: switchyard_kit::Shutdown) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(30));
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if let Err(err) = this.expire_holds().await {
                            tracing::warn!(%err, "hold sweep failed");
                        }
                    }
                    _ = shutdown.wait() => break,
                }
            }
        });
    }

    /// Closes holds past their expiry (a router that died, or went idle).
    pub async fn expire_holds(&self) -> Result<u64, MeteringError> {
        let expired = self.store.expire_holds(Utc::now()).await?;
        if expired > 0 {
            tracing::info!(expired, "expired credit holds released");
        }
        Ok(expired)
    }

    pub async fn activity(
        &self,
        request: &pb::GetActivityRequest,
    ) -> Result<Vec<pb::ActivityRow>, MeteringError> {
        let today = now_from(request.now_ms).date_naive();
        let window = DayRange {
            first: today - chrono::Duration::days(ACTIVITY_DAYS),
            last: today - chrono::Duration::days(1),
        };
        let days = if request.date.is_empty() {
            window
        } else {
            let day = parse_day(&request.date)?;
            if day < window.first || day > window.last {
                return Err(MeteringError::InvalidQuery(
                    "date must be one of the last 30 completed UTC days".into(),
                ));
            }
            DayRange {
                first: day,
                last: day,
            }
        };
        let key = (!request.key_hash.is_empty()).then_some(request.key_hash.as_str());
        Ok(self.store.activity(&request.account_id, days, key).await?)
    }

    pub async fn model_usage(
        &self,
        request: &pb::GetModelUsageRequest,
    ) -> Result<ModelUsage, MeteringError> {
        let now = now_from(request.now_ms);
        let today = now.date_naive();
        let days = request.days.clamp(1, MAX_MODEL_DAYS);
        let range = DayRange {
            first: today - chrono::Duration::days(i64::from(days) - 1),
            last: today,
        };
        let month = DayRange {
            first: crate::ledger::Windows::at(now).month_start,
            last: today,
        };
        // Whole hours: the bucket holding "24 hours ago" is in.
        let since = chrono::DurationRound::duration_trunc(
            now - chrono::Duration::hours(24),
            chrono::TimeDelta::hours(1),
        )
        .unwrap_or(now);
        Ok(self
            .store
            .model_usage(&request.model, range, month, since)
            .await?)
    }

    pub async fn rankings(
        &self,
        start: &str,
        end: &str,
    ) -> Result<Vec<pb::ModelDayTokens>, MeteringError> {
        Ok(self.store.rankings(day_range(start, end)?).await?)
    }

    pub async fn app_rankings(
        &self,
        start: &str,
        end: &str,
        model: &str,
    ) -> Result<Vec<pb::AppUsage>, MeteringError> {
        let model = (!model.is_empty()).then_some(model);
        Ok(self
            .store
            .app_rankings(day_range(start, end)?, model)
            .await?)
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

fn now_from(ms: i64) -> DateTime<Utc> {
    if ms > 0 {
        DateTime::from_timestamp_millis(ms).unwrap_or_else(Utc::now)
    } else {
        Utc::now()
    }
}

fn parse_day(text: &str) -> Result<chrono::NaiveDate, MeteringError> {
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| MeteringError::InvalidQuery(format!("{text:?} is not a YYYY-MM-DD date")))
}

/// An inclusive day range; defaults to the 30 days ending yesterday.
fn day_range(start: &str, end: &str) -> Result<DayRange, MeteringError> {
    let yesterday = Utc::now().date_naive() - chrono::Duration::days(1);
    let last = if end.is_empty() {
        yesterday
    } else {
        parse_day(end)?
    };
    let first = if start.is_empty() {
        last - chrono::Duration::days(ACTIVITY_DAYS - 1)
    } else {
        parse_day(start)?
    };
    if first > last {
        return Err(MeteringError::InvalidQuery(
            "start_date is after end_date".into(),
        ));
    }
    if (last - first).num_days() >= MAX_RANKING_DAYS {
        return Err(MeteringError::InvalidQuery(
            "the range spans more than 366 days".into(),
        ));
    }
    Ok(DayRange { first, last })
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
        let mut new = NewKey::parse(
            &req.name,
            req.kind().into(),
            &req.account_id,
            req.import_key.as_deref(),
        )
        .map_err(to_status)?;
        if req.limit_nanos.is_some_and(|l| l < 0) || req.rate_limit_rpm == Some(0) {
            return Err(to_status(MeteringError::InvalidKeyRequest(
                "limit must not be negative and rate_limit_rpm must be at least 1",
            )));
        }
        new.billing = Billing::from_pb(req.billing());
        new.settings = keys::KeySettings {
            limit_nanos: req.limit_nanos,
            limit_reset: LimitReset::from_pb(req.limit_reset()),
            include_byok_in_limit: req.include_byok_in_limit,
            rate_limit_rpm: req.rate_limit_rpm,
            expires_at: req.expires_at_ms.and_then(DateTime::from_timestamp_millis),
        };
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

    async fn list_keys(
        &self,
        request: Request<pb::ListKeysRequest>,
    ) -> Result<Response<pb::ListKeysResponse>, Status> {
        let r = request.get_ref();
        let keys = Metering::list_keys(self, &r.account_id, r.include_disabled, r.offset, r.limit)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ListKeysResponse {
            keys: keys.into_iter().map(Into::into).collect(),
        }))
    }

    async fn get_key(
        &self,
        request: Request<pb::GetKeyRequest>,
    ) -> Result<Response<pb::KeyDetails>, Status> {
        let r = request.get_ref();
        let details = self
            .key_details(&r.account_id, &r.hash)
            .await
            .map_err(to_status)?;
        Ok(Response::new(details.into()))
    }

    async fn update_key(
        &self,
        request: Request<pb::UpdateKeyRequest>,
    ) -> Result<Response<pb::KeyDetails>, Status> {
        let r = request.get_ref();
        let patch = KeyPatch::from_pb(r).map_err(to_status)?;
        let details = Metering::update_key(self, &r.account_id, &r.hash, patch)
            .await
            .map_err(to_status)?;
        Ok(Response::new(details.into()))
    }

    async fn delete_key(
        &self,
        request: Request<pb::DeleteKeyRequest>,
    ) -> Result<Response<pb::DeleteKeyResponse>, Status> {
        let r = request.get_ref();
        Metering::delete_key(self, &r.account_id, &r.hash)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::DeleteKeyResponse { deleted: true }))
    }

    async fn get_account(
        &self,
        request: Request<pb::GetAccountRequest>,
    ) -> Result<Response<pb::AccountSummary>, Status> {
        let summary = self
            .account(&request.get_ref().account_id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(summary.into()))
    }

    async fn post_transfer(
        &self,
        request: Request<pb::PostTransferRequest>,
    ) -> Result<Response<pb::PostTransferResponse>, Status> {
        let response = Metering::post_transfer(self, request.into_inner())
            .await
            .map_err(to_status)?;
        Ok(Response::new(response))
    }

    async fn check_ledger(
        &self,
        _request: Request<pb::CheckLedgerRequest>,
    ) -> Result<Response<pb::CheckLedgerResponse>, Status> {
        let check = Metering::check_ledger(self).await.map_err(to_status)?;
        Ok(Response::new(pb::CheckLedgerResponse {
            entries_sum_nanos: check.entries_sum_nanos,
            transfers: check.transfers,
            accounts: check.accounts,
            violations: check.violations,
        }))
    }

    async fn acquire_lease(
        &self,
        request: Request<pb::AcquireLeaseRequest>,
    ) -> Result<Response<pb::AcquireLeaseResponse>, Status> {
        let response = Metering::acquire_lease(self, request.into_inner())
            .await
            .map_err(to_status)?;
        Ok(Response::new(response))
    }

    async fn release_lease(
        &self,
        request: Request<pb::ReleaseLeaseRequest>,
    ) -> Result<Response<pb::ReleaseLeaseResponse>, Status> {
        let released = Metering::release_lease(self, &request.get_ref().lease_id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ReleaseLeaseResponse {
            released_nanos: released,
        }))
    }

    async fn get_activity(
        &self,
        request: Request<pb::GetActivityRequest>,
    ) -> Result<Response<pb::GetActivityResponse>, Status> {
        let rows = self.activity(request.get_ref()).await.map_err(to_status)?;
        Ok(Response::new(pb::GetActivityResponse { rows }))
    }

    async fn get_model_usage(
        &self,
        request: Request<pb::GetModelUsageRequest>,
    ) -> Result<Response<pb::GetModelUsageResponse>, Status> {
        let usage = self
            .model_usage(request.get_ref())
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::GetModelUsageResponse {
            daily: usage.daily,
            top_apps: usage.top_apps,
            prices: usage.prices,
        }))
    }

    async fn get_rankings(
        &self,
        request: Request<pb::GetRankingsRequest>,
    ) -> Result<Response<pb::GetRankingsResponse>, Status> {
        let r = request.get_ref();
        let rows = self
            .rankings(&r.start_date, &r.end_date)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::GetRankingsResponse { rows }))
    }

    async fn get_app_rankings(
        &self,
        request: Request<pb::GetAppRankingsRequest>,
    ) -> Result<Response<pb::GetAppRankingsResponse>, Status> {
        let r = request.get_ref();
        let apps = self
            .app_rankings(&r.start_date, &r.end_date, &r.model)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::GetAppRankingsResponse { apps }))
    }
}
