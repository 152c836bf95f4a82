//! Credits: billing modes, transfers of the double-entry ledger, holds and
//! the lease rule, and the time windows key limits count in. Pure logic
//! shared by both stores, which only persist what is decided here.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use switchyard_proto::metering::v1 as pb;

use crate::error::MeteringError;
use crate::keys::{ApiKey, LimitReset};

/// Where issued credit comes from: it goes negative by every credit issued.
pub const FUNDING: &str = "system:funding";
/// Where usage goes.
pub const REVENUE: &str = "system:revenue";

/// The ledger's own accounts (funding, revenue): never a customer's, so a
/// transfer's two legs are always on two different accounts.
pub fn is_system_account(id: &str) -> bool {
    id.starts_with("system:")
}

/// How long a lease's hold lives without being renewed. Routers renew well
/// before; a router that died lets its hold lapse after this.
pub const LEASE_TTL: Duration = Duration::seconds(120);
/// Upper bound on one transfer: $1,000,000.
pub const MAX_TRANSFER_NANOS: i64 = 1_000_000 * 1_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Billing {
    /// Requests need credit to cover their worst case.
    #[default]
    Prepaid,
    /// Metered, never refused for credit; the balance may go negative.
    Postpaid,
}

impl Billing {
    pub fn as_str(self) -> &'static str {
        match self {
            Billing::Prepaid => "prepaid",
            Billing::Postpaid => "postpaid",
        }
    }

    pub fn parse(s: &str) -> Option<Billing> {
        match s {
            "prepaid" => Some(Billing::Prepaid),
            "postpaid" => Some(Billing::Postpaid),
            _ => None,
        }
    }

    pub fn from_pb(value: pb::BillingMode) -> Billing {
        match value {
            pb::BillingMode::Postpaid => Billing::Postpaid,
            pb::BillingMode::Prepaid | pb::BillingMode::Unspecified => Billing::Prepaid,
        }
    }

    pub fn to_pb(self) -> pb::BillingMode {
        match self {
            Billing::Prepaid => pb::BillingMode::Prepaid,
            Billing::Postpaid => pb::BillingMode::Postpaid,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferKind {
    /// Credit bought or granted: funding -> customer.
    TopUp,
    /// Credit given back (a refund of usage): revenue -> customer.
    Refund,
    /// A generation's cost: customer -> revenue.
    Usage,
}

impl TransferKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TransferKind::TopUp => "top_up",
            TransferKind::Refund => "refund",
            TransferKind::Usage => "usage",
        }
    }

    pub fn parse(s: &str) -> Option<TransferKind> {
        match s {
            "top_up" => Some(TransferKind::TopUp),
            "refund" => Some(TransferKind::Refund),
            "usage" => Some(TransferKind::Usage),
            _ => None,
        }
    }
}

/// A transfer to post: its legs always sum to zero.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// Deterministic: `<kind>:<idempotency key or generation id>`.
    pub id: String,
    pub kind: TransferKind,
    pub account_id: String,
    pub amount_nanos: i64,
    pub memo: String,
}

impl Transfer {
    /// Validates an operator's top-up or refund.
    pub fn from_pb(req: &pb::PostTransferRequest) -> Result<Transfer, MeteringError> {
        let kind = match pb::TransferKind::try_from(req.kind) {
            Ok(pb::TransferKind::TopUp) => TransferKind::TopUp,
            Ok(pb::TransferKind::Refund) => TransferKind::Refund,
            _ => {
                return Err(MeteringError::InvalidTransfer(
                    "kind must be top_up or refund",
                ));
            }
        };
        if req.account_id.trim().is_empty() {
            return Err(MeteringError::InvalidTransfer("account_id is required"));
        }
        if is_system_account(req.account_id.trim()) {
            return Err(MeteringError::InvalidTransfer(
                "account_id names a system ledger account",
            ));
        }
        if req.amount_nanos <= 0 || req.amount_nanos > MAX_TRANSFER_NANOS {
            return Err(MeteringError::InvalidTransfer(
                "amount must be positive and at most $1,000,000",
            ));
        }
        let key = req.idempotency_key.trim();
        if key.is_empty() || key.len() > 255 {
            return Err(MeteringError::InvalidTransfer(
                "idempotency_key is required (at most 255 characters)",
            ));
        }
        Ok(Transfer {
            id: format!("{}:{key}", kind.as_str()),
            kind,
            account_id: req.account_id.trim().to_owned(),
            amount_nanos: req.amount_nanos,
            memo: req.memo.chars().take(500).collect(),
        })
    }

    pub fn usage(generation_id: &str, account_id: &str, amount_nanos: i64) -> Transfer {
        Transfer {
            id: format!("usage:{generation_id}"),
            kind: TransferKind::Usage,
            account_id: account_id.to_owned(),
            amount_nanos,
            memo: String::new(),
        }
    }

