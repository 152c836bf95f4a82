//! HTML escaping and URL helpers: every piece of catalog or user text passes through here on its way into a page.

use std::fmt::{self, Write as _};

/// Displays a string with the five HTML-significant characters escaped, so it is safe both as element text and
/// inside a double- or single-quoted attribute value.
pub struct Esc<'a>(pub &'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        let mut start = 0;
        for (i, byte) in s.bytes().enumerate() {
            let replacement = match byte {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                b'\'' => "&#39;",
                _ => continue,
            };
            f.write_str(&s[start..i])?;
            f.write_str(replacement)?;
            start = i + 1;
        }
        f.write_str(&s[start..])
    }
}

/// Escapes `s` for use as HTML text or a quoted attribute value.
pub fn escape(s: &str) -> String {
    Esc(s).to_string()
}

/// Returns the trimmed URL if it is an absolute `http` or `https` URL without whitespace or control characters;
/// anything else (`javascript:`, `data:`, relative paths, garbage) is refused so it never lands in an `href`.
pub fn safe_http_url(url: &str) -> Option<&str> {
    let url = url.trim();
    let scheme_len = if has_prefix_ignore_case(url, "https://") {
        8
    } else if has_prefix_ignore_case(url, "http://") {
        7
    } else {
        return None;
    };
    let clean = url.len() > scheme_len && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    clean.then_some(url)
}

fn has_prefix_ignore_case(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

/// Percent-encodes a site-relative path such as a model id (`openai/gpt-4`), keeping `/` and `:` readable.
pub fn encode_path(s: &str) -> String {
    encode(
        s,
        |b| b.is_ascii_alphanumeric() || b"-._~/:@".contains(&b),
        false,
    )
}

/// Percent-encodes one query-string component (`+` for spaces, as HTML forms do).
pub fn encode_query(s: &str) -> String {
    encode(
        s,
        |b| b.is_ascii_alphanumeric() || b"-._~".contains(&b),
        true,
    )
}

fn encode(s: &str, keep: impl Fn(u8) -> bool, plus_for_space: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for byte in s.bytes() {
        if keep(byte) {
            out.push(char::from(byte));
        } else if plus_for_space && byte == b' ' {
            out.push('+');
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// Decodes one `application/x-www-form-urlencoded` component. Malformed escapes are kept literally and invalid
/// UTF-8 is replaced, because a hand-edited query string must never make a page fail.
pub fn decode_query(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match (hex_value(bytes[i + 1]), hex_value(bytes[i + 2])) {
                    (Some(hi), Some(lo)) => {
                        out.push(hi << 4 | lo);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Splits a query string (with or without the leading `?`) into decoded key/value pairs, in order.
pub fn query_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query
        .trim_start_matches('?')
        .split('&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (key, value) = part.split_once('=').unwrap_or((part, ""));
            (decode_query(key), decode_query(value))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_all_significant_characters() {
        assert_eq!(
            escape(r#"<a href="x">Tom & 'Jerry'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;"
        );
        assert_eq!(escape("plain ünïcode"), "plain ünïcode");
        assert_eq!(escape(""), "");
        assert_eq!(
            escape("<script>alert(1)</script>"),
            "&lt;script&gt;alert(1)&lt;/script&gt;"
        );
    }

    #[test]
    fn only_http_urls_are_linkable() {
        assert_eq!(
            safe_http_url(" https://example.com/a?b=c "),
            Some("https://example.com/a?b=c")
        );
        assert_eq!(
            safe_http_url("HTTP://EXAMPLE.COM"),
            Some("HTTP://EXAMPLE.COM")
        );
        assert_eq!(safe_http_url("javascript:alert(1)"), None);
        assert_eq!(safe_http_url("data:text/html,<script>"), None);
        assert_eq!(safe_http_url("/relative"), None);
        assert_eq!(safe_http_url("https://"), None);
        assert_eq!(safe_http_url("https://a b.com"), None);
        assert_eq!(safe_http_url("https://a.com/\u{0}"), None);
    }

    #[test]
    fn encodes_paths_and_query_components() {
        assert_eq!(encode_path("openai/gpt-4o:free"), "openai/gpt-4o:free");
        assert_eq!(encode_path("a b/<x>"), "a%20b/%3Cx%3E");
        assert_eq!(encode_query("gpt 4/o&x=é"), "gpt+4%2Fo%26x%3D%C3%A9");
    }

    #[test]
    fn decodes_query_components_leniently() {
        assert_eq!(decode_query("gpt+4%2Fo"), "gpt 4/o");
        assert_eq!(decode_query("%C3%A9"), "é");
        assert_eq!(decode_query("100%"), "100%");
        assert_eq!(decode_query("%zz%4"), "%zz%4");
        assert_eq!(decode_query("%FF"), "\u{FFFD}");
        let pairs: Vec<_> = query_pairs("?q=a+b&&flag&x=%3D").collect();
        assert_eq!(
            pairs,
            vec![
                ("q".into(), "a b".into()),
                ("flag".into(), String::new()),
                ("x".into(), "=".into())
            ]
        );
    }
}
