//! Counting prompt tokens before any upstream call. The cheap estimate
//! (~4 characters a token) decides most requests; only when it lands near
//! an endpoint's context length is the prompt counted exactly, with the
//! model family's real tokenizer where Switchyard has one (OpenAI's BPEs for
//! the GPT family). Other families keep the estimate.

use std::sync::OnceLock;

use switchyard_proto::catalog::v1::Model;
use switchyard_proto::common::v1::{ChatRequest, content_part::Part};
use tiktoken_rs::CoreBPE;

/// The estimate is trusted unless it is within this factor of a limit
/// (wide: bytes/4 undercounts CJK text and terse code by 2x or more).
const AMBIGUOUS: f64 = 2.5;
/// Chat framing per message (role markers, separators), OpenAI's count.
const PER_MESSAGE: u64 = 4;
const REPLY_PRIMING: u64 = 3;

fn cl100k() -> &'static CoreBPE {
    static BPE: OnceLock<CoreBPE> = OnceLock::new();
    BPE.get_or_init(|| tiktoken_rs::cl100k_base().expect("embedded cl100k ranks"))
}

fn o200k() -> &'static CoreBPE {
    static BPE: OnceLock<CoreBPE> = OnceLock::new();
    BPE.get_or_init(|| tiktoken_rs::o200k_base().expect("embedded o200k ranks"))
}

/// The tokenizer of a model, if Switchyard has it.
pub fn tokenizer(model: &Model) -> Option<&'static CoreBPE> {
    let family = model
        .architecture
        .as_ref()
        .map(|a| a.tokenizer.as_str())
        .unwrap_or_default();
    if family != "GPT" {
        return None;
    }
    let id = model.id.as_str();
    let newer = [
        "gpt-4o",
        "gpt-4.1",
        "gpt-4.5",
        "gpt-5",
        "/o1",
        "/o3",
        "/o4",
        "chatgpt-4o",
    ];
    Some(if newer.iter().any(|p| id.contains(p)) {
        o200k()
    } else {
        cl100k()
    })
}

/// Whether an estimate of `estimate` tokens is too close to `limit` to
/// trust either way.
pub fn ambiguous(estimate: u64, limit: u64) -> bool {
    let (e, l) = (estimate as f64, limit as f64);
    e * AMBIGUOUS >= l && e <= l * AMBIGUOUS
}

/// Exact prompt tokens of `request` with `bpe`.
pub fn count(bpe: &CoreBPE, request: &ChatRequest) -> u64 {
    let mut total = REPLY_PRIMING;
    for m in &request.messages {
        total += PER_MESSAGE + bpe.encode_ordinary(&m.role).len() as u64;
        if let Some(text) = &m.text {
            total += bpe.encode_ordinary(text).len() as u64;
        }
        for part in &m.parts {
            if let Some(Part::Text(t)) = &part.part {
                total += bpe.encode_ordinary(t).len() as u64;
            }
        }
        for call in &m.tool_calls {
            total += bpe.encode_ordinary(&call.name).len() as u64
                + bpe.encode_ordinary(&call.arguments).len() as u64;
        }
    }
    for tool in &request.tools {
        total += bpe.encode_ordinary(&tool.name).len() as u64;
        total += tool
            .description
            .as_deref()
            .map_or(0, |d| bpe.encode_ordinary(d).len() as u64);
        total += tool
            .parameters_json
            .as_deref()
            .map_or(0, |p| bpe.encode_ordinary(p).len() as u64);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_proto::catalog::v1::Architecture;
    use switchyard_proto::common::v1::ChatMessage;

    fn model(id: &str, tokenizer: &str) -> Model {
        Model {
            id: id.into(),
            architecture: Some(Architecture {
                tokenizer: tokenizer.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn counts_like_openai() {
        let request = ChatRequest {
            messages: vec![ChatMessage {
                role: "user".into(),
                text: Some("Hello, world!".into()),
                ..Default::default()
            }],
            ..Default::default()
        };
        // "Hello, world!" is 4 tokens in cl100k; + role 1 + framing 4 + priming 3.
        let bpe = tokenizer(&model("openai/gpt-4", "GPT")).unwrap();
        assert_eq!(count(bpe, &request), 12);
        assert!(tokenizer(&model("anthropic/claude-3.5-sonnet", "Claude")).is_none());
        assert!(tokenizer(&model("openai/gpt-4o", "GPT")).is_some());
    }

    #[test]
    fn only_estimates_near_a_limit_are_ambiguous() {
        assert!(!ambiguous(1_000, 8_000));
        assert!(ambiguous(4_000, 8_000));
        assert!(ambiguous(10_000, 8_000));
        assert!(!ambiguous(30_000, 8_000));
    }
}
