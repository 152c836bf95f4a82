//! Validation primitives shared by every entry point: id, tag, URL, date
//! and count rules. Each returns `CatalogError::Invalid` with a message a
//! user editing the seed file can act on.

use crate::error::CatalogError;

pub(crate) fn invalid(msg: impl Into<String>) -> CatalogError {
    CatalogError::Invalid(msg.into())
}

pub(crate) fn non_empty(value: &str, what: &str) -> Result<(), CatalogError> {
    if value.trim().is_empty() {
        return Err(invalid(format!("{what} is empty")));
    }
    Ok(())
}

/// 9999-12-31T23:59:59Z: beyond it timestamps stop being dates.
pub(crate) const MAX_UNIX_SECONDS: i64 = 253_402_300_799;

/// Token counts are positive and fit the SQL `integer` the stores use.
pub(crate) fn check_count(value: u32, what: &str) -> Result<(), CatalogError> {
    if value == 0 || value > i32::MAX as u32 {
        return Err(invalid(format!("{what} {value} is out of range")));
    }
    Ok(())
}

fn is_slug_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.' | b'_')
}

pub(crate) fn check_slug(value: &str, what: &str) -> Result<(), CatalogError> {
    if value.is_empty() || !value.bytes().all(is_slug_byte) {
        return Err(invalid(format!(
            "{what} {value:?} must be non-empty and use only a-z, 0-9, '-', '.', '_'"
        )));
    }
    Ok(())
}

/// `author/slug`, lowercase. ':' is kept out because routers read
/// `model:variant` suffixes and endpoint ids use it as the separator.
pub fn check_model_id(id: &str) -> Result<(), CatalogError> {
    match id.split_once('/') {
        Some((author, slug)) if !slug.contains('/') => {
            check_slug(author, "model author")?;
            check_slug(slug, "model slug")
        }
        _ => Err(invalid(format!(
            "model id {id:?} must look like author/slug"
        ))),
    }
}

/// A provider tag, `slug` or `slug/variant`; returns the provider slug.
pub fn check_tag(tag: &str) -> Result<&str, CatalogError> {
    match tag.split_once('/') {
        None => check_slug(tag, "provider tag").map(|()| tag),
        Some((slug, variant)) => {
            check_slug(slug, "provider tag")?;
            check_slug(variant, "provider tag variant")?;
            Ok(slug)
        }
    }
}

pub(crate) fn check_url(url: &str) -> Result<(), CatalogError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.contains(char::is_whitespace) => Ok(()),
        _ => Err(invalid(format!("{url:?} is not an http(s) URL"))),
    }
}

pub(crate) fn check_list(items: &[String], what: &str) -> Result<(), CatalogError> {
    if items.iter().any(|s| s.trim().is_empty()) {
        return Err(invalid(format!("{what} has an empty entry")));
    }
    Ok(())
}

/// A real calendar date written YYYY-MM-DD.
pub fn check_date(date: &str) -> Result<(), CatalogError> {
    let bad = || invalid(format!("date {date:?} is not a YYYY-MM-DD calendar date"));
    let bytes = date.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return Err(bad());
    }
    let num = |range: std::ops::Range<usize>| -> Result<u32, CatalogError> {
        let part = &date[range];
        if !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        part.parse().map_err(|_| bad())
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(bad()),
    };
    if year == 0 || day == 0 || day > days {
        return Err(bad());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::WireFormat;

    #[test]
    fn model_ids() {
        for ok in ["openai/gpt-4", "meta-llama/llama-3.1-8b-instruct", "a/b"] {
            assert!(check_model_id(ok).is_ok(), "{ok}");
        }
        for bad in [
            "gpt-4",
            "OpenAI/gpt-4",
            "a/b/c",
            "/x",
            "x/",
            "a/b:free",
            "a /b",
        ] {
            assert!(check_model_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tags() {
        assert_eq!(check_tag("deepinfra").unwrap(), "deepinfra");
        assert_eq!(check_tag("deepinfra/turbo").unwrap(), "deepinfra");
        for bad in ["", "Deepinfra", "a/b/c", "a/", "/b"] {
            assert!(check_tag(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dates() {
        for ok in ["2023-04-30", "2024-02-29", "2000-02-29"] {
            assert!(check_date(ok).is_ok(), "{ok}");
        }
        for bad in [
            "2023-02-29",
            "1900-02-29",
            "2023-4-30",
            "2023-13-01",
            "2023-04-31",
            "abcd-ef-gh",
        ] {
            assert!(check_date(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn wire_formats_round_trip() {
        for wf in [
            WireFormat::OpenAi,
            WireFormat::Anthropic,
            WireFormat::Gemini,
        ] {
            assert_eq!(wf.as_str().parse::<WireFormat>().unwrap(), wf);
        }
        assert!("grpc".parse::<WireFormat>().is_err());
    }
}
