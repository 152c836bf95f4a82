//! The retry budget of one router instance: retries and fallbacks may add
//! about 20% to the load plus 10 per second (Linkerd's and tower's
//! `TpsBudget` defaults), over a 10-second window. When the budget is spent,
//! a failed request fails instead of multiplying an outage.

use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW_SLOTS: usize = 10;
const SLOT: Duration = Duration::from_secs(1);
const RATIO: f64 = 0.2;
const MIN_PER_SECOND: f64 = 10.0;

#[derive(Clone, Copy, Default)]
struct Slot {
    index: u64,
    requests: u32,
    retries: u32,
}

pub struct RetryBudget {
    epoch: Instant,
    slots: Mutex<[Slot; WINDOW_SLOTS]>,
}

impl Default for RetryBudget {
    fn default() -> RetryBudget {
        RetryBudget {
            epoch: Instant::now(),
            slots: Mutex::new([Slot::default(); WINDOW_SLOTS]),
        }
    }
}

impl RetryBudget {
    fn with_slot<R>(&self, now: Instant, f: impl FnOnce(&mut Slot, u32, u32) -> R) -> R {
        let index = now.saturating_duration_since(self.epoch).as_secs() / SLOT.as_secs();
        let mut slots = self.slots.lock().expect("budget poisoned");
        let (mut requests, mut retries) = (0, 0);
        for s in slots
            .iter()
            .filter(|s| s.index + WINDOW_SLOTS as u64 > index)
        {
            requests += s.requests;
            retries += s.retries;
        }
        let slot = &mut slots[(index % WINDOW_SLOTS as u64) as usize];
        if slot.index != index {
            *slot = Slot {
                index,
                requests: 0,
                retries: 0,
            };
        }
        f(slot, requests, retries)
    }

    /// Counts one client request.
    pub fn deposit(&self, now: Instant) {
        self.with_slot(now, |slot, _, _| slot.requests += 1);
    }

    /// Takes one retry if the budget allows it.
    pub fn withdraw(&self, now: Instant) -> bool {
        self.with_slot(now, |slot, requests, retries| {
            let allowed = requests as f64 * RATIO + MIN_PER_SECOND * WINDOW_SLOTS as f64;
            if (retries as f64) < allowed {
                slot.retries += 1;
                true
            } else {
                false
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_capped_at_twenty_percent_plus_ten_per_second() {
        let b = RetryBudget::default();
        let t = b.epoch;
        for _ in 0..1000 {
            b.deposit(t);
        }
        let granted = (0..1000).filter(|_| b.withdraw(t)).count();
        assert_eq!(granted, 200 + 100);
        // The window slides: ten seconds later the budget is back.
        let later = t + Duration::from_secs(11);
        assert!(b.withdraw(later));
    }
}
