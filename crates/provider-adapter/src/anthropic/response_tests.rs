//! Anthropic answers → pieces, from recorded-shape fixtures.

use switchyard_proto::provider::v1::UpstreamErrorKind;

use super::*;
use crate::sse::SseParser;

fn stream(text: &str) -> Result<Vec<Piece>, UpstreamFailure> {
    let mut parser = SseParser::new();
    let mut events = Vec::new();
    parser.push(text.as_bytes(), &mut events).unwrap();
    parser.finish(&mut events).unwrap();
    let mut decoder = Decoder::new(200);
    let mut out = Vec::new();
    for event in &events {
        decoder.event(event, &mut out)?;
    }
    Ok(out)
}

fn deltas(pieces: &[Piece]) -> Vec<Delta> {
    pieces
        .iter()
        .filter_map(|p| match p {
            Piece::Delta(d) => Some(d.clone()),
            _ => None,
        })
        .collect()
}

fn finishes(pieces: &[Piece]) -> Vec<(i32, String)> {
    pieces
        .iter()
        .filter_map(|p| match p {
            Piece::Finish(f) => Some((f.reason, f.native_reason.clone())),
            _ => None,
        })
        .collect()
}

fn last_usage(pieces: &[Piece]) -> Option<TokenUsage> {
    pieces.iter().rev().find_map(|p| match p {
        Piece::Usage(u) => Some(*u),
        _ => None,
    })
}

const THINKING_STREAM: &str = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude","stop_reason":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":100,"cache_read_input_tokens":50,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Let me think"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"sig"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Hello"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":9}}

event: message_stop
data: {"type":"message_stop"}

"#;

#[test]
fn a_thinking_stream() {
    let pieces = stream(THINKING_STREAM).unwrap();
    assert_eq!(pieces[0], Piece::Id("msg_1".into()));
    let deltas = deltas(&pieces);
    assert_eq!(deltas.len(), 2, "{deltas:?}");
    assert_eq!(deltas[0].reasoning.as_deref(), Some("Let me think"));
    assert_eq!(deltas[1].content.as_deref(), Some("Hello"));
    assert_eq!(
        finishes(&pieces),
        [(FinishReason::Stop as i32, "end_turn".to_owned())]
    );
    assert_eq!(
        last_usage(&pieces),
        Some(TokenUsage {
            prompt_tokens: 12 + 100 + 50,
            completion_tokens: 9,
            cached_tokens: 50,
            cache_write_tokens: 100,
            ..Default::default()
        })
    );
    assert_eq!(pieces.last(), Some(&Piece::Done));
}

#[test]
fn a_tool_use_stream_after_text() {
    let text = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_2","usage":{"input_tokens":5,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":"Checking"}}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\": "}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\"Paris\"}"}}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":20}}

event: message_stop
data: {"type":"message_stop"}
"#;
    let pieces = stream(text).unwrap();
    let deltas = deltas(&pieces);
    assert_eq!(deltas[0].content.as_deref(), Some("Checking"));
    let calls: Vec<_> = deltas.iter().flat_map(|d| d.tool_calls.clone()).collect();
    assert_eq!(calls.len(), 3, "head + 2 fragments: {calls:?}");
    assert!(calls.iter().all(|c| c.index == 0));
    assert_eq!(calls[0].id.as_deref(), Some("toolu_1"));
    assert_eq!(calls[0].name.as_deref(), Some("get_weather"));
    assert_eq!(calls[0].arguments, None);
    let arguments: String = calls.iter().filter_map(|c| c.arguments.clone()).collect();
    assert_eq!(arguments, r#"{"city": "Paris"}"#);
    assert_eq!(
        finishes(&pieces),
        [(FinishReason::ToolCalls as i32, "tool_use".to_owned())]
    );
    assert_eq!(last_usage(&pieces).unwrap().completion_tokens, 20);
}

#[test]
fn refusals_and_stop_reasons() {
    let cases = [
        ("refusal", FinishReason::ContentFilter),
        ("max_tokens", FinishReason::Length),
        ("stop_sequence", FinishReason::Stop),
        ("end_turn", FinishReason::Stop),
        ("tool_use", FinishReason::ToolCalls),
    ];
    for (native, reason) in cases {
        let text = format!(
            "event: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"{native}\"}},\"usage\":{{\"output_tokens\":0}}}}\n\n"
        );
        assert_eq!(
            finishes(&stream(&text).unwrap()),
            [(reason as i32, native.to_owned())]
        );
    }
}

#[test]
fn an_error_event_is_a_typed_failure() {
    let text = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\"}}\n\n\
                event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
    let failure = stream(text).unwrap_err();
    assert_eq!(failure.kind, UpstreamErrorKind::Overloaded);
    assert_eq!(failure.provider_code.as_deref(), Some("overloaded_error"));
    assert_eq!(failure.status, 200);
    assert!(stream("data: {not json}\n\n").is_err());
}

#[test]
fn a_whole_message() {
    let body = br#"{"id":"msg_3","type":"message","role":"assistant","model":"claude",
        "content":[{"type":"thinking","thinking":"hmm","signature":"s"},{"type":"text","text":"Hi "},{"type":"text","text":"there"},
                   {"type":"tool_use","id":"toolu_9","name":"f","input":{"a":1}}],
        "stop_reason":"tool_use","stop_sequence":null,
        "usage":{"input_tokens":3,"cache_read_input_tokens":7,"output_tokens":4}}"#;
    let mut out = Vec::new();
    Decoder::new(200).whole(body, &mut out).unwrap();
    assert_eq!(out[0], Piece::Id("msg_3".into()));
    let delta = &deltas(&out)[0];
    assert_eq!(delta.content.as_deref(), Some("Hi there"));
    assert_eq!(delta.reasoning.as_deref(), Some("hmm"));
    assert_eq!(delta.tool_calls[0].arguments.as_deref(), Some(r#"{"a":1}"#));
    assert_eq!(delta.tool_calls[0].id.as_deref(), Some("toolu_9"));
    assert_eq!(
        finishes(&out),
        [(FinishReason::ToolCalls as i32, "tool_use".to_owned())]
    );
    let usage = last_usage(&out).unwrap();
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.cached_tokens,
            usage.completion_tokens
        ),
        (10, 7, 4)
    );

    let refusal = br#"{"id":"m","content":[],"stop_reason":"refusal","usage":{"input_tokens":3,"output_tokens":0}}"#;
    let mut out = Vec::new();
    Decoder::new(200).whole(refusal, &mut out).unwrap();
    assert!(deltas(&out).is_empty());
    assert_eq!(
        finishes(&out),
        [(FinishReason::ContentFilter as i32, "refusal".to_owned())]
    );

    let mut out = Vec::new();
    assert!(Decoder::new(200).whole(br#"{"id":"m"}"#, &mut out).is_err());
}
