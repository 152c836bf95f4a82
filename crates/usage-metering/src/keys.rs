//! API keys: generation, the peppered hash that is their public id, masked
//! labels, and validation of key-creation requests.

use std::path::Path;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use switchyard_proto::metering::v1 as pb;

use switchyard_kit::api_key;

use crate::error::MeteringError;

const MAX_NAME_CHARS: usize = 200;
const MIN_IMPORT_CHARS: usize = 16;
const MAX_KEY_CHARS: usize = 256;
const PEPPER_FILE: &str = "key-pepper";
/// Used only when Postgres runs without a configured pepper, so development
/// setups work out of the box; production must set SWITCHYARD_KEY_PEPPER.
const DEVELOPMENT_PEPPER: &str = "switchyard-development-pepper-not-for-production";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    Inference,
    Management,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Inference => "inference",
            KeyKind::Management => "management",
        }
    }

    pub fn parse(s: &str) -> Option<KeyKind> {
        match s {
            "inference" => Some(KeyKind::Inference),
            "management" => Some(KeyKind::Management),
            _ => None,
        }
    }
}

impl From<pb::KeyKind> for KeyKind {
    /// An unspecified kind is an inference key, the kind clients call with.
    fn from(kind: pb::KeyKind) -> KeyKind {
        match kind {
            pb::KeyKind::Management => KeyKind::Management,
            pb::KeyKind::Inference | pb::KeyKind::Unspecified => KeyKind::Inference,
        }
    }
}

impl From<KeyKind> for pb::KeyKind {
    fn from(kind: KeyKind) -> pb::KeyKind {
        match kind {
            KeyKind::Inference => pb::KeyKind::Inference,
            KeyKind::Management => pb::KeyKind::Management,
        }
    }
}

/// When a key's spending limit starts over (UTC midnight; weeks start on
/// Monday).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitReset {
    Daily,
    Weekly,
    Monthly,
}

impl LimitReset {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitReset::Daily => "daily",
            LimitReset::Weekly => "weekly",
            LimitReset::Monthly => "monthly",
        }
    }

    pub fn parse(s: &str) -> Option<LimitReset> {
        match s {
            "daily" => Some(LimitReset::Daily),
            "weekly" => Some(LimitReset::Weekly),
            "monthly" => Some(LimitReset::Monthly),
            _ => None,
        }
    }

    pub fn from_pb(value: pb::LimitReset) -> Option<LimitReset> {
        match value {
            pb::LimitReset::Never => None,
            pb::LimitReset::Daily => Some(LimitReset::Daily),
            pb::LimitReset::Weekly => Some(LimitReset::Weekly),
            pb::LimitReset::Monthly => Some(LimitReset::Monthly),
        }
    }

    pub fn to_pb(reset: Option<LimitReset>) -> pb::LimitReset {
        match reset {
            None => pb::LimitReset::Never,
            Some(LimitReset::Daily) => pb::LimitReset::Daily,
            Some(LimitReset::Weekly) => pb::LimitReset::Weekly,
            Some(LimitReset::Monthly) => pb::LimitReset::Monthly,
        }
    }
}

/// The settings of a key that the management API can change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySettings {
    /// Spending cap, nano-dollars, over the `limit_reset` window.
    #[serde(default)]
    pub limit_nanos: Option<i64>,
    #[serde(default)]
    pub limit_reset: Option<LimitReset>,
    #[serde(default)]
    pub include_byok_in_limit: bool,
    #[serde(default)]
    pub rate_limit_rpm: Option<u32>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// A stored key: everything but the key text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub hash: String,
    pub account_id: String,
    pub name: String,
    pub kind: KeyKind,
    pub disabled: bool,
    pub label: String,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub settings: KeySettings,
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
}

impl ApiKey {
    /// Usable for calls: not disabled and not past its expiry.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        !self.disabled && self.settings.expires_at.is_none_or(|at| at > now)
    }
}

/// A partial update from `PATCH /keys/{hash}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPatch {
    pub name: Option<String>,
    pub disabled: Option<bool>,
    /// Some(None) clears the limit.
    pub limit_nanos: Option<Option<i64>>,
    pub limit_reset: Option<Option<LimitReset>>,
    pub include_byok_in_limit: Option<bool>,
    pub rate_limit_rpm: Option<Option<u32>>,
}

impl KeyPatch {
    pub fn is_empty(&self) -> bool {
        *self == KeyPatch::default()
    }

