//! Generation ids in OpenRouter's shape: `gen-<unix seconds>-<20 alphanumerics>`.
//!
//! The first four alphanumerics are the microsecond within that second, in
//! base 62 with digits ordered as ASCII orders them; the other sixteen are
//! random (about 95 bits). Ids therefore sort by creation time, so the
//! usage store appends each batch of generations to the end of its index
//! instead of rewriting one page per generation all over it.

use rand::Rng;
use rand::distr::Alphanumeric;

/// `0-9A-Za-z`: base-62 digits in ASCII order, so strings sort as numbers.
const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const RANDOM_CHARS: usize = 16;

/// The moment a request is accepted: its `created` second and its id.
pub struct Stamp {
    pub created: i64,
    pub generation_id: String,
}

pub fn stamp() -> Stamp {
    let now = chrono::Utc::now();
    Stamp {
        created: now.timestamp(),
        generation_id: generation_id(now.timestamp(), now.timestamp_subsec_micros()),
    }
}

pub fn generation_id(unix_secs: i64, subsec_micros: u32) -> String {
    // 62^4 > 1,000,000: four digits hold any microsecond of a second (a leap
    // second's 1,000,000+ still fits).
    let mut micros = subsec_micros;
    let mut ordered = [0u8; 4];
    for slot in ordered.iter_mut().rev() {
        *slot = DIGITS[(micros % 62) as usize];
        micros /= 62;
    }
    let mut id = format!("gen-{unix_secs}-");
    id.extend(ordered.iter().map(|&b| char::from(b)));
    id.extend(
        rand::rng()
            .sample_iter(&Alphanumeric)
            .take(RANDOM_CHARS)
            .map(char::from),
    );
    id
}

pub fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[cfg(test)]
mod tests {
    use super::generation_id;

    #[test]
    fn ids_have_openrouter_shape() {
        let id = generation_id(1_773_679_501, 250_000);
        let rest = id.strip_prefix("gen-1773679501-").unwrap();
        assert_eq!(rest.len(), 20);
        assert!(rest.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(id, generation_id(1_773_679_501, 250_000));
    }

    #[test]
    fn ids_sort_by_creation_time() {
        let mut ids = Vec::new();
        for (secs, micros) in [
            (1_773_679_501, 0),
            (1_773_679_501, 1),
            (1_773_679_501, 61),
            (1_773_679_501, 62),
            (1_773_679_501, 999_999),
            (1_773_679_502, 0),
            (1_773_679_502, 1_000_500),
        ] {
            ids.push(generation_id(secs, micros));
        }
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        assert_eq!(&generation_id(1, 0)[6..10], "0000");
        assert_eq!(&generation_id(1, 999_999)[6..10], "4C91");
    }
}
