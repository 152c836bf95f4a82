//! Gemini answers → pieces, from recorded-shape fixtures.

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

fn whole(body: &str) -> Result<Vec<Piece>, UpstreamFailure> {
    let mut out = Vec::new();
    Decoder::new(200).whole(body.as_bytes(), &mut out)?;
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

#[test]
fn a_thinking_stream() {
    let text = "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"Pondering\",\"thought\":true}]},\"index\":0}],\"responseId\":\"r1\"}\r\n\r\n\
                data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"Hello\"}]},\"index\":0}],\"responseId\":\"r1\"}\r\n\r\n\
                data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\" world\"}]},\"finishReason\":\"STOP\",\"index\":0}],\
                \"usageMetadata\":{\"promptTokenCount\":10,\"candidatesTokenCount\":2,\"thoughtsTokenCount\":5,\"cachedContentTokenCount\":4,\"totalTokenCount\":17},\"responseId\":\"r1\"}\r\n\r\n";
    let pieces = stream(text).unwrap();
    let deltas = deltas(&pieces);
    assert_eq!(deltas.len(), 3);
    assert_eq!(deltas[0].reasoning.as_deref(), Some("Pondering"));
    assert_eq!(deltas[0].content, None);
    assert_eq!(deltas[1].content.as_deref(), Some("Hello"));
    assert_eq!(
        finishes(&pieces),
        [(FinishReason::Stop as i32, "STOP".to_owned())]
    );
    assert_eq!(
        last_usage(&pieces),
        Some(TokenUsage {
            prompt_tokens: 10,
            completion_tokens: 7,
            reasoning_tokens: 5,
            cached_tokens: 4,
            ..Default::default()
        })
    );
}

#[test]
fn function_calls_are_whole_tool_calls() {
    let text = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"get_weather\",\"args\":{\"city\":\"Paris\"}}},\
                {\"functionCall\":{\"name\":\"get_time\",\"args\":{}}}]},\"index\":0}],\"responseId\":\"r2\"}\n\n\
                data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"\"}]},\"finishReason\":\"STOP\",\"index\":0}],\"responseId\":\"r2\"}\n\n";
    let pieces = stream(text).unwrap();
    let calls: Vec<_> = deltas(&pieces)
        .into_iter()
        .flat_map(|d| d.tool_calls)
        .collect();
    assert_eq!(calls.len(), 2);
    assert_eq!((calls[0].index, calls[1].index), (0, 1));
    assert_eq!(calls[0].id.as_deref(), Some("call_r2_0"));
    assert_eq!(calls[0].name.as_deref(), Some("get_weather"));
    assert_eq!(calls[0].arguments.as_deref(), Some(r#"{"city":"Paris"}"#));
    assert_ne!(calls[0].id, calls[1].id);
    assert_eq!(
        finishes(&pieces),
        [(FinishReason::ToolCalls as i32, "STOP".to_owned())]
    );
}

#[test]
fn finish_reasons() {
    let cases = [
        ("MAX_TOKENS", FinishReason::Length),
        ("SAFETY", FinishReason::ContentFilter),
        ("RECITATION", FinishReason::ContentFilter),
        ("PROHIBITED_CONTENT", FinishReason::ContentFilter),
        ("SPII", FinishReason::ContentFilter),
        ("BLOCKLIST", FinishReason::ContentFilter),
        ("MALFORMED_FUNCTION_CALL", FinishReason::Error),
        ("OTHER", FinishReason::Stop),
    ];
    for (native, reason) in cases {
        let body = format!(
            r#"{{"candidates":[{{"content":{{"parts":[{{"text":"x"}}]}},"finishReason":"{native}","index":0}}]}}"#
        );
        assert_eq!(
            finishes(&whole(&body).unwrap()),
            [(reason as i32, native.to_owned())]
        );
    }
}

#[test]
fn a_blocked_prompt_is_a_content_filter_finish_without_content() {
    let body = r#"{"promptFeedback":{"blockReason":"SAFETY","safetyRatings":[]},
                   "usageMetadata":{"promptTokenCount":8,"totalTokenCount":8},"responseId":"r3"}"#;
    for pieces in [
        whole(body).unwrap(),
        stream(&format!("data: {}\n\n", body.replace('\n', " "))).unwrap(),
    ] {
        assert!(deltas(&pieces).is_empty());
        assert_eq!(
            finishes(&pieces),
            [(FinishReason::ContentFilter as i32, "SAFETY".to_owned())]
        );
        assert_eq!(last_usage(&pieces).unwrap().prompt_tokens, 8);
    }
}

#[test]
fn a_whole_body_merges_its_parts() {
    let body = r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"a","thought":true},{"text":"b"},{"text":"c"}]},
                   "finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":1,"candidatesTokenCount":2},"responseId":"r4"}"#;
    let pieces = whole(body).unwrap();
    assert_eq!(pieces[0], Piece::Id("r4".into()));
    let delta = &deltas(&pieces)[0];
    assert_eq!(
        (delta.reasoning.as_deref(), delta.content.as_deref()),
        (Some("a"), Some("bc"))
    );
    assert!(whole(r#"{"candidates":[]}"#).is_err());
    assert!(whole("not json").is_err());
}

#[test]
fn an_error_chunk_is_a_typed_failure() {
    let text = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}]}}]}\r\n\r\n\
                data: {\"error\":{\"code\":503,\"message\":\"The model is overloaded.\",\"status\":\"UNAVAILABLE\"}}\r\n\r\n";
    let failure = stream(text).unwrap_err();
    assert_eq!(failure.kind, UpstreamErrorKind::Overloaded);
    assert_eq!(failure.provider_code.as_deref(), Some("UNAVAILABLE"));
}
