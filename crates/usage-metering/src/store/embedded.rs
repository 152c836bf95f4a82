//! Embedded storage in one redb file: JSON values, one write transaction per
//! call. redb serialises writers, which gives the same idempotency and
//! all-or-nothing batches as Postgres.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use redb::{Database, ReadableTable, Table, TableDefinition};
use serde::{Deserialize, Serialize};

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use switchyard_proto::metering::v1 as pb;

use super::writer::Writer;
use super::{
    AccountChoice, ActivityRows, DayRange, KeyInsert, ModelUsage, RecordOutcome, Store, UsageRecord,
};
use crate::keys::{ApiKey, KeyPatch};
use crate::ledger::{
    self, AccountSummary, Billing, KeyDetails, KeyUsage, LeaseGrant, LeaseInputs, LeaseRequest,
    LedgerCheck, PostOutcome, Transfer, TransferKind, Windows,
};
use crate::rollup::{AppCounters, PriceCounters, Rollups, UsageCounters};
use crate::usage::{Cost, Generation, UsageEvent};

const ACCOUNTS: TableDefinition<&str, &[u8]> = TableDefinition::new("accounts");
const KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("api_keys");
/// http_referer -> app.
const APPS: TableDefinition<&str, &[u8]> = TableDefinition::new("apps");
const GENERATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("generations");
const SEQUENCES: TableDefinition<&str, u64> = TableDefinition::new("sequences");
const APP_ID_SEQUENCE: &str = "app_id";
const ENTRY_SEQUENCE: &str = "entry";
/// Keys that were deleted: kept for the record, never authenticated.
const DELETED_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("deleted_keys");
/// key hash -> lifetime spend.
const KEY_TOTALS: TableDefinition<&str, &[u8]> = TableDefinition::new("key_totals");
/// ledger account id -> balance, nano-dollars.
const BALANCES: TableDefinition<&str, i64> = TableDefinition::new("ledger_balances");
const TRANSFERS: TableDefinition<&str, &[u8]> = TableDefinition::new("transfers");
/// account id -> what its transfers add up to, by kind ([`KindTotals`]):
/// the account summary reads one row instead of every transfer.
const ACCOUNT_TOTALS: TableDefinition<&str, &[u8]> = TableDefinition::new("account_totals");
/// Set once `ACCOUNT_TOTALS` holds every transfer (stores written before
/// the table existed are summed up once, on open).
const ACCOUNT_TOTALS_READY: &str = "account_totals_ready";
/// sequence -> one leg (append-only).
const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("entries");
const HOLDS: TableDefinition<&str, &[u8]> = TableDefinition::new("holds");
/// "account|day|key|model|endpoint" -> counters.
const USAGE_DAILY: TableDefinition<&str, &[u8]> = TableDefinition::new("usage_daily");
/// "key|day" -> spend that day.
const KEY_DAILY: TableDefinition<&str, i64> = TableDefinition::new("key_daily");
/// "day|model" -> counters (all accounts).
const MODEL_DAILY: TableDefinition<&str, &[u8]> = TableDefinition::new("model_daily");
/// "day|app id|model" -> counters.
const APP_DAILY: TableDefinition<&str, &[u8]> = TableDefinition::new("app_daily");
/// "model|hour|endpoint" -> counters.
const PRICE_HOURLY: TableDefinition<&str, &[u8]> = TableDefinition::new("price_hourly");

const SEP: char = '\u{1f}';

/// Accounts created before credits existed have no billing field: they
/// stay postpaid, as the Postgres migration makes them.
fn legacy_billing() -> Billing {
    Billing::Postpaid
}

#[derive(Serialize, Deserialize)]
struct StoredAccount {
    created_at: DateTime<Utc>,
    #[serde(default = "legacy_billing")]
    billing: Billing,
}

#[derive(Serialize, Deserialize, Default, Clone, Copy)]
struct KeyTotal {
    nanos: i64,
    last_used_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, Deserialize)]
struct StoredTransfer {
    transfer: Transfer,
    created_at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
struct StoredEntry {
    transfer_id: String,
    account: String,
    amount_nanos: i64,
}

/// Sums of one account's transfers, by kind, in nano-dollars.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct KindTotals {
    top_up: i64,
    usage: i64,
    refund: i64,
}

impl KindTotals {
    fn add(&mut self, kind: TransferKind, amount_nanos: i64) {
        match kind {
            TransferKind::TopUp => self.top_up += amount_nanos,
            TransferKind::Usage => self.usage += amount_nanos,
            TransferKind::Refund => self.refund += amount_nanos,
        }
    }

    fn encode(&self) -> [u8; 24] {
        let mut out = [0; 24];
        out[..8].copy_from_slice(&self.top_up.to_le_bytes());
        out[8..16].copy_from_slice(&self.usage.to_le_bytes());
        out[16..].copy_from_slice(&self.refund.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> anyhow::Result<KindTotals> {
        let bytes: &[u8; 24] = bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("account totals of {} bytes", bytes.len()))?;
        let field = |i: usize| {
            i64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("8 of 24 bytes"))
        };
        Ok(KindTotals {
            top_up: field(0),
            usage: field(1),
            refund: field(2),
        })
    }

    fn read(
        table: &impl ReadableTable<&'static str, &'static [u8]>,
        account_id: &str,
    ) -> anyhow::Result<KindTotals> {
        table
            .get(account_id)?
            .map_or(Ok(KindTotals::default()), |v| KindTotals::decode(v.value()))
    }
}

/// Fills `ACCOUNT_TOTALS` from every transfer, once, for a store written
/// before the table existed; a no-op afterwards.
fn backfill_account_totals(txn: &redb::WriteTransaction) -> anyhow::Result<()> {
    let mut sequences = txn.open_table(SEQUENCES)?;
    if sequences.get(ACCOUNT_TOTALS_READY)?.is_some() {
        return Ok(());
    }
    let mut sums: HashMap<String, KindTotals> = HashMap::new();
    for row in txn.open_table(TRANSFERS)?.iter()? {
        let t = serde_json::from_slice::<StoredTransfer>(row?.1.value())?.transfer;
        sums.entry(t.account_id)
            .or_default()
            .add(t.kind, t.amount_nanos);
    }
    if !sums.is_empty() {
        tracing::info!(
            accounts = sums.len(),
            "summed up existing transfers per account"
        );
    }
    let mut totals = txn.open_table(ACCOUNT_TOTALS)?;
    for (account, sum) in sums {
        totals.insert(account.as_str(), sum.encode().as_slice())?;
    }
    sequences.insert(ACCOUNT_TOTALS_READY, 1)?;
    Ok(())
}

