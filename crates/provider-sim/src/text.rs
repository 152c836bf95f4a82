//! Deterministic content: request hashing, the word list completions are
//! drawn from, prompt token counting, tool-call arguments and the per-request
//! RNG. Same request in, same bytes out.

use serde_json::{Map, Value};

const WORDS: &[&str] = &[
    "the",
    "switchyard",
    "routes",
    "every",
    "token",
    "through",
    "a",
    "quiet",
    "river",
    "of",
    "light",
    "models",
    "answer",
    "questions",
    "with",
    "careful",
    "words",
    "and",
    "signals",
    "travel",
    "fast",
    "across",
    "many",
    "providers",
    "while",
    "latency",
    "stays",
    "low",
    "streams",
    "carry",
    "small",
    "pieces",
    "meaning",
    "toward",
    "patient",
    "clients",
    "who",
    "listen",
    "closely",
    "for",
    "each",
    "new",
    "idea",
    "that",
    "arrives",
    "on",
    "time",
    "under",
    "budget",
    "in",
    "order",
];

/// FNV-1a: stable across platforms and Rust versions, unlike `DefaultHasher`.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Hash of the request messages. `serde_json::Value` objects keep keys
/// sorted, so key order in the client's JSON does not matter.
pub fn request_hash(messages: &[Value]) -> u64 {
    fnv1a(Value::Array(messages.to_vec()).to_string().as_bytes())
}

/// SplitMix64: a tiny, fully specified RNG, so fail-rate decisions are
/// reproducible from a seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `count` words chosen from the request hash.
pub fn completion_words(hash: u64, count: u32) -> Vec<&'static str> {
    let mut rng = Rng::new(hash);
    (0..count)
        .map(|_| WORDS[(rng.next_u64() % WORDS.len() as u64) as usize])
        .collect()
}

/// Words as streamable pieces: every word but the first carries its leading
/// space, so the pieces concatenate to the text.
pub fn pieces(words: &[&str]) -> Vec<String> {
    words
        .iter()
        .enumerate()
        .map(|(i, word)| {
            if i == 0 {
                (*word).to_owned()
            } else {
                format!(" {word}")
            }
        })
        .collect()
}

/// Splits at char boundaries into up to three non-empty pieces, so clients
/// must concatenate argument fragments.
pub fn split_in_three(s: &str) -> Vec<&str> {
    let chars: Vec<usize> = s.char_indices().map(|(i, _)| i).collect();
    if chars.len() < 3 {
        return vec![s];
    }
    let a = chars[chars.len() / 3];
    let b = chars[2 * chars.len() / 3];
    vec![&s[..a], &s[a..b], &s[b..]]
}

/// Tool-call arguments in up to three fragments, each with its share of the
/// arguments' tokens (the shares add up to the whole).
pub fn argument_fragments(arguments: &str) -> Vec<(&str, u64)> {
    let pieces = split_in_three(arguments);
    let total = estimate_tokens(arguments);
    let per_piece = total.div_ceil(pieces.len() as u64);
    let mut left = total;
    pieces
        .into_iter()
        .map(|piece| {
            let tokens = per_piece.min(left);
            left -= tokens;
            (piece, tokens)
        })
        .collect()
}

/// An OpenAI-style message from another format's parts (already OpenAI-style
/// `{"type":"text","text":..}` or anything else). Text-only content becomes a
/// plain string, so a conversation hashes and counts the same in every
/// format.
pub fn canonical_message(role: &str, parts: Vec<Value>) -> Value {
    let all_text = parts
        .iter()
        .all(|p| p.get("type").and_then(Value::as_str) == Some("text"));
    let content = if all_text {
        Value::from(
            parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<String>(),
        )
    } else {
        Value::Array(parts)
    };
    serde_json::json!({"role": role, "content": content})
}

/// An OpenAI-style text part.
pub fn text_part(text: impl Into<String>) -> Value {
    serde_json::json!({"type": "text", "text": text.into()})
}