    /// The legs: (ledger account, signed amount). They sum to zero.
    pub fn legs(&self) -> [(&str, i64); 2] {
        let (from, to) = match self.kind {
            TransferKind::TopUp => (FUNDING, self.account_id.as_str()),
            TransferKind::Refund => (REVENUE, self.account_id.as_str()),
            TransferKind::Usage => (self.account_id.as_str(), REVENUE),
        };
        [(from, -self.amount_nanos), (to, self.amount_nanos)]
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostOutcome {
    Posted { balance_nanos: i64 },
    Duplicate { balance_nanos: i64 },
    AccountNotFound,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountSummary {
    pub account_id: String,
    pub billing: Billing,
    pub balance_nanos: i64,
    pub total_credits_nanos: i64,
    pub total_usage_nanos: i64,
    pub held_nanos: i64,
}

impl From<AccountSummary> for pb::AccountSummary {
    fn from(a: AccountSummary) -> pb::AccountSummary {
        pb::AccountSummary {
            account_id: a.account_id,
            billing: a.billing.to_pb().into(),
            balance_nanos: a.balance_nanos,
            total_credits_nanos: a.total_credits_nanos,
            total_usage_nanos: a.total_usage_nanos,
            held_nanos: a.held_nanos,
        }
    }
}

/// The ledger's invariants, as checked against the stored rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerCheck {
    /// Σ of every entry: must be 0.
    pub entries_sum_nanos: i64,
    pub transfers: u64,
    pub accounts: u64,
    pub violations: Vec<String>,
}

/// Spend of a key in the windows its limit can reset over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyUsage {
    pub total: i64,
    pub daily: i64,
    pub weekly: i64,
    pub monthly: i64,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl KeyUsage {
    /// Usage counted against the key's limit.
    pub fn in_window(&self, reset: Option<LimitReset>) -> i64 {
        match reset {
            None => self.total,
            Some(LimitReset::Daily) => self.daily,
            Some(LimitReset::Weekly) => self.weekly,
            Some(LimitReset::Monthly) => self.monthly,
        }
    }
}

/// A key with its usage, as the management API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDetails {
    pub key: ApiKey,
    pub usage: KeyUsage,
}

impl KeyDetails {
    pub fn limit_remaining(&self) -> Option<i64> {
        self.key
            .settings
            .limit_nanos
            .map(|limit| limit - self.usage.in_window(self.key.settings.limit_reset))
    }
}

impl From<KeyDetails> for pb::KeyDetails {
    fn from(d: KeyDetails) -> pb::KeyDetails {
        let limit_remaining_nanos = d.limit_remaining();
        pb::KeyDetails {
            usage_nanos: d.usage.total,
            usage_daily_nanos: d.usage.daily,
            usage_weekly_nanos: d.usage.weekly,
            usage_monthly_nanos: d.usage.monthly,
            limit_remaining_nanos,
            last_used_at_ms: d.usage.last_used_at.map(|t| t.timestamp_millis()),
            key: Some(d.key.into()),
        }
    }
}

/// The first days of the windows containing `now` (UTC; weeks start on
/// Monday, as OpenRouter's limits do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    pub today: NaiveDate,
    pub week_start: NaiveDate,
    pub month_start: NaiveDate,
}

impl Windows {
    pub fn at(now: DateTime<Utc>) -> Windows {
        let today = now.date_naive();
        let week_start = today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
        let month_start = today.with_day(1).expect("day 1 exists");
        Windows {
            today,
            week_start,
            month_start,
        }
    }
}

/// What a lease request may be granted, from the state in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseInputs {
    pub billing: Billing,
    pub balance_nanos: i64,
    /// Σ open holds of the account, this lease's included.
    pub account_held_nanos: i64,
    pub key_limit_nanos: Option<i64>,
    /// The key's usage in its limit window.
    pub key_window_usage_nanos: i64,
    /// Σ open holds of the key, this lease's included.
    pub key_held_nanos: i64,
    pub want_nanos: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseDecision {
    pub granted_nanos: i64,
    pub unlimited: bool,
    pub denial: pb::LeaseDenial,
    /// Spendable room left after the grant (i64::MAX when unbounded).
    pub available_nanos: i64,
}

/// The lease rule. A prepaid account can reserve what its balance does
/// not already have reserved; a key limit caps what the key can reserve in
/// its window. Nothing constrains a postpaid key without a limit.
pub fn decide_lease(inputs: LeaseInputs) -> LeaseDecision {
    let credit_room = match inputs.billing {
        Billing::Prepaid => Some(inputs.balance_nanos - inputs.account_held_nanos),
        Billing::Postpaid => None,
    };
    let key_room = inputs
        .key_limit_nanos
        .map(|limit| limit - inputs.key_window_usage_nanos - inputs.key_held_nanos);
    if credit_room.is_none() && key_room.is_none() {
        return LeaseDecision {
            granted_nanos: 0,
            unlimited: true,
            denial: pb::LeaseDenial::None,
            available_nanos: i64::MAX,
        };
    }
    let room = credit_room
        .unwrap_or(i64::MAX)
        .min(key_room.unwrap_or(i64::MAX))
        .max(0);
    let granted = inputs.want_nanos.clamp(0, room);
    let left = room - granted;
    let denial = if left > 0 || granted == inputs.want_nanos && inputs.want_nanos > 0 {
        pb::LeaseDenial::None
    } else if key_room.is_some_and(|k| k <= credit_room.unwrap_or(i64::MAX)) {
        pb::LeaseDenial::KeyLimit
    } else {
        pb::LeaseDenial::InsufficientCredits
    };
    LeaseDecision {
        granted_nanos: granted,
        unlimited: false,
        denial,
        available_nanos: left,
    }
}

