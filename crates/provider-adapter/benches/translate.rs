//! Micro-benchmarks of provider-adapter's per-request and per-chunk work,
//! one case per wire format: translating a chat request into the
//! provider's body (and serializing it, as the upstream call does), and
//! turning one streamed upstream chunk (bytes off the socket) into the
//! adapter's pieces through the SSE parser and the format's decoder.
//!
//! `cargo bench -p switchyard-provider-adapter --bench translate` (add
//! `-- upstream_chunk` to run only the chunk benchmarks).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use switchyard_proto::common::v1::{ChatMessage, ChatRequest};
use switchyard_provider_adapter::emit::Piece;
use switchyard_provider_adapter::sse::{SseEvent, SseParser};
use switchyard_provider_adapter::{anthropic, gemini, openai};

/// The request the router's `parse_chat` benchmark parses, as the adapter
/// receives it: a system prompt, a short exchange, a new user turn and
/// sampling parameters.
fn typical_request() -> ChatRequest {
    let turn = |role: &str, text: &str| ChatMessage {
        role: role.into(),
        text: Some(text.into()),
        ..Default::default()
    };
    ChatRequest {
        messages: vec![
            turn(
                "system",
                "You are a concise assistant. Answer in plain English and cite no sources unless asked.",
            ),
            turn(
                "user",
                "What is the difference between a mutex and a read-write lock?",
            ),
            turn(
                "assistant",
                "A mutex lets one holder in at a time; a read-write lock lets many readers or one writer in.",
            ),
            turn(
                "user",
                "When would the read-write lock be slower? Give one concrete example from a web server.",
            ),
        ],
        temperature: Some(0.7),
        top_p: Some(0.9),
        max_tokens: Some(512),
        user: Some("bench-user-42".into()),
        ..Default::default()
    }
}

fn request_body(c: &mut Criterion) {
    let request = typical_request();
    let mut group = c.benchmark_group("request_body");
    group.bench_function("openai", |b| {
        b.iter(|| {
            let body = openai::request::build_body(black_box(&request), "gpt-4o-mini", true);
            serde_json::to_vec(&body.expect("translates")).expect("serializes")
        })
    });
    group.bench_function("anthropic", |b| {
        b.iter(|| {
            let body =
                anthropic::request::build_body(black_box(&request), "claude-3-5-haiku", true);
            serde_json::to_vec(&body.expect("translates")).expect("serializes")
        })
    });
    group.bench_function("gemini", |b| {
        b.iter(|| {
            let body = gemini::request::build_body(black_box(&request));
            serde_json::to_vec(&body.expect("translates")).expect("serializes")
        })
    });
    group.finish();
}

/// One content delta of ` token`, as each provider streams it.
const OPENAI_CHUNK: &[u8] = br#"data: {"id":"chatcmpl-Ab12Cd34Ef56","object":"chat.completion.chunk","created":1732233600,"model":"gpt-4o-mini","system_fingerprint":"fp_0ba0d124f1","choices":[{"index":0,"delta":{"content":" token"},"logprobs":null,"finish_reason":null}]}

"#;
const ANTHROPIC_CHUNK: &[u8] = br#"event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" token"}}

"#;
const GEMINI_CHUNK: &[u8] = br#"data: {"candidates": [{"content": {"parts": [{"text": " token"}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": 58,"candidatesTokenCount": 4,"totalTokenCount": 62},"modelVersion": "gemini-2.0-flash"}

"#;
/// What an Anthropic stream sends before its first delta.
const ANTHROPIC_OPENING: &[u8] = br#"event: message_start
data: {"type":"message_start","message":{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","content":[],"model":"claude-3-5-haiku","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":58,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

"#;

/// Parses `chunk` off the wire and decodes its events, as the upstream
/// task does for every read; the buffers are reused like the task's.
fn chunk_bench(
    c: &mut Criterion,
    name: &str,
    opening: &[u8],
    chunk: &'static [u8],
    mut decode: impl FnMut(&SseEvent, &mut Vec<Piece>),
) {
    let mut parser = SseParser::new();
    let mut events = Vec::new();
    let mut pieces = Vec::new();
    parser.push(opening, &mut events).expect("opening parses");
    for event in events.drain(..) {
        decode(&event, &mut pieces);
    }
    pieces.clear();
    c.benchmark_group("upstream_chunk")
        .bench_function(name, |b| {
            b.iter(|| {
                parser
                    .push(black_box(chunk), &mut events)
                    .expect("chunk parses");
                for event in events.drain(..) {
                    decode(&event, &mut pieces);
                }
                assert!(
                    pieces.iter().any(|p| matches!(p, Piece::Delta(_))),
                    "a delta"
                );
                pieces.clear();
            })
        });
}

fn upstream_chunk(c: &mut Criterion) {
    let mut decoder = openai::response::Decoder::new(200);
    chunk_bench(c, "openai", b"", OPENAI_CHUNK, |event, out| {
        decoder.event(event, out).expect("decodes")
    });
    let mut decoder = anthropic::response::Decoder::new(200);
    chunk_bench(
        c,
        "anthropic",
        ANTHROPIC_OPENING,
        ANTHROPIC_CHUNK,
        |event, out| decoder.event(event, out).expect("decodes"),
    );
    let mut decoder = gemini::response::Decoder::new(200);
    chunk_bench(c, "gemini", b"", GEMINI_CHUNK, |event, out| {
        decoder.event(event, out).expect("decodes")
    });
}

criterion_group!(benches, request_body, upstream_chunk);
criterion_main!(benches);