#[derive(Serialize, Deserialize)]
struct StoredHold {
    account_id: String,
    key_hash: String,
    holder: String,
    amount_nanos: i64,
    open: bool,
    expires_at: DateTime<Utc>,
}

fn write_json<T: Serialize>(
    table: &mut Table<&str, &[u8]>,
    key: &str,
    value: &T,
) -> anyhow::Result<()> {
    table.insert(key, serde_json::to_vec(value)?.as_slice())?;
    Ok(())
}

/// Posts `batch` in order, skipping transfers already posted (by id), and
/// returns which ones were new. The entry sequence and every balance the
/// batch touches are read once and written back once, so a batch of usage
/// debits costs each transfer its own rows only, not a rewrite of the
/// shared revenue balance per debit.
fn post(
    transfers: &mut Table<&str, &[u8]>,
    entries: &mut Table<u64, &[u8]>,
    balances: &mut Table<&str, i64>,
    totals: &mut Table<&str, &[u8]>,
    sequences: &mut Table<&str, u64>,
    batch: &[Transfer],
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<bool>> {
    let mut next = sequences.get(ENTRY_SEQUENCE)?.map_or(0, |v| v.value());
    let first = next;
    let mut touched: HashMap<&str, i64> = HashMap::new();
    let mut sums: HashMap<&str, KindTotals> = HashMap::new();
    let mut posted = Vec::with_capacity(batch.len());
    for transfer in batch {
        if transfers.get(transfer.id.as_str())?.is_some() {
            posted.push(false);
            continue;
        }
        for (account, amount) in transfer.legs() {
            next += 1;
            let entry = StoredEntry {
                transfer_id: transfer.id.clone(),
                account: account.to_owned(),
                amount_nanos: amount,
            };
            entries.insert(next, serde_json::to_vec(&entry)?.as_slice())?;
            let balance = match touched.entry(account) {
                Entry::Occupied(balance) => balance.into_mut(),
                Entry::Vacant(slot) => slot.insert(balances.get(account)?.map_or(0, |v| v.value())),
            };
            *balance += amount;
        }
        let sum = match sums.entry(transfer.account_id.as_str()) {
            Entry::Occupied(sum) => sum.into_mut(),
            Entry::Vacant(slot) => slot.insert(KindTotals::read(totals, &transfer.account_id)?),
        };
        sum.add(transfer.kind, transfer.amount_nanos);
        write_json(
            transfers,
            &transfer.id,
            &StoredTransfer {
                transfer: transfer.clone(),
                created_at: now,
            },
        )?;
        posted.push(true);
    }
    if next != first {
        sequences.insert(ENTRY_SEQUENCE, next)?;
    }
    for (account, balance) in touched {
        balances.insert(account, balance)?;
    }
    for (account, sum) in sums {
        totals.insert(account, sum.encode().as_slice())?;
    }
    Ok(posted)
}

fn day_key(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

fn sum_key_days(
    key_daily: &impl ReadableTable<&'static str, i64>,
    hash: &str,
    since: NaiveDate,
    until: NaiveDate,
) -> anyhow::Result<i64> {
    let from = format!("{hash}{SEP}{}", day_key(since));
    let to = format!("{hash}{SEP}{}", day_key(until));
    let mut sum = 0;
    for row in key_daily.range(from.as_str()..=to.as_str())? {
        sum += row?.1.value();
    }
    Ok(sum)
}

fn key_usage(
    totals: &impl ReadableTable<&'static str, &'static [u8]>,
    key_daily: &impl ReadableTable<&'static str, i64>,
    hash: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<KeyUsage> {
    let w = Windows::at(now);
    let total: KeyTotal = read_json(totals, hash)?.unwrap_or_default();
    Ok(KeyUsage {
        total: total.nanos,
        daily: sum_key_days(key_daily, hash, w.today, w.today)?,
        weekly: sum_key_days(key_daily, hash, w.week_start, w.today)?,
        monthly: sum_key_days(key_daily, hash, w.month_start, w.today)?,
        last_used_at: total.last_used_at,
    })
}

fn add_json<T, F>(table: &mut Table<&str, &[u8]>, key: &str, add: F) -> anyhow::Result<()>
where
    T: Serialize + serde::de::DeserializeOwned + Default,
    F: FnOnce(&mut T),
{
    let mut value: T = read_json(table, key)?.unwrap_or_default();
    add(&mut value);
    write_json(table, key, &value)
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
    /// Usage commits, off the request path's cores (see `writer`).
    usage_writer: Arc<Writer>,
}

/// Page cache of the embedded database, bytes: the upper levels of every
/// tree and the newest leaves, which is what writing usage and reading keys
/// touch; older generations are read from disk when asked for.
const EMBEDDED_CACHE_BYTES: usize = 8 * 1024 * 1024;

/// The first byte of a generation stored as protobuf (`pb::Generation`).
/// Generations written before it are JSON objects, whose first byte is
/// `{`; both are read.
///
/// Protobuf is about a quarter of the JSON's size (~280 against ~1,030 bytes
/// for a typical generation), and a generation is most of what a request
/// leaves in the embedded store: the store grew ~2.9 KB per request with
/// JSON (B-tree leaves split half full under ever-increasing ids), so a busy
/// laptop router filled gigabytes an hour and usage commits slowed with the
/// bytes they had to write.
const GENERATION_PROTOBUF: u8 = 1;

fn encode_generation(event: &UsageEvent, cost: &Cost, app_id: Option<i64>) -> Vec<u8> {
    use prost::Message;
    let generation = pb::Generation {
        event: Some(event.clone().into()),
        total_cost_nanos: cost.total,
        prompt_cost_nanos: cost.prompt,
        completion_cost_nanos: cost.completion,
        app_id,
    };
    let mut bytes = Vec::with_capacity(1 + generation.encoded_len());
    bytes.push(GENERATION_PROTOBUF);
    generation
        .encode(&mut bytes)
        .expect("a Vec grows to fit the message");
    bytes
}

fn decode_generation(bytes: &[u8]) -> anyhow::Result<Generation> {
    use prost::Message;
    match bytes.first() {
        Some(&GENERATION_PROTOBUF) => {
            let stored = pb::Generation::decode(&bytes[1..])?;
            let event = stored
                .event
                .context("stored generation without its event")?;
            Ok(Generation {
                event: UsageEvent::try_from(event)
                    .map_err(|reason| anyhow::anyhow!("stored generation: {reason}"))?,
                cost: Cost {
                    prompt: stored.prompt_cost_nanos,
                    completion: stored.completion_cost_nanos,
                    total: stored.total_cost_nanos,
                },
                app_id: stored.app_id,
            })
        }
        Some(b'{') => Ok(serde_json::from_slice(bytes)?),
        _ => anyhow::bail!("stored generation in an unknown format"),
    }
}

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
            txn.open_table(DELETED_KEYS)?;
            txn.open_table(KEY_TOTALS)?;
            txn.open_table(TRANSFERS)?;
            txn.open_table(ENTRIES)?;
            txn.open_table(ACCOUNT_TOTALS)?;
            backfill_account_totals(&txn)?;
            txn.open_table(HOLDS)?;
            txn.open_table(USAGE_DAILY)?;
            txn.open_table(KEY_DAILY)?;
            txn.open_table(MODEL_DAILY)?;
            txn.open_table(APP_DAILY)?;
            txn.open_table(PRICE_HOURLY)?;
            let mut balances = txn.open_table(BALANCES)?;
            for system in [ledger::FUNDING, ledger::REVENUE] {
                if balances.get(system)?.is_none() {
                    balances.insert(system, 0)?;
                }
            }
            drop(balances);
            txn.commit()?;
            Ok(EmbeddedStore {
                db: Arc::new(db),
                usage_writer: Arc::new(
                    Writer::start().context("starting the usage writer thread")?,
                ),
            })
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
                    AccountChoice::New(id, billing) => {
                        let account = StoredAccount {
                            created_at: key.created_at,
                            billing: *billing,
                        };
                        accounts.insert(id.as_str(), serde_json::to_vec(&account)?.as_slice())?;
                        let mut balances = txn.open_table(BALANCES)?;
                        if balances.get(id.as_str())?.is_none() {
                            balances.insert(id.as_str(), 0)?;
                        }
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
        let db = self.db.clone();
        self.usage_writer
            .run(move || {
                let txn = db.begin_write()?;
                let mut outcome = RecordOutcome::default();
                {
                    let mut generations = txn.open_table(GENERATIONS)?;
                    let mut apps = txn.open_table(APPS)?;
                    let mut sequences = txn.open_table(SEQUENCES)?;
                    let mut recorded = Vec::new();
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
                        let stored = encode_generation(&event, &cost, app_id);
                        generations.insert(id.as_str(), stored.as_slice())?;
                        outcome.recorded += 1;
                        recorded.push((UsageRecord { event, cost }, app_id));
                    }
                    drop((generations, apps, sequences));
                    let rollups = Rollups::of(recorded.iter().map(|(r, a)| (r, *a)));
                    apply_rollups(&txn, &rollups)?;
                }
                txn.commit()?;
                Ok(outcome)
            })
            .await?
    }

    async fn get_generation(
        &self,
        id: &str,
        account_id: &str,
    ) -> anyhow::Result<Option<Generation>> {
        let (id, account_id) = (id.to_owned(), account_id.to_owned());
        self.blocking(move |db| {
            let generation = match db.begin_read()?.open_table(GENERATIONS)?.get(id.as_str())? {
                Some(stored) => decode_generation(stored.value())?,
                None => return Ok(None),
            };
            Ok(Some(generation).filter(|g| g.event.account_id == account_id))
        })
        .await
    }

    async fn list_keys(
        &self,
        account_id: &str,
        include_disabled: bool,
        offset: u32,
        limit: u32,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<KeyDetails>> {
        let account_id = account_id.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_read()?;
            let keys = txn.open_table(KEYS)?;
            let totals = txn.open_table(KEY_TOTALS)?;
            let key_daily = txn.open_table(KEY_DAILY)?;
            let mut found = Vec::new();
            for row in keys.iter()? {
                let key: ApiKey = serde_json::from_slice(row?.1.value())?;
                if key.account_id == account_id && (include_disabled || !key.disabled) {
                    found.push(key);
                }
            }
            found.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.hash.cmp(&b.hash)));
            found
                .into_iter()
                .skip(offset as usize)
                .take(limit as usize)
                .map(|key| {
                    let usage = key_usage(&totals, &key_daily, &key.hash, now)?;
                    Ok(KeyDetails { key, usage })
                })
                .collect()
        })
        .await
    }

    async fn key_details(
        &self,
        account_id: &str,
        hash: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<KeyDetails>> {
        let (account_id, hash) = (account_id.to_owned(), hash.to_owned());
        self.blocking(move |db| {
            let txn = db.begin_read()?;
            let key: Option<ApiKey> = read_json(&txn.open_table(KEYS)?, &hash)?;
            let Some(key) = key.filter(|k| k.account_id == account_id) else {
                return Ok(None);
            };
            let usage = key_usage(
                &txn.open_table(KEY_TOTALS)?,
                &txn.open_table(KEY_DAILY)?,
                &hash,
                now,
            )?;
            Ok(Some(KeyDetails { key, usage }))
        })
        .await
    }

    async fn update_key(
        &self,
        account_id: &str,
        hash: &str,
        patch: KeyPatch,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<ApiKey>> {
        let (account_id, hash) = (account_id.to_owned(), hash.to_owned());
        self.blocking(move |db| {
            let txn = db.begin_write()?;
            let updated = {
                let mut keys = txn.open_table(KEYS)?;
                let key: Option<ApiKey> = read_json(&keys, &hash)?;
                match key.filter(|k| k.account_id == account_id) {
                    Some(mut key) => {
                        patch.apply(&mut key, now);
                        write_json(&mut keys, &hash, &key)?;
                        Some(key)
                    }
                    None => None,
                }
            };
            txn.commit()?;
            Ok(updated)
        })
        .await
    }

    async fn delete_key(
        &self,
        account_id: &str,
        hash: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        let (account_id, hash) = (account_id.to_owned(), hash.to_owned());
        self.blocking(move |db| {
            let txn = db.begin_write()?;
            let deleted = {
                let mut keys = txn.open_table(KEYS)?;
                let key: Option<ApiKey> = read_json(&keys, &hash)?;
                match key.filter(|k| k.account_id == account_id) {
                    Some(mut key) => {
                        keys.remove(hash.as_str())?;
                        key.disabled = true;
                        key.updated_at = Some(now);
                        write_json(&mut txn.open_table(DELETED_KEYS)?, &hash, &key)?;
                        true
                    }
                    None => false,
                }
            };
            txn.commit()?;
            Ok(deleted)
        })
        .await
    }

    async fn account(
        &self,
        account_id: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<AccountSummary>> {
        let account_id = account_id.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_read()?;
            let account: Option<StoredAccount> =
                read_json(&txn.open_table(ACCOUNTS)?, &account_id)?;
            let Some(account) = account else {
                return Ok(None);
            };
            let balance = txn
                .open_table(BALANCES)?
                .get(account_id.as_str())?
                .map_or(0, |v| v.value());
            let sums = KindTotals::read(&txn.open_table(ACCOUNT_TOTALS)?, &account_id)?;
            let (credits, usage, refunds) = (sums.top_up, sums.usage, sums.refund);
            let mut held = 0;
            for row in txn.open_table(HOLDS)?.iter()? {
                let hold: StoredHold = serde_json::from_slice(row?.1.value())?;
                if hold.account_id == account_id && hold.open && hold.expires_at > now {
                    held += hold.amount_nanos;
                }
            }
            Ok(Some(AccountSummary {
                account_id,
                billing: account.billing,
                balance_nanos: balance,
                total_credits_nanos: credits,
                total_usage_nanos: usage - refunds,
                held_nanos: held,
            }))
        })
        .await
    }

    async fn post_transfer(&self, transfer: Transfer) -> anyhow::Result<PostOutcome> {
        self.blocking(move |db| {
            let txn = db.begin_write()?;
            let outcome = {
                if txn
                    .open_table(ACCOUNTS)?
                    .get(transfer.account_id.as_str())?
                    .is_none()
                {
                    return Ok(PostOutcome::AccountNotFound);
                }
                let mut balances = txn.open_table(BALANCES)?;
                let posted = post(
                    &mut txn.open_table(TRANSFERS)?,
                    &mut txn.open_table(ENTRIES)?,
                    &mut balances,
                    &mut txn.open_table(ACCOUNT_TOTALS)?,
                    &mut txn.open_table(SEQUENCES)?,
                    std::slice::from_ref(&transfer),
                    Utc::now(),
                )?[0];
                let balance_nanos = balances
                    .get(transfer.account_id.as_str())?
                    .map_or(0, |v| v.value());
                if posted {
                    PostOutcome::Posted { balance_nanos }
                } else {
                    PostOutcome::Duplicate { balance_nanos }
                }
            };
            txn.commit()?;
            Ok(outcome)
        })
        .await
    }

    async fn check_ledger(&self) -> anyhow::Result<LedgerCheck> {
        self.blocking(move |db| {
            let txn = db.begin_read()?;
            let mut check = LedgerCheck::default();
            let mut per_transfer: BTreeMap<String, i64> = BTreeMap::new();
            let mut per_account: BTreeMap<String, i64> = BTreeMap::new();
            for row in txn.open_table(ENTRIES)?.iter()? {
                let entry: StoredEntry = serde_json::from_slice(row?.1.value())?;
                check.entries_sum_nanos += entry.amount_nanos;
                *per_transfer.entry(entry.transfer_id).or_default() += entry.amount_nanos;
                *per_account.entry(entry.account).or_default() += entry.amount_nanos;
            }
            if check.entries_sum_nanos != 0 {
                check.violations.push(format!(
                    "entries sum to {} nanos, not 0",
                    check.entries_sum_nanos
                ));
            }
            for (id, sum) in &per_transfer {
                if *sum != 0 {
                    check
                        .violations
                        .push(format!("transfer {id} does not sum to 0"));
                }
            }
            for row in txn.open_table(BALANCES)?.iter()? {
                let (id, balance) = row?;
                check.accounts += 1;
                let entries = per_account.get(id.value()).copied().unwrap_or(0);
                if balance.value() != entries {
                    check.violations.push(format!(
                        "account {}: balance {} but entries sum to {entries}",
                        id.value(),
                        balance.value()
                    ));
                }
            }
            let transfers = txn.open_table(TRANSFERS)?;
            let mut usage_debits: BTreeMap<String, i64> = BTreeMap::new();
            let mut sums: BTreeMap<String, KindTotals> = BTreeMap::new();
            for row in transfers.iter()? {
                let stored: StoredTransfer = serde_json::from_slice(row?.1.value())?;
                check.transfers += 1;
                let t = stored.transfer;
                sums.entry(t.account_id.clone())
                    .or_default()
                    .add(t.kind, t.amount_nanos);
                if t.kind == TransferKind::Usage {
                    usage_debits.insert(t.id, t.amount_nanos);
                }
            }
            let totals = txn.open_table(ACCOUNT_TOTALS)?;
            for row in totals.iter()? {
                let (account, stored) = row?;
                let stored = KindTotals::decode(stored.value())?;
                let summed = sums.remove(account.value()).unwrap_or_default();
                if stored != summed {
                    check.violations.push(format!(
                        "account {}: totals {stored:?} but its transfers add up to {summed:?}",
                        account.value()
                    ));
                }
            }
            for (account, summed) in sums {
                check.violations.push(format!(
                    "account {account}: transfers add up to {summed:?} but it has no totals"
                ));
            }
            for row in txn.open_table(GENERATIONS)?.iter()? {
                let generation = decode_generation(row?.1.value())?;
                let id = format!("usage:{}", generation.event.generation_id);
                let debit = usage_debits.remove(&id);
                let cost = generation.cost.total;
                let ok = if cost > 0 {
                    debit == Some(cost)
                } else {
                    debit.is_none()
                };
                if !ok {
                    check.violations.push(format!(
                        "generation {} costs {cost} but its usage debit is {debit:?}",
                        generation.event.generation_id
                    ));
                }
            }
            for id in usage_debits.keys() {
                check
                    .violations
                    .push(format!("usage transfer {id} has no generation"));
            }
            let stale_before = Utc::now() - chrono::Duration::minutes(5);
            let mut stale = 0;
            for row in txn.open_table(HOLDS)?.iter()? {
                let hold: StoredHold = serde_json::from_slice(row?.1.value())?;
                if hold.open && hold.expires_at < stale_before {
                    stale += 1;
                }
            }
            if stale > 0 {
                check
                    .violations
                    .push(format!("{stale} holds open long past their expiry"));
            }
            Ok(check)
        })
        .await
    }

    async fn acquire_lease(
        &self,
        request: LeaseRequest,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<LeaseGrant>> {
        self.blocking(move |db| {
            // redb has one writer at a time: the whole decision is serial.
            let txn = db.begin_write()?;
            let grant = {
                let account: Option<StoredAccount> =
                    read_json(&txn.open_table(ACCOUNTS)?, &request.account_id)?;
                let Some(account) = account else {
                    return Ok(None);
                };
                let key: Option<ApiKey> = read_json(&txn.open_table(KEYS)?, &request.key_hash)?;
                let Some(key) = key.filter(|k| k.account_id == request.account_id) else {
                    return Ok(None);
                };
                if !key.is_active(now) {
                    return Ok(None);
                }
                let balance = txn
                    .open_table(BALANCES)?
                    .get(request.account_id.as_str())?
                    .map_or(0, |v| v.value());
                let mut holds = txn.open_table(HOLDS)?;
                let (mut account_held, mut key_held) = (0, 0);
                let mut existing = None;
                for row in holds.iter()? {
                    let (id, value) = row?;
                    let hold: StoredHold = serde_json::from_slice(value.value())?;
                    if !hold.open || hold.expires_at <= now || hold.account_id != request.account_id
                    {
                        continue;
                    }
                    account_held += hold.amount_nanos;
                    if hold.key_hash == request.key_hash {
                        key_held += hold.amount_nanos;
                        if request.lease_id.as_deref() == Some(id.value()) {
                            existing = Some((id.value().to_owned(), hold));
                        }
                    }
                }
                let window_usage = match key.settings.limit_reset {
                    _ if key.settings.limit_nanos.is_none() => 0,
                    reset => {
                        let usage = key_usage(
                            &txn.open_table(KEY_TOTALS)?,
                            &txn.open_table(KEY_DAILY)?,
                            &key.hash,
                            now,
                        )?;
                        usage.in_window(reset)
                    }
                };
                let decision = ledger::decide_lease(LeaseInputs {
                    billing: account.billing,
                    balance_nanos: balance,
                    account_held_nanos: account_held,
                    key_limit_nanos: key.settings.limit_nanos,
                    key_window_usage_nanos: window_usage,
                    key_held_nanos: key_held,
                    want_nanos: request.want_nanos,
                });
                let expires_at = now + ledger::LEASE_TTL;
                if decision.unlimited {
                    LeaseGrant {
                        lease_id: String::new(),
                        decision,
                        expires_at,
                    }
                } else {
                    let (lease_id, hold) = match existing {
                        Some((id, mut hold)) => {
                            hold.amount_nanos += decision.granted_nanos;
                            hold.expires_at = expires_at;
                            (id, hold)
                        }
                        None => (
                            ledger::new_lease_id(),
                            StoredHold {
                                account_id: request.account_id.clone(),
                                key_hash: request.key_hash.clone(),
                                holder: request.holder.clone(),
                                amount_nanos: decision.granted_nanos,
                                open: true,
                                expires_at,
                            },
                        ),
                    };
                    write_json(&mut holds, &lease_id, &hold)?;
                    LeaseGrant {
                        lease_id,
                        decision,
                        expires_at,
                    }
                }
            };
            txn.commit()?;
            Ok(Some(grant))
        })
        .await
    }

    async fn release_lease(&self, lease_id: &str) -> anyhow::Result<i64> {
        let lease_id = lease_id.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_write()?;
            let released = {
                let mut holds = txn.open_table(HOLDS)?;
                let hold: Option<StoredHold> = read_json(&holds, &lease_id)?;
                match hold.filter(|h| h.open) {
                    Some(mut hold) => {
                        let amount = hold.amount_nanos;
                        hold.open = false;
                        hold.amount_nanos = 0;
                        write_json(&mut holds, &lease_id, &hold)?;
                        amount
                    }
                    None => 0,
                }
            };
            txn.commit()?;
            Ok(released)
        })
        .await
    }

    async fn expire_holds(&self, now: DateTime<Utc>) -> anyhow::Result<u64> {
        self.blocking(move |db| {
            let txn = db.begin_write()?;
            let mut expired = 0;
            {
                let mut holds = txn.open_table(HOLDS)?;
                let mut stale = Vec::new();
                for row in holds.iter()? {
                    let (id, value) = row?;
                    let hold: StoredHold = serde_json::from_slice(value.value())?;
                    if hold.open && hold.expires_at <= now {
                        stale.push((id.value().to_owned(), hold));
                    }
                }
                for (id, mut hold) in stale {
                    hold.open = false;
                    hold.amount_nanos = 0;
                    write_json(&mut holds, &id, &hold)?;
                    expired += 1;
                }
            }
            txn.commit()?;
            Ok(expired)
        })
        .await
    }

    async fn activity(
        &self,
        account_id: &str,
        days: DayRange,
        key_hash: Option<&str>,
    ) -> anyhow::Result<ActivityRows> {
        let (account_id, key_hash) = (account_id.to_owned(), key_hash.map(str::to_owned));
        self.blocking(move |db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(USAGE_DAILY)?;
            let from = format!("{account_id}{SEP}{}", day_key(days.first));
            let to = format!("{account_id}{SEP}{}{SEP}\u{7f}", day_key(days.last));
            let mut grouped: BTreeMap<(String, String, String), UsageCounters> = BTreeMap::new();
            for row in table.range(from.as_str()..=to.as_str())? {
                let (key, value) = row?;
                let parts: Vec<&str> = key.value().split(SEP).collect();
                let [_, day, key, model, endpoint] = parts[..] else {
                    continue;
                };
                if key_hash.as_deref().is_some_and(|k| k != key) {
                    continue;
                }
                let counters: UsageCounters = serde_json::from_slice(value.value())?;
                grouped
                    .entry((day.to_owned(), model.to_owned(), endpoint.to_owned()))
                    .or_default()
                    .add(&counters);
            }
            Ok(grouped
                .into_iter()
                .map(|((date, model, endpoint_id), c)| pb::ActivityRow {
                    date,
                    model,
                    endpoint_id,
                    provider_name: c.provider_name,
                    requests: c.requests,
                    prompt_tokens: c.prompt_tokens,
                    completion_tokens: c.completion_tokens,
                    reasoning_tokens: c.reasoning_tokens,
                    cached_tokens: c.cached_tokens,
                    usage_nanos: c.usage_nanos,
                })
                .collect())
        })
        .await
    }

    async fn model_usage(
        &self,
        model: &str,
        days: DayRange,
        month: DayRange,
        prices_since: DateTime<Utc>,
    ) -> anyhow::Result<ModelUsage> {
        let model = model.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_read()?;
            let mut daily = Vec::new();
            let model_daily = txn.open_table(MODEL_DAILY)?;
            let from = day_key(days.first);
            let to = format!("{}{SEP}\u{7f}", day_key(days.last));
            for row in model_daily.range(from.as_str()..=to.as_str())? {
                let (key, value) = row?;
                let Some((day, row_model)) = key.value().split_once(SEP) else {
                    continue;
                };
                if row_model != model {
                    continue;
                }
                let c: UsageCounters = serde_json::from_slice(value.value())?;
                daily.push(pb::DailyModelTokens {
                    date: day.to_owned(),
                    requests: c.requests,
                    prompt_tokens: c.prompt_tokens,
                    completion_tokens: c.completion_tokens,
                    reasoning_tokens: c.reasoning_tokens,
                    cached_tokens: c.cached_tokens,
                });
            }
            let mut top_apps = app_usage(&txn, month, Some(&model))?;
            top_apps.truncate(20);
            let mut prices = Vec::new();
            let table = txn.open_table(PRICE_HOURLY)?;
            let from = format!("{model}{SEP}{}", hour_key(prices_since));
            let to = format!("{model}{SEP}\u{7f}");
            for row in table.range(from.as_str()..=to.as_str())? {
                let (key, value) = row?;
                let parts: Vec<&str> = key.value().split(SEP).collect();
                let [_, hour, endpoint] = parts[..] else {
                    continue;
                };
                let c: PriceCounters = serde_json::from_slice(value.value())?;
                let hour_ms = DateTime::parse_from_rfc3339(hour)?.timestamp_millis();
                prices.push(pb::EffectivePrice {
                    hour_ms,
                    provider_name: c.provider_name,
                    endpoint_id: endpoint.to_owned(),
                    requests: c.requests,
                    prompt_tokens: c.prompt_tokens,
                    completion_tokens: c.completion_tokens,
                    cached_tokens: c.cached_tokens,
                    prompt_cost_nanos: c.prompt_cost_nanos,
                    completion_cost_nanos: c.completion_cost_nanos,
                });
            }
            Ok(ModelUsage {
                daily,
                top_apps,
                prices,
            })
        })
        .await
    }

    async fn rankings(&self, days: DayRange) -> anyhow::Result<Vec<pb::ModelDayTokens>> {
        self.blocking(move |db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(MODEL_DAILY)?;
            let from = day_key(days.first);
            let to = format!("{}{SEP}\u{7f}", day_key(days.last));
            let mut rows = Vec::new();
            for row in table.range(from.as_str()..=to.as_str())? {
                let (key, value) = row?;
                let Some((day, model)) = key.value().split_once(SEP) else {
                    continue;
                };
                let c: UsageCounters = serde_json::from_slice(value.value())?;
                rows.push(pb::ModelDayTokens {
                    date: day.to_owned(),
                    model: model.to_owned(),
                    prompt_tokens: c.prompt_tokens,
                    completion_tokens: c.completion_tokens,
                    reasoning_tokens: c.reasoning_tokens,
                    requests: c.requests,
                });
            }
            Ok(rows)
        })
        .await
    }

    async fn app_rankings(
        &self,
        days: DayRange,
        model: Option<&str>,
    ) -> anyhow::Result<Vec<pb::AppUsage>> {
        let model = model.map(str::to_owned);
        self.blocking(move |db| {
            let txn = db.begin_read()?;
            let mut apps = app_usage(&txn, days, model.as_deref())?;
            apps.truncate(1000);
            Ok(apps)
        })
        .await
    }
}