/// A lease request after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRequest {
    pub account_id: String,
    pub key_hash: String,
    pub holder: String,
    pub lease_id: Option<String>,
    pub want_nanos: i64,
}

impl LeaseRequest {
    pub fn from_pb(req: pb::AcquireLeaseRequest) -> Result<LeaseRequest, MeteringError> {
        if req.account_id.is_empty() || req.key_hash.is_empty() {
            return Err(MeteringError::InvalidLease(
                "account_id and key_hash are required",
            ));
        }
        if req.want_nanos < 0 || req.want_nanos > MAX_TRANSFER_NANOS {
            return Err(MeteringError::InvalidLease("want_nanos out of range"));
        }
        Ok(LeaseRequest {
            account_id: req.account_id,
            key_hash: req.key_hash,
            holder: req.holder.chars().take(200).collect(),
            lease_id: (!req.lease_id.is_empty()).then_some(req.lease_id),
            want_nanos: req.want_nanos,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseGrant {
    pub lease_id: String,
    pub decision: LeaseDecision,
    pub expires_at: DateTime<Utc>,
}

pub fn new_lease_id() -> String {
    let bytes: [u8; 12] = rand::random();
    format!("lease-{}", hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn transfers_to_the_ledgers_own_accounts_are_refused() {
        let request = |account: &str| pb::PostTransferRequest {
            account_id: account.into(),
            kind: pb::TransferKind::TopUp.into(),
            amount_nanos: 1_000,
            idempotency_key: "k".into(),
            memo: String::new(),
        };
        for system in [FUNDING, REVENUE] {
            assert!(Transfer::from_pb(&request(system)).is_err(), "{system}");
        }
        let ok = Transfer::from_pb(&request("acct-1")).unwrap();
        let [(from, _), (to, _)] = ok.legs();
        assert_ne!(from, to);
    }

    fn inputs() -> LeaseInputs {
        LeaseInputs {
            billing: Billing::Prepaid,
            balance_nanos: 1_000,
            account_held_nanos: 0,
            key_limit_nanos: None,
            key_window_usage_nanos: 0,
            key_held_nanos: 0,
            want_nanos: 300,
        }
    }

    #[test]
    fn prepaid_grants_up_to_the_unheld_balance() {
        let d = decide_lease(inputs());
        assert_eq!((d.granted_nanos, d.denial), (300, pb::LeaseDenial::None));
        assert_eq!(d.available_nanos, 700);
        let d = decide_lease(LeaseInputs {
            account_held_nanos: 900,
            ..inputs()
        });
        assert_eq!(d.granted_nanos, 100);
        assert_eq!(d.denial, pb::LeaseDenial::InsufficientCredits);
        let d = decide_lease(LeaseInputs {
            balance_nanos: -5,
            want_nanos: 0,
            ..inputs()
        });
        assert_eq!(d.granted_nanos, 0);
        assert_eq!(d.denial, pb::LeaseDenial::InsufficientCredits);
    }

    #[test]
    fn key_limits_cap_both_billing_modes() {
        for billing in [Billing::Prepaid, Billing::Postpaid] {
            let d = decide_lease(LeaseInputs {
                billing,
                key_limit_nanos: Some(500),
                key_window_usage_nanos: 400,
                ..inputs()
            });
            assert_eq!(d.granted_nanos, 100, "{billing:?}");
            assert_eq!(d.denial, pb::LeaseDenial::KeyLimit);
        }
    }

    #[test]
    fn postpaid_without_a_limit_is_unlimited() {
        let d = decide_lease(LeaseInputs {
            billing: Billing::Postpaid,
            balance_nanos: -1_000_000,
            ..inputs()
        });
        assert!(d.unlimited);
        assert_eq!(d.denial, pb::LeaseDenial::None);
    }

    #[test]
    fn transfers_balance_and_windows_start_on_monday() {
        for kind in [
            TransferKind::TopUp,
            TransferKind::Refund,
            TransferKind::Usage,
        ] {
            let t = Transfer {
                id: "x".into(),
                kind,
                account_id: "a".into(),
                amount_nanos: 42,
                memo: String::new(),
            };
            assert_eq!(t.legs().iter().map(|l| l.1).sum::<i64>(), 0);
        }
        // 2026-11-22 is a Sunday.
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 23, 59, 0).unwrap();
        let w = Windows::at(now);
        assert_eq!(w.week_start.to_string(), "2026-11-16");
        assert_eq!(w.month_start.to_string(), "2026-11-01");
        assert_eq!(w.today.to_string(), "2026-11-22");
    }
}
