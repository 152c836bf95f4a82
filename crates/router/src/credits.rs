//! Credit admission without a database round trip per request.
//!
//! Each router holds, per API key, a *lease*: an allowance of the key's
//! spendable credit that usage-metering has reserved for it (a hold). A
//! request is admitted when the lease's unspent, unreserved part covers its
//! worst-case cost; that amount is reserved locally until the request
//! settles at its actual cost. Leases are topped up in the background when
//! they run low and renewed every 30 s; a request waits on metering only
//! when its key has no usable lease (the first request, an idle key, or a
//! lease too small for it). Recorded usage naming the lease draws the hold
//! down in metering, so what is reserved stays consistent across replicas.
//!
//! Overspend is bounded: a request can cost more than its worst case only
//! when the provider counts more prompt tokens than our estimate (+10%); and
//! if a router dies, or metering is unreachable for longer than a lease
//! lives (120 s), what it spent from the lease meanwhile is debited without
//! a hold behind it — at most one lease (`SWITCHYARD_CREDIT_LEASE_USD`,
//! default $1) per key per router. Usage is always recorded and debited, so
//! the balance may go that far below zero; the key is then refused (402)
//! until it is topped up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchyard_kit::Nanos;
use switchyard_kit::grpc::InternalChannel;
use switchyard_proto::metering::v1::usage_metering_service_client::UsageMeteringServiceClient;
use switchyard_proto::metering::v1::{AcquireLeaseRequest, LeaseDenial, ReleaseLeaseRequest};

use crate::catalog_view::EndpointRoute;
use crate::error::ApiError;

/// A lease is trusted this long before it is renewed synchronously.
const FRESH_FOR: Duration = Duration::from_secs(60);
/// Renew in the background once a lease is this old.
const RENEW_AFTER: Duration = Duration::from_secs(30);
/// After a denial, answer 402 from memory this long before asking again.
const DENIAL_CACHE: Duration = Duration::from_secs(1);
/// While metering is unreachable, keep spending the current lease for up
/// to this long past its freshness.
const OUTAGE_GRACE: Duration = Duration::from_secs(300);
const LEASE_CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// Keys with lease state kept in memory before idle ones are forgotten.
const MAX_SLOTS: usize = 10_000;

#[derive(Debug, Default)]
struct LeaseState {
    lease_id: String,
    granted: Nanos,
    spent: Nanos,
    reserved: Nanos,
    unlimited: bool,
    denial: i32,
    fetched_at: Option<Instant>,
    renewing: bool,
}

impl LeaseState {
    fn remaining(&self) -> Nanos {
        self.granted - self.spent - self.reserved
    }

    fn fresh(&self, now: Instant) -> bool {
        self.fetched_at
            .is_some_and(|t| now.duration_since(t) < FRESH_FOR)
    }

    fn admits(&self, worst: Nanos) -> bool {
        if self.unlimited {
            return true;
        }
        if worst == 0 {
            // Free requests need an account in good standing.
            return self.remaining() > 0 || self.denial == LeaseDenial::None as i32;
        }
        self.remaining() >= worst
    }
}

struct Slot {
    account_id: String,
    key_hash: String,
    state: Mutex<LeaseState>,
    /// One renewal at a time per key; others wait for its answer.
    renewal: tokio::sync::Mutex<()>,
}

/// Credit reserved for one request until it settles.
pub struct Reservation {
    slot: Option<Arc<Slot>>,
    amount: Nanos,
    lease_id: String,
    /// The key is not constrained: nothing to reserve or grow.
    unlimited: bool,
}

impl Reservation {
    /// A reservation that holds nothing (tests, or when credit is off).
    pub fn none() -> Reservation {
        Reservation {
            slot: None,
            amount: 0,
            lease_id: String::new(),
            unlimited: true,
        }
    }

    /// Raises the reservation to `to` (a fallback to a pricier endpoint),
    /// or refuses with 402 and leaves it as it was.
    pub async fn grow(
        &mut self,
        credits: &Credits,
        account_id: &str,
        key_hash: &str,
        to: Nanos,
    ) -> Result<(), ApiError> {
        if self.unlimited || to <= self.amount {
            return Ok(());
        }
        let mut extra = credits
            .admit(account_id, key_hash, to - self.amount)
            .await?;
        if extra.unlimited {
            return Ok(());
        }
        self.amount += std::mem::take(&mut extra.amount);
        self.lease_id = std::mem::take(&mut extra.lease_id);
        if self.slot.is_none() {
            self.slot = extra.slot.take();
        }
        extra.slot = None;
        Ok(())
    }

