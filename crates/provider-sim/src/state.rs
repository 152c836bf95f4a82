//! Shared simulator state: configured models, per-model knobs, and the
//! ground-truth counters billing tests compare against.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use switchyard_kit::Shutdown;

use crate::Config;
use crate::knobs::Knobs;

/// What the simulator did for one model since start or the last reset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelStats {
    pub requests: u64,
    pub successful: u64,
    pub failed: u64,
    pub prompt_tokens: u64,
    /// Tokens actually sent, including those of streams cut or cancelled.
    pub completion_tokens: u64,
    /// Streams (or pending answers) the client dropped before the end.
    pub cancelled: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    pub models: BTreeMap<String, ModelStats>,
}

/// Cheap to clone; every handler holds one.
#[derive(Clone)]
pub struct SimState {
    inner: Arc<Inner>,
}

struct Inner {
    api_key: Option<String>,
    models: Vec<String>,
    /// Knobs from the behaviour file; `DELETE /sim/models/{m}` returns here.
    baseline: BTreeMap<String, Knobs>,
    knobs: RwLock<BTreeMap<String, Knobs>>,
    stats: Mutex<BTreeMap<String, ModelStats>>,
    /// Releases hanging requests so graceful shutdown can finish.
    release: Shutdown,
}

/// The model key whose knobs apply to every model without its own entry.
pub const ANY_MODEL: &str = "*";

impl SimState {
    pub fn from_config(config: &Config) -> anyhow::Result<SimState> {
        let baseline = match &config.behaviour_file {
            Some(path) => load_behaviour_file(path)?,
            None => BTreeMap::new(),
        };
        let mut models = config.models.clone();
        models.extend(baseline.keys().filter(|m| *m != ANY_MODEL).cloned());
        models.sort();
        models.dedup();
        Ok(SimState {
            inner: Arc::new(Inner {
                api_key: config.api_key.clone(),
                models,
                knobs: RwLock::new(baseline.clone()),
                baseline,
                stats: Mutex::new(BTreeMap::new()),
                release: Shutdown::new(),
            }),
        })
    }

    pub fn api_key(&self) -> Option<&str> {
        self.inner.api_key.as_deref()
    }

    /// Configured models plus any that have knobs set.
    pub fn models(&self) -> Vec<String> {
        let knobs = self
            .inner
            .knobs
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let mut models = self.inner.models.clone();
        models.extend(knobs.keys().filter(|m| *m != ANY_MODEL).cloned());
        models.sort();
        models.dedup();
        models
    }

    /// The model's knobs, with the `"*"` entry as fallback.
    pub fn model_knobs(&self, model: &str) -> Knobs {
        let knobs = self
            .inner
            .knobs
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let own = knobs.get(model).cloned().unwrap_or_default();
        match knobs.get(ANY_MODEL) {
            Some(any) => own.or(any),
            None => own,
        }
    }

    pub fn set_model_knobs(&self, model: &str, knobs: Knobs) {
        let mut all = self
            .inner
            .knobs
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        all.insert(model.to_owned(), knobs);
    }

    pub fn reset_model_knobs(&self, model: &str) {
        let mut all = self
            .inner
            .knobs
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        match self.inner.baseline.get(model) {
            Some(knobs) => all.insert(model.to_owned(), knobs.clone()),
            None => all.remove(model),
        };
    }

    pub fn stats(&self) -> StatsSnapshot {
        let stats = self
            .inner
            .stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        StatsSnapshot {
            models: stats.clone(),
        }
    }

    pub fn reset_stats(&self) {
        self.inner
            .stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Counts a request and returns its sequence number for this model,
    /// which seeds the fail-rate RNG together with the request hash.
    pub(crate) fn admit(&self, model: &str) -> u64 {
        self.update(model, |s| s.requests += 1).requests
    }

    pub(crate) fn update(&self, model: &str, f: impl FnOnce(&mut ModelStats)) -> ModelStats {
        let mut stats = self
            .inner
            .stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let entry = stats.entry(model.to_owned()).or_default();
        f(entry);
        *entry
    }

    /// Lets every hanging request finish (used on shutdown).
    pub fn release_hangs(&self) {
        self.inner.release.trigger();
    }

    pub(crate) async fn hang(&self) {
        self.inner.release.wait().await
    }
}

fn load_behaviour_file(path: &Path) -> anyhow::Result<BTreeMap<String, Knobs>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read behaviour file {}", path.display()))?;
    let map: BTreeMap<String, Knobs> = if path.extension().is_some_and(|e| e == "toml") {
        toml::from_str(&text).with_context(|| format!("invalid TOML in {}", path.display()))?
    } else {
        serde_json::from_str(&text)
            .with_context(|| format!("invalid JSON in {}", path.display()))?
    };
    for (model, knobs) in &map {
        knobs
            .validate()
            .map_err(|e| anyhow::anyhow!("behaviour file, model {model}: {e}"))?;
    }
    Ok(map)
}

/// Records how a response ended when it is dropped: finished, failed by the
/// simulator, or dropped by the client before the end.
pub(crate) struct Outcome {
    state: SimState,
    model: String,
    ended: Option<bool>,
}

impl Outcome {
    pub(crate) fn new(state: SimState, model: String) -> Outcome {
        Outcome {
            state,
            model,
            ended: None,
        }
    }

    pub(crate) fn add_completion_tokens(&self, tokens: u64) {
        self.state
            .update(&self.model, |s| s.completion_tokens += tokens);
    }

    pub(crate) fn succeeded(&mut self) {
        self.ended = Some(true);
    }

    pub(crate) fn failed(&mut self) {
        self.ended = Some(false);
    }
}

impl Drop for Outcome {
    fn drop(&mut self) {
        let ended = self.ended;
        self.state.update(&self.model, |s| match ended {
            Some(true) => s.successful += 1,
            Some(false) => s.failed += 1,
            None => s.cancelled += 1,
        });
    }
}