    pub fn from_pb(req: &pb::UpdateKeyRequest) -> Result<KeyPatch, MeteringError> {
        let name = match &req.name {
            Some(name) => Some(validate_name(name)?),
            None => None,
        };
        if req.limit_nanos.is_some_and(|l| l < 0) {
            return Err(MeteringError::InvalidKeyRequest(
                "limit must not be negative",
            ));
        }
        if req.rate_limit_rpm == Some(0) {
            return Err(MeteringError::InvalidKeyRequest(
                "rate_limit_rpm must be at least 1",
            ));
        }
        Ok(KeyPatch {
            name,
            disabled: req.disabled,
            limit_nanos: if req.clear_limit {
                Some(None)
            } else {
                req.limit_nanos.map(Some)
            },
            limit_reset: req
                .limit_reset
                .map(|r| LimitReset::from_pb(pb::LimitReset::try_from(r).unwrap_or_default())),
            include_byok_in_limit: req.include_byok_in_limit,
            rate_limit_rpm: if req.clear_rate_limit {
                Some(None)
            } else {
                req.rate_limit_rpm.map(Some)
            },
        })
    }

    /// Applies the patch; returns whether anything changed.
    pub fn apply(&self, key: &mut ApiKey, now: DateTime<Utc>) {
        if let Some(name) = &self.name {
            key.name = name.clone();
        }
        if let Some(disabled) = self.disabled {
            key.disabled = disabled;
        }
        if let Some(limit) = self.limit_nanos {
            key.settings.limit_nanos = limit;
        }
        if let Some(reset) = self.limit_reset {
            key.settings.limit_reset = reset;
        }
        if let Some(include) = self.include_byok_in_limit {
            key.settings.include_byok_in_limit = include;
        }
        if let Some(rpm) = self.rate_limit_rpm {
            key.settings.rate_limit_rpm = rpm;
        }
        key.updated_at = Some(now);
    }
}

fn validate_name(name: &str) -> Result<String, MeteringError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(MeteringError::InvalidKeyRequest("name is empty"));
    }
    if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(MeteringError::InvalidKeyRequest(
            "name must be at most 200 printable characters",
        ));
    }
    Ok(name.to_owned())
}

impl From<ApiKey> for pb::KeyInfo {
    fn from(key: ApiKey) -> pb::KeyInfo {
        pb::KeyInfo {
            hash: key.hash,
            account_id: key.account_id,
            name: key.name,
            kind: pb::KeyKind::from(key.kind).into(),
            disabled: key.disabled,
            label: key.label,
            created_at_ms: key.created_at.timestamp_millis(),
            limit_nanos: key.settings.limit_nanos,
            limit_reset: LimitReset::to_pb(key.settings.limit_reset).into(),
            include_byok_in_limit: key.settings.include_byok_in_limit,
            rate_limit_rpm: key.settings.rate_limit_rpm,
            updated_at_ms: key.updated_at.map(|t| t.timestamp_millis()),
            expires_at_ms: key.settings.expires_at.map(|t| t.timestamp_millis()),
        }
    }
}

/// A validated request to create (or import) a key.
#[derive(Debug)]
pub struct NewKey {
    pub name: String,
    pub kind: KeyKind,
    /// None creates a new account.
    pub account_id: Option<String>,
    pub key_text: SecretString,
    pub imported: bool,
    pub settings: KeySettings,
    /// How a new account pays (ignored for an existing account).
    pub billing: crate::ledger::Billing,
}

impl NewKey {
    pub fn parse(
        name: &str,
        kind: KeyKind,
        account_id: &str,
        import_key: Option<&str>,
    ) -> Result<NewKey, MeteringError> {
        let name = validate_name(name)?;
        let key_text = match import_key {
            Some(text) => {
                if text.chars().count() < MIN_IMPORT_CHARS {
                    return Err(MeteringError::InvalidKeyRequest(
                        "imported key must be at least 16 characters",
                    ));
                }
                if text.len() > MAX_KEY_CHARS || !text.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(MeteringError::InvalidKeyRequest(
                        "imported key must be at most 256 printable ASCII characters",
                    ));
                }
                if api_key::shape(text) == api_key::Shape::Corrupt {
                    return Err(MeteringError::InvalidKeyRequest(
                        "imported key uses the sk-sy- prefix but is not a valid key of that format",
                    ));
                }
                SecretString::from(text)
            }
            None => generate_key(kind),
        };
        let account_id = account_id.trim();
        Ok(NewKey {
            name: name.to_owned(),
            kind,
            account_id: (!account_id.is_empty()).then(|| account_id.to_owned()),
            key_text,
            imported: import_key.is_some(),
            settings: KeySettings::default(),
            billing: crate::ledger::Billing::Prepaid,
        })
    }
}

/// A fresh key of `kind` in the format of `kit::api_key` (256 random bits
/// and a checksum).
pub fn generate_key(kind: KeyKind) -> SecretString {
    let bytes: [u8; 32] = rand::random();
    let prefix = match kind {
        KeyKind::Inference => api_key::INFERENCE_PREFIX,
        KeyKind::Management => api_key::MANAGEMENT_PREFIX,
    };
    SecretString::from(api_key::format_key(prefix, &bytes))
}