/// The text of one message: string content, or the text parts of an array.
fn message_text(message: &Value) -> String {
    match message.get("content") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// ceil(chars / 4) over all message text, plus 3 per message.
pub fn prompt_tokens(messages: &[Value]) -> u64 {
    let chars: usize = messages
        .iter()
        .map(|m| message_text(m).chars().count())
        .sum();
    chars.div_ceil(4) as u64 + 3 * messages.len() as u64
}

/// A token estimate for generated text that is not split into words.
pub fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count().div_ceil(4) as u64).max(1)
}

/// Arguments that fit the tool's JSON Schema `properties` (one value per
/// property, by type), or `{"input": "..."}` without a schema.
pub fn tool_arguments(parameters: Option<&Value>, hash: u64) -> String {
    let mut rng = Rng::new(hash ^ 0x7431_6f6f_6c5f_6172);
    let mut word = || WORDS[(rng.next_u64() % WORDS.len() as u64) as usize];
    let mut args = Map::new();
    let properties = parameters
        .and_then(|p| p.get("properties"))
        .and_then(Value::as_object);
    match properties {
        Some(properties) if !properties.is_empty() => {
            for (name, schema) in properties {
                // Gemini's OpenAPI schemas spell types in capitals.
                let kind = schema
                    .get("type")
                    .and_then(Value::as_str)
                    .map(str::to_ascii_lowercase);
                let value = match kind.as_deref() {
                    Some("integer") | Some("number") => Value::from(word().len() as u64),
                    Some("boolean") => Value::Bool(word().len() % 2 == 0),
                    Some("array") => Value::Array(vec![Value::from(word())]),
                    Some("object") => Value::Object(Map::new()),
                    _ => Value::from(format!("{} {}", word(), word())),
                };
                args.insert(name.clone(), value);
            }
        }
        _ => {
            args.insert(
                "input".to_owned(),
                Value::from(format!("{} {}", word(), word())),
            );
        }
    }
    Value::Object(args).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn same_messages_same_words() {
        let a = request_hash(&[json!({"role": "user", "content": "hi"})]);
        let b = request_hash(&[json!({"content": "hi", "role": "user"})]);
        let c = request_hash(&[json!({"role": "user", "content": "ho"})]);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(completion_words(a, 10), completion_words(b, 10));
    }

    #[test]
    fn prompt_tokens_count_text_and_messages() {
        let messages = [
            json!({"role": "system", "content": "12345"}),
            json!({"role": "user", "content": [{"type": "text", "text": "abc"}, {"type": "image_url"}]}),
        ];
        assert_eq!(prompt_tokens(&messages), 2 + 6);
    }

    #[test]
    fn tool_arguments_follow_the_schema() {
        let schema =
            json!({"properties": {"city": {"type": "string"}, "days": {"type": "integer"}}});
        let args: Value = serde_json::from_str(&tool_arguments(Some(&schema), 7)).unwrap();
        assert!(args["city"].is_string());
        assert!(args["days"].is_u64());
    }

    #[test]
    fn splits_on_char_boundaries() {
        assert_eq!(split_in_three("ab"), vec!["ab"]);
        assert_eq!(split_in_three("aébcdé").concat(), "aébcdé");
        assert_eq!(split_in_three("aébcdé").len(), 3);
    }

    #[test]
    fn text_only_parts_become_a_string() {
        let message = canonical_message("user", vec![text_part("a"), text_part("b")]);
        assert_eq!(message, json!({"role": "user", "content": "ab"}));
        let image = json!({"type": "image"});
        let message = canonical_message("user", vec![text_part("a"), image.clone()]);
        assert_eq!(message["content"], json!([text_part("a"), image]));
        assert_eq!(pieces(&["a", "b"]), ["a", " b"]);
    }

    #[test]
    fn rng_is_uniformish() {
        let mut rng = Rng::new(1);
        let below = (0..1000).filter(|_| rng.next_f64() < 0.5).count();
        assert!((400..600).contains(&below), "{below}");
    }
}
