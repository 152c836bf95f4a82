//! API keys: generation, the peppered hash that is their public id, masked
//! labels, and validation of key-creation requests.

use std::path::Path;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use switchyard_proto::metering::v1 as pb;

use crate::error::MeteringError;

const KEY_PREFIX: &str = "sk-sy-v1-";
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
}

impl NewKey {
    pub fn parse(
        name: &str,
        kind: KeyKind,
        account_id: &str,
        import_key: Option<&str>,
    ) -> Result<NewKey, MeteringError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(MeteringError::InvalidKeyRequest("name is empty"));
        }
        if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
            return Err(MeteringError::InvalidKeyRequest(
                "name must be at most 200 printable characters",
            ));
        }
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
                SecretString::from(text)
            }
            None => generate_key(),
        };
        let account_id = account_id.trim();
        Ok(NewKey {
            name: name.to_owned(),
            kind,
            account_id: (!account_id.is_empty()).then(|| account_id.to_owned()),
            key_text,
            imported: import_key.is_some(),
        })
    }
}

/// `sk-sy-v1-` followed by 32 random bytes in lowercase hex.
pub fn generate_key() -> SecretString {
    let bytes: [u8; 32] = rand::random();
    SecretString::from(format!("{KEY_PREFIX}{}", hex::encode(bytes)))
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
        let key = generate_key();
        let text = key.expose_secret();
        let hex_part = text.strip_prefix(KEY_PREFIX).unwrap();
        assert_eq!(hex_part.len(), 64);
        assert!(
            hex_part
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        assert_ne!(text, generate_key().expose_secret());
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
    }

    #[test]
    fn key_requests_are_validated() {
        let kind = KeyKind::Inference;
        assert!(NewKey::parse("", kind, "", None).is_err());
        assert!(NewKey::parse(&"x".repeat(201), kind, "", None).is_err());
        assert!(NewKey::parse("ok", kind, "", Some("short")).is_err());
        assert!(NewKey::parse("ok", kind, "", Some("has a space in it!!")).is_err());
        let key = NewKey::parse("ok", kind, " ", Some("sk-dev-0123456789abcdef")).unwrap();
        assert!(key.imported && key.account_id.is_none());
    }
}