/// A fresh account id.
pub fn generate_account_id() -> String {
    let bytes: [u8; 12] = rand::random();
    format!("acct-{}", hex::encode(bytes))
}

/// The key's masked form: first 12 characters, "...", last 3.
pub fn label(key_text: &str) -> String {
    let chars: Vec<char> = key_text.chars().collect();
    let head: String = chars.iter().take(12).collect();
    let tail: String = chars[chars.len().saturating_sub(3)..].iter().collect();
    format!("{head}...{tail}")
}

/// The secret that makes a stolen hash table useless for offline guessing.
#[derive(Clone)]
pub struct Pepper(SecretString);

impl Pepper {
    pub fn new(secret: SecretString) -> Pepper {
        Pepper(secret)
    }

    pub fn development() -> Pepper {
        Pepper(SecretString::from(DEVELOPMENT_PEPPER))
    }

    /// Reads `<dir>/key-pepper`, creating it (mode 0600) on first use.
    pub fn load_or_create(dir: &Path) -> anyhow::Result<Pepper> {
        use anyhow::Context;
        let path = dir.join(PEPPER_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) if !text.trim().is_empty() => {
                return Ok(Pepper(SecretString::from(text.trim())));
            }
            Ok(_) => anyhow::bail!("{} is empty", path.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
        let bytes: [u8; 32] = rand::random();
        let secret = hex::encode(bytes);
        write_private(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
        tracing::info!(path = %path.display(), "generated a new key pepper");
        Ok(Pepper(SecretString::from(secret)))
    }

    /// `hex(HMAC-SHA256(pepper, key_text))`: the key's public id.
    pub fn hash(&self, key_text: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.0.expose_secret().as_bytes())
            .expect("HMAC accepts keys of any length");
        mac.update(key_text.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether `stored_hash` is the hash of `key_text`, compared in
    /// constant time (the stored row was found by this hash, so this is
    /// defence in depth against a lookup that matched loosely).
    pub fn verify(&self, key_text: &str, stored_hash: &str) -> bool {
        let Ok(expected) = hex::decode(stored_hash) else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(self.0.expose_secret().as_bytes())
            .expect("HMAC accepts keys of any length");
        mac.update(key_text.as_bytes());
        mac.verify_slice(&expected).is_ok()
    }
}

impl std::fmt::Debug for Pepper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pepper([REDACTED])")
    }
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    // create_new: two processes racing must not overwrite each other's pepper.
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_documented_shape() {
        let key = generate_key(KeyKind::Inference);
        let text = key.expose_secret();
        let hex_part = text.strip_prefix(api_key::INFERENCE_PREFIX).unwrap();
        assert_eq!(hex_part.len(), 72);
        assert_eq!(api_key::shape(text), api_key::Shape::Valid);
        assert_ne!(text, generate_key(KeyKind::Inference).expose_secret());
        let mgmt = generate_key(KeyKind::Management);
        assert!(mgmt.expose_secret().starts_with(api_key::MANAGEMENT_PREFIX));
        assert_eq!(api_key::shape(mgmt.expose_secret()), api_key::Shape::Valid);
    }

    #[test]
    fn labels_mask_the_middle() {
        assert_eq!(label("sk-sy-v1-abcdef0123456789xyz"), "sk-sy-v1-abc...xyz");
    }

    #[test]
    fn hash_depends_on_the_pepper() {
        let a = Pepper::new(SecretString::from("one"));
        let b = Pepper::new(SecretString::from("two"));
        assert_eq!(a.hash("sk-sy-v1-x"), a.hash("sk-sy-v1-x"));
        assert_ne!(a.hash("sk-sy-v1-x"), b.hash("sk-sy-v1-x"));
        assert_eq!(a.hash("k").len(), 64);
        assert!(a.verify("sk-sy-v1-x", &a.hash("sk-sy-v1-x")));
        assert!(!a.verify("sk-sy-v1-y", &a.hash("sk-sy-v1-x")));
        assert!(!b.verify("sk-sy-v1-x", &a.hash("sk-sy-v1-x")));
        assert!(!a.verify("sk-sy-v1-x", "not hex"));
    }

    #[test]
    fn key_requests_are_validated() {
        let kind = KeyKind::Inference;
        assert!(NewKey::parse("", kind, "", None).is_err());
        assert!(NewKey::parse(&"x".repeat(201), kind, "", None).is_err());
        assert!(NewKey::parse("ok", kind, "", Some("short")).is_err());
        assert!(NewKey::parse("ok", kind, "", Some("has a space in it!!")).is_err());
        assert!(NewKey::parse("ok", kind, "", Some("sk-sy-v1-0123456789abcdefff")).is_err());
        let key = NewKey::parse("ok", kind, " ", Some("sk-dev-0123456789abcdef")).unwrap();
        assert!(key.imported && key.account_id.is_none());
    }
}
