//! The API key text format, shared by the service that issues keys and the
//! router that screens them before any lookup.
//!
//! `sk-sy-v1-<64 hex secret><8 hex checksum>` for inference keys and
//! `sk-sy-mgmt-v1-<64 hex secret><8 hex checksum>` for management keys. The
//! checksum is CRC-32 (IEEE) of everything before it, so a typo or a random
//! string is rejected without touching a database, and secret scanners can
//! tell a real key from noise. The secret is 256 random bits.

/// Prefix of inference keys.
pub const INFERENCE_PREFIX: &str = "sk-sy-v1-";
/// Prefix of management keys.
pub const MANAGEMENT_PREFIX: &str = "sk-sy-mgmt-v1-";
/// Every key we issue starts with this.
pub const FAMILY_PREFIX: &str = "sk-sy-";

const SECRET_HEX: usize = 64;
const CHECKSUM_HEX: usize = 8;

/// CRC-32 (IEEE 802.3, reflected, as zlib computes it).
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// Builds a key from its prefix and 32 secret bytes.
pub fn format_key(prefix: &str, secret: &[u8; 32]) -> String {
    let mut text = String::with_capacity(prefix.len() + SECRET_HEX + CHECKSUM_HEX);
    text.push_str(prefix);
    for byte in secret {
        text.push_str(&format!("{byte:02x}"));
    }
    let checksum = crc32(text.as_bytes());
    text.push_str(&format!("{checksum:08x}"));
    text
}

/// How a presented key text looks before any lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One of ours with a valid checksum.
    Valid,
    /// Claims to be one of ours but is malformed or fails its checksum:
    /// it cannot exist, so it needs no lookup.
    Corrupt,
    /// Not in our format (an imported key, e.g. a configured development
    /// key, or a key from before checksums): only a lookup can tell.
    Foreign,
}

pub fn shape(text: &str) -> Shape {
    let body = if let Some(rest) = text.strip_prefix(MANAGEMENT_PREFIX) {
        rest
    } else if let Some(rest) = text.strip_prefix(INFERENCE_PREFIX) {
        // Keys issued before checksums were 64 hex digits; still honoured.
        if rest.len() == SECRET_HEX && is_lower_hex(rest) {
            return Shape::Foreign;
        }
        rest
    } else if text.starts_with(FAMILY_PREFIX) {
        return Shape::Corrupt;
    } else {
        return Shape::Foreign;
    };
    if body.len() != SECRET_HEX + CHECKSUM_HEX || !is_lower_hex(body) {
        return Shape::Corrupt;
    }
    let split = text.len() - CHECKSUM_HEX;
    let expected = format!("{:08x}", crc32(&text.as_bytes()[..split]));
    if expected == text[split..] {
        Shape::Valid
    } else {
        Shape::Corrupt
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        // The catalogue check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn issued_keys_validate_and_typos_do_not() {
        let key = format_key(INFERENCE_PREFIX, &[7u8; 32]);
        assert_eq!(key.len(), INFERENCE_PREFIX.len() + 72);
        assert_eq!(shape(&key), Shape::Valid);
        let mgmt = format_key(MANAGEMENT_PREFIX, &[9u8; 32]);
        assert_eq!(shape(&mgmt), Shape::Valid);
        // One changed digit anywhere fails the checksum.
        for i in INFERENCE_PREFIX.len()..key.len() {
            let mut bytes = key.clone().into_bytes();
            bytes[i] = if bytes[i] == b'0' { b'1' } else { b'0' };
            assert_eq!(
                shape(&String::from_utf8(bytes).unwrap()),
                Shape::Corrupt,
                "at {i}"
            );
        }
        assert_eq!(shape(&key[..key.len() - 1]), Shape::Corrupt);
        let upper = format!(
            "{INFERENCE_PREFIX}{}",
            key[INFERENCE_PREFIX.len()..].to_uppercase()
        );
        assert_eq!(shape(&upper), Shape::Corrupt);
        assert_eq!(shape("sk-sy-v2-whatever"), Shape::Corrupt);
    }

    #[test]
    fn other_formats_need_a_lookup() {
        assert_eq!(shape("sk-dev-0123456789abcdef"), Shape::Foreign);
        assert_eq!(
            shape(&format!("{INFERENCE_PREFIX}{}", "ab".repeat(32))),
            Shape::Foreign
        );
    }
}
