//! Provider credentials, resolved locally by name. They never cross the gRPC
//! hop and never reach a log line. Lookups are cached: the environment does
//! not change under a running process.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use secrecy::SecretString;

pub struct Credentials {
    /// Fixed values that win over the environment (tests, embedders).
    overrides: HashMap<String, SecretString>,
    cache: RwLock<HashMap<String, Option<SecretString>>>,
}

impl Credentials {
    pub fn new(overrides: HashMap<String, SecretString>) -> Credentials {
        Credentials {
            overrides,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// The credential named `name` (an environment variable), or `None`,
    /// in which case the upstream is called without auth (local vLLM, sim).
    pub fn resolve(&self, name: &str) -> Option<SecretString> {
        if name.is_empty() {
            return None;
        }
        if let Some(secret) = self.overrides.get(name) {
            return Some(secret.clone());
        }
        if let Some(cached) = self
            .cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
        {
            return cached.clone();
        }
        let found = std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .map(SecretString::from);
        if found.is_none() {
            tracing::warn!(
                credential_ref = name,
                "credential not set: the provider is called without auth (or answered by the simulator in demo mode)"
            );
        }
        self.cache
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), found.clone());
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn overrides_win_and_missing_is_none() {
        let credentials = Credentials::new(HashMap::from([(
            "SIM_KEY".to_owned(),
            SecretString::from("sk-1"),
        )]));
        assert_eq!(
            credentials.resolve("SIM_KEY").unwrap().expose_secret(),
            "sk-1"
        );
        assert!(credentials.resolve("").is_none());
        assert!(
            credentials
                .resolve("SWITCHYARD_SURELY_UNSET_CREDENTIAL")
                .is_none()
        );
        assert!(
            credentials
                .resolve("SWITCHYARD_SURELY_UNSET_CREDENTIAL")
                .is_none()
        );
    }
}
