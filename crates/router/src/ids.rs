//! Generation ids in OpenRouter's shape: `gen-<unix seconds>-<20 alphanumerics>`.

use rand::Rng;
use rand::distr::Alphanumeric;

pub fn generation_id(unix_secs: i64) -> String {
    let suffix: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(20)
        .map(char::from)
        .collect();
    format!("gen-{unix_secs}-{suffix}")
}

pub fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_have_openrouter_shape() {
        let id = super::generation_id(1_773_679_501);
        let rest = id.strip_prefix("gen-1773679501-").unwrap();
        assert_eq!(rest.len(), 20);
        assert!(rest.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(id, super::generation_id(1_773_679_501));
    }
}
