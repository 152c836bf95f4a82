//! Sticky routing for prompt caches: once a conversation has used a
//! provider's cache, later requests of the same conversation go to the same
//! endpoint for as long as it stays in use (10 minutes of inactivity ends
//! it), because a cache hit there is cheaper than a cold prompt elsewhere.
//!
//! Key: account × model × conversation, where the conversation is
//! `session_id` (body, then `x-session-id`), else `prompt_cache_key`, else a
//! hash of the first system message and the first other message. With an
//! explicit key stickiness starts after the first success; without one only
//! after a cache hit. Only endpoints whose cache reads cost less than their
//! prompts are worth sticking to. Errors never refresh an entry.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use switchyard_proto::common::v1::ChatRequest;
use switchyard_proto::common::v1::content_part::Part;

use crate::catalog_view::EndpointRoute;

pub const IDLE: Duration = Duration::from_secs(600);
const MAX_ENTRIES: usize = 200_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StickyKey {
    hash: u64,
    /// From `session_id` / `prompt_cache_key` rather than the messages.
    pub explicit: bool,
}

impl StickyKey {
    pub fn of(
        account: &str,
        model: &str,
        session: Option<&str>,
        request: &ChatRequest,
    ) -> StickyKey {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        account.hash(&mut h);
        model.hash(&mut h);
        let explicit = match session.filter(|s| !s.is_empty()) {
            Some(s) => {
                s.hash(&mut h);
                true
            }
            None => {
                let first_system = request
                    .messages
                    .iter()
                    .find(|m| m.role == "system" || m.role == "developer");
                let first_other = request
                    .messages
                    .iter()
                    .find(|m| m.role != "system" && m.role != "developer");
                for m in [first_system, first_other].into_iter().flatten() {
                    m.role.hash(&mut h);
                    m.text.hash(&mut h);
                    for part in &m.parts {
                        match &part.part {
                            Some(Part::Text(t)) => t.hash(&mut h),
                            Some(Part::ImageUrl(i)) => i.url.hash(&mut h),
                            Some(Part::OtherJson(j)) => j.hash(&mut h),
                            None => {}
                        }
                    }
                }
                false
            }
        };
        StickyKey {
            hash: h.finish(),
            explicit,
        }
    }
}

#[derive(Default)]
pub struct Sticky {
    entries: Mutex<HashMap<StickyKey, (String, Instant)>>,
}

/// Whether sticking to this endpoint can save money at all.
pub fn worth_sticking(e: &EndpointRoute) -> bool {
    e.cache_read_price.is_some_and(|c| c < e.rates.prompt)
}

impl Sticky {
    pub fn get(&self, key: &StickyKey, now: Instant) -> Option<String> {
        let entries = self.entries.lock().expect("sticky poisoned");
        entries
            .get(key)
            .filter(|(_, last)| now.saturating_duration_since(*last) < IDLE)
            .map(|(e, _)| e.clone())
    }

    /// After a successful request: start or refresh stickiness.
    pub fn succeeded(
        &self,
        key: StickyKey,
        endpoint: &EndpointRoute,
        cache_hit: bool,
        now: Instant,
    ) {
        if !(key.explicit || cache_hit) || !worth_sticking(endpoint) {
            return;
        }
        let mut entries = self.entries.lock().expect("sticky poisoned");
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (_, last)| now.saturating_duration_since(*last) < IDLE);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, (endpoint.id.clone(), now));
    }
}