    /// The lease the request was admitted under, for its usage event.
    pub fn lease_id(&self) -> &str {
        &self.lease_id
    }

    /// Replaces the worst case by the actual cost.
    pub fn settle(mut self, actual: Nanos) {
        if let Some(slot) = self.slot.take() {
            let mut st = slot.state.lock().expect("lease poisoned");
            st.reserved -= self.amount;
            if st.lease_id == self.lease_id {
                st.spent += actual;
            }
        }
    }
}

impl Drop for Reservation {
    /// Not settled (the request failed before any endpoint served): the
    /// reservation is simply released.
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            slot.state.lock().expect("lease poisoned").reserved -= self.amount;
        }
    }
}

#[derive(Clone)]
pub struct Credits {
    inner: Arc<Inner>,
}

struct Inner {
    client: UsageMeteringServiceClient<InternalChannel>,
    holder: String,
    lease_target: Nanos,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

impl Credits {
    pub fn new(channel: InternalChannel, lease_target: Nanos) -> Credits {
        let id: [u8; 6] = rand::random();
        Credits {
            inner: Arc::new(Inner {
                client: UsageMeteringServiceClient::new(channel),
                holder: format!(
                    "router-{}-{}",
                    std::process::id(),
                    id.iter().map(|b| format!("{b:02x}")).collect::<String>()
                ),
                lease_target: lease_target.max(1),
                slots: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn slot(&self, account_id: &str, key_hash: &str) -> Arc<Slot> {
        let mut slots = self.inner.slots.lock().expect("leases poisoned");
        // The common case, a known key, costs no allocation.
        if let Some(slot) = slots.get(key_hash) {
            return slot.clone();
        }
        if slots.len() >= MAX_SLOTS {
            // Forget keys idle past their lease (nothing reserved): their
            // holds have lapsed in metering, and a new request renews.
            let now = Instant::now();
            slots.retain(|_, slot| {
                let st = slot.state.lock().expect("lease poisoned");
                st.reserved > 0 || st.fresh(now)
            });
        }
        slots
            .entry(key_hash.to_owned())
            .or_insert_with(|| {
                Arc::new(Slot {
                    account_id: account_id.to_owned(),
                    key_hash: key_hash.to_owned(),
                    state: Mutex::new(LeaseState::default()),
                    renewal: tokio::sync::Mutex::new(()),
                })
            })
            .clone()
    }

    /// Reserves `worst` nano-dollars of the key's credit, or refuses with
    /// 402 when neither the lease nor a renewal can cover it.
    pub async fn admit(
        &self,
        account_id: &str,
        key_hash: &str,
        worst: Nanos,
    ) -> Result<Reservation, ApiError> {
        let slot = self.slot(account_id, key_hash);
        let mut renewed = false;
        loop {
            let now = Instant::now();
            {
                let mut st = slot.state.lock().expect("lease poisoned");
                if st.fresh(now) {
                    if st.admits(worst) {
                        return Ok(self.reserve(&slot, &mut st, worst, now));
                    }
                    let recently = st
                        .fetched_at
                        .is_some_and(|t| now.duration_since(t) < DENIAL_CACHE);
                    if renewed || (recently && st.denial != LeaseDenial::None as i32) {
                        return Err(refusal(&st, worst));
                    }
                }
            }
            if renewed {
                let st = slot.state.lock().expect("lease poisoned");
                return Err(refusal(&st, worst));
            }
            match self.renew(&slot, worst).await {
                Ok(()) => renewed = true,
                Err(err @ ApiError::Unavailable(_)) => {
                    // Metering is unreachable: keep spending what the lease
                    // still holds (bounded by its size), else fail closed.
                    let mut st = slot.state.lock().expect("lease poisoned");
                    let usable = st
                        .fetched_at
                        .is_some_and(|t| now.duration_since(t) < FRESH_FOR + OUTAGE_GRACE);
                    if usable && st.admits(worst) {
                        return Ok(self.reserve(&slot, &mut st, worst, now));
                    }
                    return Err(err);
                }
                // The key is gone (deleted, disabled, expired): no grace.
                Err(err) => return Err(err),
            }
        }
    }

    fn reserve(
        &self,
        slot: &Arc<Slot>,
        st: &mut LeaseState,
        worst: Nanos,
        now: Instant,
    ) -> Reservation {
        if st.unlimited {
            self.maybe_renew_in_background(slot, st, now);
            return Reservation::none();
        }
        st.reserved += worst;
        self.maybe_renew_in_background(slot, st, now);
        Reservation {
            slot: Some(slot.clone()),
            amount: worst,
            lease_id: st.lease_id.clone(),
            unlimited: false,
        }
    }

    /// Tops the lease up (or renews it) off the request path when it runs
    /// low or gets old.
    fn maybe_renew_in_background(&self, slot: &Arc<Slot>, st: &mut LeaseState, now: Instant) {
        let old = st
            .fetched_at
            .is_none_or(|t| now.duration_since(t) >= RENEW_AFTER);
        let low = !st.unlimited
            && st.remaining() < self.inner.lease_target / 2
            && st.denial == LeaseDenial::None as i32;
        if st.renewing || !(old || low) {
            return;
        }
        st.renewing = true;
        let (this, slot) = (self.clone(), slot.clone());
        tokio::spawn(async move {
            if let Err(err) = this.renew(&slot, 0).await {
                tracing::debug!(%err, "background lease renewal failed");
            }
            slot.state.lock().expect("lease poisoned").renewing = false;
        });
    }

    /// Asks metering to extend the key's lease so it holds about the lease
    /// target (and at least `need` more than is reserved).
    async fn renew(&self, slot: &Arc<Slot>, need: Nanos) -> Result<(), ApiError> {
        let _one = slot.renewal.lock().await;
        let (lease_id, want) = {
            let st = slot.state.lock().expect("lease poisoned");
            let now = Instant::now();
            // Someone else renewed while we waited, and it is enough.
            if st.fresh(now)
                && st
                    .fetched_at
                    .is_some_and(|t| now.duration_since(t) < Duration::from_millis(50))
                && st.admits(need)
            {
                return Ok(());
            }
            let target = self.inner.lease_target.max(need.saturating_mul(2));
            let want = (target - st.remaining()).max(need - st.remaining()).max(0);
            (st.lease_id.clone(), want)
        };
        let mut client = self.inner.client.clone();
        let call = client.acquire_lease(AcquireLeaseRequest {
            account_id: slot.account_id.clone(),
            key_hash: slot.key_hash.clone(),
            holder: self.inner.holder.clone(),
            lease_id,
            want_nanos: want,
        });
        let response = match tokio::time::timeout(LEASE_CALL_TIMEOUT, call).await {
            Ok(Ok(r)) => r.into_inner(),
            Ok(Err(status)) => {
                tracing::warn!(%status, "credit lease request failed");
                return Err(ApiError::Unavailable(
                    "Credit check is temporarily unavailable".into(),
                ));
            }
            Err(_) => {
                tracing::warn!("credit lease request timed out");
                return Err(ApiError::Unavailable(
                    "Credit check is temporarily unavailable".into(),
                ));
            }
        };
        if response.denial == LeaseDenial::KeyUnknown as i32 {
            return Err(ApiError::KeyDisabled);
        }
        let mut st = slot.state.lock().expect("lease poisoned");
        if response.lease_id != st.lease_id {
            // A new lease: what was spent counted against the old one.
            st.lease_id = response.lease_id;
            st.granted = response.granted_nanos;
            st.spent = 0;
        } else {
            st.granted += response.granted_nanos;
        }
        st.unlimited = response.unlimited;
        st.denial = response.denial;
        st.fetched_at = Some(Instant::now());
        Ok(())
    }

    /// Gives every lease back (graceful shutdown, after usage is flushed),
    /// so the credit is not locked up until the holds expire.
    pub async fn release_all(&self) {
        let slots: Vec<Arc<Slot>> = self
            .inner
            .slots
            .lock()
            .expect("leases poisoned")
            .values()
            .cloned()
            .collect();
        for slot in slots {
            let lease_id = std::mem::take(&mut slot.state.lock().expect("lease poisoned").lease_id);
            if lease_id.is_empty() {
                continue;
            }
            let mut client = self.inner.client.clone();
            let call = client.release_lease(ReleaseLeaseRequest { lease_id });
            if let Err(err) = tokio::time::timeout(LEASE_CALL_TIMEOUT, call).await {
                tracing::warn!(%err, "lease release timed out; the hold will expire");
            }
        }
    }
}

fn refusal(st: &LeaseState, worst: Nanos) -> ApiError {
    let available = st.remaining().max(0);
    if st.denial == LeaseDenial::KeyLimit as i32 {
        ApiError::KeyLimitExceeded {
            required_nanos: worst,
            available_nanos: available,
        }
    } else {
        ApiError::InsufficientCredits {
            required_nanos: worst,
            available_nanos: available,
        }
    }
}

/// The most a request can cost at this endpoint: the prompt estimate (plus
/// a margin for tokenizer differences) and the largest completion it may
/// produce, at the endpoint's prices, rounded up.
pub fn worst_case(endpoint: &EndpointRoute, prompt_tokens: u64, max_tokens: Option<u32>) -> Nanos {
    let prompt = prompt_tokens + prompt_tokens / 10 + 16;
    let room = u64::from(endpoint.context_length).saturating_sub(prompt_tokens);
    let cap = endpoint
        .max_completion_tokens
        .map_or(room, |m| u64::from(m).min(room.max(1)));
    let completion = max_tokens.map_or(cap, |m| u64::from(m).min(cap.max(1)));
    let rates = &endpoint.rates;
    let atto = rates
        .prompt
        .cost_atto(prompt)
        .saturating_add(rates.completion.cost_atto(completion))
        .saturating_add(rates.request.cost_atto(1));
    let nanos = atto.div_ceil(1_000_000_000);
    Nanos::try_from(nanos).unwrap_or(Nanos::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_kit::money::Rates;

    fn endpoint(context: u32, max_out: Option<u32>) -> EndpointRoute {
        EndpointRoute {
            context_length: context,
            max_completion_tokens: max_out,
            rates: Rates {
                prompt: "0.00003".parse().unwrap(),
                completion: "0.00006".parse().unwrap(),
                request: Default::default(),
            },
            ..EndpointRoute::test_default()
        }
    }

    #[test]
    fn worst_case_covers_the_largest_possible_answer() {
        // 100 prompt tokens (+10% +16 = 126) and max_tokens 50 at gpt-4 prices.
        assert_eq!(
            worst_case(&endpoint(8192, None), 100, Some(50)),
            126 * 30_000 + 50 * 60_000
        );
        // Without max_tokens: the endpoint's max output.
        assert_eq!(
            worst_case(&endpoint(8192, Some(4096)), 100, None),
            126 * 30_000 + 4096 * 60_000
        );
        // Without either: whatever the context leaves.
        assert_eq!(
            worst_case(&endpoint(1100, None), 100, None),
            126 * 30_000 + 1000 * 60_000
        );
        // max_tokens above the endpoint's cap is capped.
        assert_eq!(
            worst_case(&endpoint(8192, Some(10)), 100, Some(500)),
            126 * 30_000 + 10 * 60_000
        );
    }

    #[test]
    fn leases_admit_within_what_is_left() {
        let st = LeaseState {
            granted: 100,
            spent: 30,
            reserved: 20,
            ..Default::default()
        };
        assert!(st.admits(50));
        assert!(!st.admits(51));
        assert!(st.admits(0));
        let broke = LeaseState {
            denial: LeaseDenial::InsufficientCredits as i32,
            ..Default::default()
        };
        assert!(
            !broke.admits(0),
            "a negative balance blocks free models too"
        );
        assert!(
            LeaseState {
                unlimited: true,
                ..Default::default()
            }
            .admits(1 << 40)
        );
    }

    #[test]
    fn reservations_release_on_drop_and_settle_at_cost() {
        let slot = Arc::new(Slot {
            account_id: "a".into(),
            key_hash: "k".into(),
            state: Mutex::new(LeaseState {
                lease_id: "l".into(),
                granted: 100,
                reserved: 80,
                ..Default::default()
            }),
            renewal: tokio::sync::Mutex::new(()),
        });
        let r = Reservation {
            slot: Some(slot.clone()),
            amount: 40,
            lease_id: "l".into(),
            unlimited: false,
        };
        drop(r);
        assert_eq!(slot.state.lock().unwrap().reserved, 40);
        let r = Reservation {
            slot: Some(slot.clone()),
            amount: 40,
            lease_id: "l".into(),
            unlimited: false,
        };
        r.settle(25);
        let st = slot.state.lock().unwrap();
        assert_eq!((st.reserved, st.spent, st.remaining()), (0, 25, 75));
    }
}