fn hour_key(hour: DateTime<Utc>) -> String {
    hour.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Apps by tokens over `days`, optionally for one model, best first.
fn app_usage(
    txn: &redb::ReadTransaction,
    days: DayRange,
    model: Option<&str>,
) -> anyhow::Result<Vec<pb::AppUsage>> {
    let table = txn.open_table(APP_DAILY)?;
    let from = day_key(days.first);
    let to = format!("{}{SEP}\u{7f}", day_key(days.last));
    let mut by_app: BTreeMap<i64, AppCounters> = BTreeMap::new();
    for row in table.range(from.as_str()..=to.as_str())? {
        let (key, value) = row?;
        let parts: Vec<&str> = key.value().split(SEP).collect();
        let [_, app_id, row_model] = parts[..] else {
            continue;
        };
        if model.is_some_and(|m| m != row_model) {
            continue;
        }
        let c: AppCounters = serde_json::from_slice(value.value())?;
        let total = by_app.entry(app_id.parse()?).or_default();
        total.requests += c.requests;
        total.tokens += c.tokens;
    }
    // Titles and referers live in the apps table, keyed by referer.
    let mut names: BTreeMap<i64, (String, Option<String>)> = BTreeMap::new();
    for row in txn.open_table(APPS)?.iter()? {
        let (referer, value) = row?;
        let app: StoredApp = serde_json::from_slice(value.value())?;
        if by_app.contains_key(&app.id) {
            names.insert(app.id, (referer.value().to_owned(), app.title));
        }
    }
    let mut apps: Vec<pb::AppUsage> = by_app
        .into_iter()
        .map(|(app_id, c)| {
            let (http_referer, title) = names.remove(&app_id).unwrap_or_default();
            pb::AppUsage {
                app_id,
                title: title.unwrap_or_default(),
                http_referer,
                requests: c.requests,
                tokens: c.tokens,
            }
        })
        .collect();
    apps.sort_by(|a, b| b.tokens.cmp(&a.tokens).then(a.app_id.cmp(&b.app_id)));
    Ok(apps)
}

/// Posts a recorded batch's debits, draws its holds down and adds its
/// rollups, inside the batch's write transaction.
fn apply_rollups(txn: &redb::WriteTransaction, r: &Rollups) -> anyhow::Result<()> {
    let now = Utc::now();
    {
        let mut transfers = txn.open_table(TRANSFERS)?;
        let mut entries = txn.open_table(ENTRIES)?;
        let mut balances = txn.open_table(BALANCES)?;
        let mut totals = txn.open_table(ACCOUNT_TOTALS)?;
        let mut sequences = txn.open_table(SEQUENCES)?;
        post(
            &mut transfers,
            &mut entries,
            &mut balances,
            &mut totals,
            &mut sequences,
            &r.debits,
            now,
        )?;
    }
    {
        let mut holds = txn.open_table(HOLDS)?;
        for (lease_id, amount) in &r.hold_draws {
            let hold: Option<StoredHold> = read_json(&holds, lease_id)?;
            if let Some(mut hold) = hold.filter(|h| h.open) {
                hold.amount_nanos = (hold.amount_nanos - amount).max(0);
                write_json(&mut holds, lease_id, &hold)?;
            }
        }
    }
    {
        let mut totals = txn.open_table(KEY_TOTALS)?;
        let mut key_daily = txn.open_table(KEY_DAILY)?;
        for (hash, spend) in &r.key_spend {
            let mut total: KeyTotal = read_json(&totals, hash)?.unwrap_or_default();
            total.nanos += spend.nanos;
            total.last_used_at = total.last_used_at.max(Some(spend.last_used_at));
            write_json(&mut totals, hash, &total)?;
        }
        for (k, c) in &r.usage_daily {
            let key = format!("{}{SEP}{}", k.key_hash, day_key(k.day));
            let day = key_daily.get(key.as_str())?.map_or(0, |v| v.value());
            key_daily.insert(key.as_str(), day + c.usage_nanos)?;
        }
    }
    {
        let mut usage_daily = txn.open_table(USAGE_DAILY)?;
        let mut model_daily = txn.open_table(MODEL_DAILY)?;
        for (k, c) in &r.usage_daily {
            let key = [
                k.account_id.as_str(),
                &day_key(k.day),
                &k.key_hash,
                &k.model,
                &k.endpoint_id,
            ]
            .join(&SEP.to_string());
            add_json(&mut usage_daily, &key, |v: &mut UsageCounters| v.add(c))?;
            let key = format!("{}{SEP}{}", day_key(k.day), k.model);
            add_json(&mut model_daily, &key, |v: &mut UsageCounters| {
                let mut c = c.clone();
                c.provider_name.clear();
                v.add(&c)
            })?;
        }
    }
    {
        let mut app_daily = txn.open_table(APP_DAILY)?;
        for (k, c) in &r.app_daily {
            let key = format!("{}{SEP}{}{SEP}{}", day_key(k.day), k.app_id, k.model);
            add_json(&mut app_daily, &key, |v: &mut AppCounters| {
                v.requests += c.requests;
                v.tokens += c.tokens;
            })?;
        }
    }
    {
        let mut prices = txn.open_table(PRICE_HOURLY)?;
        for (k, c) in &r.price_hourly {
            let key = format!("{}{SEP}{}{SEP}{}", k.model, hour_key(k.hour), k.endpoint_id);
            add_json(&mut prices, &key, |v: &mut PriceCounters| v.add(c))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_proto::catalog::v1 as catalog_pb;

    fn event(id: &str, prompt_price: &str) -> UsageEvent {
        UsageEvent::try_from(pb::UsageEvent {
            generation_id: id.into(),
            account_id: "acct-1".into(),
            key_hash: "ab".repeat(32),
            model: "openai/gpt-4".into(),
            endpoint_id: "openai:openai/gpt-4".into(),
            provider_slug: "openai".into(),
            provider_name: "OpenAI".into(),
            upstream_id: "chatcmpl-1".into(),
            created_at_ms: 1_750_000_000_123,
            prompt_tokens: 37,
            completion_tokens: 8,
            ttft_ms: Some(120),
            finish_reason: "stop".into(),
            native_finish_reason: "end_turn".into(),
            http_referer: Some("https://app.example".into()),
            user_agent: Some("openai-python/1.0".into()),
            pricing: Some(catalog_pb::Pricing {
                prompt: prompt_price.into(),
                completion: "0.00006".into(),
                input_cache_read: Some("0.000003".into()),
                ..Default::default()
            }),
            attempts: vec![pb::ProviderAttempt {
                provider_name: "Azure".into(),
                endpoint_id: "azure:openai/gpt-4".into(),
                status: 429,
                latency_ms: 30,
            }],
            api_type: "completions".into(),
            request_id: "req-1".into(),
            lease_id: "lease-1".into(),
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn generations_are_stored_as_protobuf_and_json_ones_still_read() {
        let event = event("gen-1", "0.00003");
        let generation = Generation {
            cost: event.cost(),
            event,
            app_id: Some(7),
        };
        let stored = encode_generation(&generation.event, &generation.cost, generation.app_id);
        assert_eq!(stored[0], GENERATION_PROTOBUF);
        assert_eq!(decode_generation(&stored).unwrap(), generation);

        // What earlier versions wrote: the same generation as JSON.
        let legacy = serde_json::to_vec(&generation).unwrap();
        assert_eq!(legacy[0], b'{');
        assert_eq!(decode_generation(&legacy).unwrap(), generation);
        assert!(
            stored.len() * 2 < legacy.len(),
            "{} bytes against {}",
            stored.len(),
            legacy.len()
        );

        assert!(decode_generation(b"").is_err());
        assert!(decode_generation(&[GENERATION_PROTOBUF, 0xff, 0xff]).is_err());
        assert!(decode_generation(b"\x02rest").is_err());
    }

    #[tokio::test]
    async fn a_store_holding_json_generations_reads_and_checks_them() {
        let (dir, store) = fresh_store("embedded_gen").await;

        // A generation recorded now, and a free one left by an earlier
        // version as JSON.
        let new = event("gen-new", "0.00003");
        let cost = new.cost();
        let outcome = store
            .record_usage(vec![UsageRecord { event: new, cost }])
            .await
            .unwrap();
        assert_eq!(outcome.recorded, 1);
        let old = Generation {
            event: event("gen-old", "0"),
            cost: Cost::default(),
            app_id: None,
        };
        let legacy = serde_json::to_vec(&old).unwrap();
        run(&store.db, move |txn| {
            txn.open_table(GENERATIONS)
                .unwrap()
                .insert("gen-old", legacy.as_slice())
                .unwrap();
        })
        .await;

        let read = store
            .get_generation("gen-new", "acct-1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read.cost, cost);
        assert_eq!(read.cost.total, 1_590_000);
        assert_eq!(read.event.attempts.len(), 1);
        assert_eq!(
            store.get_generation("gen-old", "acct-1").await.unwrap(),
            Some(old)
        );
        assert_eq!(
            store.get_generation("gen-old", "acct-2").await.unwrap(),
            None
        );
        let check = store.check_ledger().await.unwrap();
        assert!(check.violations.is_empty(), "{:?}", check.violations);
        assert_eq!(check.transfers, 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The account summary reads per-account totals kept as transfers
    /// post; a store written before those totals existed gets them summed
    /// up once; `check_ledger` compares them with the transfers.
    #[tokio::test]
    async fn account_totals_follow_transfers_and_are_summed_up_for_older_stores() {
        let (dir, store) = fresh_store("embedded_tot").await;
        let db = store.db.clone();
        let account = serde_json::to_vec(&StoredAccount {
            created_at: Utc::now(),
            billing: Billing::Prepaid,
        })
        .unwrap();
        run(&db, move |txn| {
            let mut accounts = txn.open_table(ACCOUNTS).unwrap();
            accounts.insert("acct-1", account.as_slice()).unwrap();
        })
        .await;
        let top_up = Transfer {
            id: "top_up:t1".into(),
            kind: TransferKind::TopUp,
            account_id: "acct-1".into(),
            amount_nanos: 5_000_000,
            memo: String::new(),
        };
        store.post_transfer(top_up.clone()).await.unwrap();
        store.post_transfer(top_up).await.unwrap(); // a duplicate adds nothing
        for id in ["gen-a", "gen-b"] {
            let event = event(id, "0.00003");
            let cost = event.cost();
            store
                .record_usage(vec![UsageRecord { event, cost }])
                .await
                .unwrap();
        }
        let expect = |summary: AccountSummary| {
            assert_eq!(summary.total_credits_nanos, 5_000_000);
            assert_eq!(summary.total_usage_nanos, 2 * 1_590_000);
            assert_eq!(summary.balance_nanos, 5_000_000 - 2 * 1_590_000);
        };
        expect(store.account("acct-1", Utc::now()).await.unwrap().unwrap());
        let check = store.check_ledger().await.unwrap();
        assert!(check.violations.is_empty(), "{:?}", check.violations);

        // As an earlier version left it: no totals, no marker. Opening
        // sums them up from the transfers.
        run(&db, |txn| {
            txn.delete_table(ACCOUNT_TOTALS).unwrap();
            txn.open_table(SEQUENCES)
                .unwrap()
                .remove(ACCOUNT_TOTALS_READY)
                .unwrap();
        })
        .await;
        drop((store, db)); // the last handles on the file
        let store = EmbeddedStore::open(&dir.join("metering.redb"))
            .await
            .unwrap();
        let db = store.db.clone();
        expect(store.account("acct-1", Utc::now()).await.unwrap().unwrap());
        let check = store.check_ledger().await.unwrap();
        assert!(check.violations.is_empty(), "{:?}", check.violations);

        // Totals that disagree with the transfers are reported.
        let wrong = KindTotals {
            top_up: 1,
            ..KindTotals::default()
        };
        run(&db, move |txn| {
            let mut totals = txn.open_table(ACCOUNT_TOTALS).unwrap();
            totals.insert("acct-1", wrong.encode().as_slice()).unwrap();
        })
        .await;
        let check = store.check_ledger().await.unwrap();
        assert_eq!(check.violations.len(), 1, "{:?}", check.violations);
        assert!(check.violations[0].contains("acct-1"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A store in a new directory under the system's temporary one.
    async fn fresh_store(prefix: &str) -> (std::path::PathBuf, EmbeddedStore) {
        let dir = std::env::temp_dir().join(switchyard_kit::testing::unique_name(prefix));
        std::fs::create_dir_all(&dir).unwrap();
        let store = EmbeddedStore::open(&dir.join("metering.redb"))
            .await
            .unwrap();
        (dir, store)
    }

    /// Runs `f` in a write transaction of `db` and commits it.
    async fn run(db: &Arc<Database>, f: impl FnOnce(&redb::WriteTransaction) + Send + 'static) {
        let db = db.clone();
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_write().unwrap();
            f(&txn);
            txn.commit().unwrap();
        })
        .await
        .unwrap();
    }

    #[test]
    fn account_totals_round_trip_and_refuse_the_wrong_length() {
        let totals = KindTotals {
            top_up: i64::MAX,
            usage: -3,
            refund: 7,
        };
        assert_eq!(KindTotals::decode(&totals.encode()).unwrap(), totals);
        assert!(KindTotals::decode(&[0; 23]).is_err());
        assert!(KindTotals::decode(&[0; 25]).is_err());
    }
}
