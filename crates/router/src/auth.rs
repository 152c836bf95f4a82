//! API key authentication from a local cache. A miss asks usage-metering
//! once; answers are kept for a few seconds (so a revoked key stops working
//! within that TTL on every replica). An expired positive entry is served
//! while one background refresh runs, so steady traffic never waits on
//! metering.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::HeaderMap;
use sha2::{Digest, Sha256};
use switchyard_kit::grpc::InternalChannel;
use switchyard_proto::metering::v1::usage_metering_service_client::UsageMeteringServiceClient;
use switchyard_proto::metering::v1::{AuthenticateKeyRequest, KeyInfo, KeyKind};

use crate::error::ApiError;

const POSITIVE_TTL: Duration = Duration::from_secs(5);
const NEGATIVE_TTL: Duration = Duration::from_secs(2);
/// Bounds memory against floods of random keys.
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone)]
pub struct Caller {
    pub key_hash: String,
    pub account_id: String,
    /// The key's own requests-per-minute limit, if it sets one.
    pub rate_limit_rpm: Option<u32>,
    pub key: Arc<KeyInfo>,
}

/// Which keys an endpoint accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Completions: inference keys only.
    Inference,
    /// `/keys`, `/credits`, `/activity`: management keys only.
    Management,
    /// `/key`, datasets: any valid key.
    Any,
}

struct Entry {
    key: Option<Arc<KeyInfo>>,
    fetched: Instant,
    refreshing: bool,
}

#[derive(Clone)]
pub struct KeyCache {
    metering: UsageMeteringServiceClient<InternalChannel>,
    entries: Arc<Mutex<HashMap<[u8; 32], Entry>>>,
}

/// The bearer token of a request (`Authorization: Bearer ...`, or
/// `x-api-key` as Anthropic clients send it).
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get(http::header::AUTHORIZATION) {
        let value = value.to_str().ok()?.trim();
        let (scheme, token) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let token = token.trim();
        return (!token.is_empty()).then_some(token);
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

impl KeyCache {
    pub fn new(channel: InternalChannel) -> KeyCache {
        KeyCache {
            metering: UsageMeteringServiceClient::new(channel),
            entries: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Authenticates an inference call.
    pub async fn authenticate(&self, key: Option<&str>) -> Result<Caller, ApiError> {
        self.authenticate_for(key, Scope::Inference).await
    }

    /// Authenticates a call to an endpoint of `scope`.
    pub async fn authenticate_for(
        &self,
        key: Option<&str>,
        scope: Scope,
    ) -> Result<Caller, ApiError> {
        let key = key.ok_or(ApiError::MissingKey)?;
        // A key in our format with a bad checksum cannot exist: no lookup.
        if switchyard_kit::api_key::shape(key) == switchyard_kit::api_key::Shape::Corrupt {
            return Err(ApiError::InvalidKey);
        }
        let info = self.lookup(key).await?.ok_or(ApiError::InvalidKey)?;
        if info.disabled {
            return Err(ApiError::KeyDisabled);
        }
        let management = info.kind == KeyKind::Management as i32;
        match scope {
            Scope::Inference if management => return Err(ApiError::ManagementKey),
            Scope::Management if !management => return Err(ApiError::ManagementKeyRequired),
            _ => {}
        }
        Ok(Caller {
            key_hash: info.hash.clone(),
            account_id: info.account_id.clone(),
            rate_limit_rpm: info.rate_limit_rpm,
            key: info,
        })
    }

    async fn lookup(&self, key: &str) -> Result<Option<Arc<KeyInfo>>, ApiError> {
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let now = Instant::now();
        let mut refresh = false;
        {
            let mut entries = self.entries.lock().expect("key cache poisoned");
            if let Some(entry) = entries.get_mut(&digest) {
                let age = now.duration_since(entry.fetched);
                match &entry.key {
                    Some(info) if age < POSITIVE_TTL => return Ok(Some(info.clone())),
                    Some(info) => {
                        if !entry.refreshing {
                            entry.refreshing = true;
                            refresh = true;
                        }
                        let stale = info.clone();
                        drop(entries);
                        if refresh {
                            let this = self.clone();
                            let key = key.to_owned();
                            tokio::spawn(async move {
                                if let Err(err) = this.fetch(&key, digest).await {
                                    tracing::warn!(%err, "key refresh failed; serving cached answer");
                                    this.clear_refreshing(digest);
                                }
                            });
                        }
                        return Ok(Some(stale));
                    }
                    None if age < NEGATIVE_TTL => return Ok(None),
                    None => {}
                }
            }
        }
        self.fetch(key, digest).await
    }

    async fn fetch(&self, key: &str, digest: [u8; 32]) -> Result<Option<Arc<KeyInfo>>, ApiError> {
        let response = self
            .metering
            .clone()
            .authenticate_key(AuthenticateKeyRequest {
                key: key.to_owned(),
            })
            .await
            .map_err(|status| {
                tracing::warn!(%status, "usage-metering unavailable for key lookup");
                ApiError::Unavailable("Authentication is temporarily unavailable".into())
            })?;
        let info = response.into_inner().key.map(Arc::new);
        let mut entries = self.entries.lock().expect("key cache poisoned");
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, e| e.key.is_some());
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(
            digest,
            Entry {
                key: info.clone(),
                fetched: Instant::now(),
                refreshing: false,
            },
        );
        Ok(info)
    }

    fn clear_refreshing(&self, digest: [u8; 32]) {
        if let Some(entry) = self
            .entries
            .lock()
            .expect("key cache poisoned")
            .get_mut(&digest)
        {
            entry.refreshing = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        map
    }

    #[test]
    fn bearer_tokens_are_extracted() {
        assert_eq!(
            bearer(&headers(&[("authorization", "Bearer sk-1")])),
            Some("sk-1")
        );
        assert_eq!(
            bearer(&headers(&[("authorization", "bearer  sk-1 ")])),
            Some("sk-1")
        );
        assert_eq!(bearer(&headers(&[("authorization", "Basic abc")])), None);
        assert_eq!(bearer(&headers(&[("authorization", "Bearer ")])), None);
        assert_eq!(bearer(&headers(&[("x-api-key", "sk-2")])), Some("sk-2"));
        assert_eq!(bearer(&headers(&[])), None);
    }
}
