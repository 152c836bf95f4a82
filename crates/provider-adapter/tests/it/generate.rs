//! Successful generations, streamed and whole, plus cancellation.

use std::time::{Duration, Instant};

use switchyard_proto::common::v1::{FinishReason, TokenUsage, Tool};
use switchyard_proto::provider::v1::WireFormat;
use switchyard_proto::provider::v1::generate_response::Event;
use tonic::Code;

use crate::{TestApp, content, with_headers};

// "Say hello to the switchyard." is 28 chars -> 7 tokens, + 3 for the message.
const PROMPT_TOKENS: u64 = 10;

fn usage(events: &[Event]) -> TokenUsage {
    match events.last() {
        Some(Event::Usage(usage)) => *usage,
        other => panic!("expected usage last, got {other:?}"),
    }
}

fn finish(events: &[Event]) -> (i32, String) {
    let finishes: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Finish(f) => Some((f.reason, f.native_reason.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(finishes.len(), 1, "{events:?}");
    finishes[0].clone()
}

#[tokio::test]
async fn streaming_and_whole_generations_agree() {
    let app = TestApp::start().await;
    let streamed = app.generate(app.request("sim-small", true)).await;
    let whole = app.generate(app.request("sim-small", false)).await;

    let Event::Started(started) = &streamed[0] else {
        panic!("expected started first: {streamed:?}")
    };
    assert_eq!(started.upstream_status, 200);
    assert!(started.upstream_id.starts_with("chatcmpl-"));
    let deltas = streamed
        .iter()
        .filter(|e| matches!(e, Event::Delta(_)))
        .count();
    assert_eq!(deltas, 24);
    assert_eq!(streamed.len(), 1 + 24 + 2);
    assert_eq!(
        finish(&streamed),
        (FinishReason::Stop as i32, "stop".to_owned())
    );
    let expected_usage = TokenUsage {
        prompt_tokens: PROMPT_TOKENS,
        completion_tokens: 24,
        ..Default::default()
    };
    assert_eq!(usage(&streamed), expected_usage);

    assert_eq!(whole.len(), 4, "{whole:?}");
    assert!(matches!(&whole[0], Event::Started(s) if s.upstream_status == 200));
    assert_eq!(content(&whole), content(&streamed));
    assert_eq!(content(&whole).split(' ').count(), 24);
    assert_eq!(
        finish(&whole),
        (FinishReason::Stop as i32, "stop".to_owned())
    );
    assert_eq!(usage(&whole), expected_usage);

    let stats = app.sim.stats().models["sim-small"];
    assert_eq!((stats.requests, stats.successful), (2, 2));
    assert_eq!(stats.completion_tokens, 48);
}

#[tokio::test]
async fn max_tokens_finishes_with_length() {
    let app = TestApp::start().await;
    for stream in [true, false] {
        let mut request = app.request("m", stream);
        request.request.as_mut().unwrap().max_tokens = Some(4);
        let events = app.generate(request).await;
        assert_eq!(
            finish(&events),
            (FinishReason::Length as i32, "length".to_owned())
        );
        assert_eq!(usage(&events).completion_tokens, 4);
    }
}

#[tokio::test]
async fn tool_calls_stream_as_indexed_deltas() {
    let app = TestApp::start().await;
    for stream in [true, false] {
        let mut request = app.request("m", stream);
        let chat = request.request.as_mut().unwrap();
        chat.tools = vec![Tool {
            r#type: "function".into(),
            name: "get_weather".into(),
            description: Some("Weather for a city".into()),
            parameters_json: Some(
                r#"{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"#
                    .into(),
            ),
            strict: None,
        }];
        chat.tool_choice_json = Some(r#""required""#.into());
        let events = app.generate(request).await;
        let calls: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                Event::Delta(d) => Some(d.tool_calls.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        assert!(calls.iter().all(|c| c.index == 0));
        if stream {
            assert!(calls.len() >= 3, "head + 2 fragments: {calls:?}");
        }
        assert_eq!(calls[0].name.as_deref(), Some("get_weather"));
        assert!(calls[0].id.as_deref().unwrap().starts_with("call_"));
        let arguments: String = calls.iter().filter_map(|c| c.arguments.clone()).collect();
        let parsed: serde_json::Value = serde_json::from_str(&arguments).unwrap();
        assert!(parsed["city"].is_string());
        assert_eq!(
            finish(&events),
            (FinishReason::ToolCalls as i32, "tool_calls".to_owned())
        );
        assert!(usage(&events).completion_tokens > 0);
    }
}

#[tokio::test]
async fn dropping_the_stream_cancels_the_upstream_call() {
    let app = TestApp::start().await;
    let request = with_headers(
        app.request("slow", true),
        &[
            ("x-sim-tokens-per-second", "50"),
            ("x-sim-completion-tokens", "1000"),
        ],
    );
    let mut stream = app
        .client
        .clone()
        .generate(request)
        .await
        .unwrap()
        .into_inner();
    let mut deltas = 0;
    while deltas < 3 {
        if let Some(Event::Delta(_)) = stream.message().await.unwrap().unwrap().event {
            deltas += 1;
        }
    }
    drop(stream);

    let deadline = Instant::now() + Duration::from_secs(10);
    let stats = loop {
        let stats = app.sim.stats().models["slow"];
        if stats.cancelled == 1 || Instant::now() > deadline {
            break stats;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(stats.cancelled, 1, "{stats:?}");
    assert!(stats.completion_tokens < 1000);
}

#[tokio::test]
async fn requests_the_adapter_cannot_serve_are_grpc_errors() {
    let app = TestApp::start().await;
    let mut request = app.request("m", true);
    request.target.as_mut().unwrap().wire_format = WireFormat::Unspecified as i32;
    let status = app.client.clone().generate(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    let mut request = app.request("m", true);
    request.target = None;
    let status = app.client.clone().generate(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    let mut request = app.request("m", true);
    request.request.as_mut().unwrap().response_format_json = Some("{".into());
    let status = app.client.clone().generate(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(app.sim.stats().models.get("m"), None);

    // And a generation still works afterwards.
    let events = app.generate(app.request("m", false)).await;
    assert!(
        !events.iter().any(|e| matches!(e, Event::Error(_))),
        "{events:?}"
    );
    assert_eq!(usage(&events).completion_tokens, 24);
}

/// A stream announces `Started` with its first piece, not when the
/// upstream's headers arrive: the router waits for content anyway, and a
/// lone `Started` cost it a wake-up. The simulator sends its headers at
/// once and its first chunk after the TTFT, so nothing may arrive before
/// the TTFT has passed, and then `Started` and the role delta together.
#[tokio::test]
async fn a_stream_announces_started_with_its_first_piece() {
    let app = TestApp::start().await;
    let request = with_headers(app.request("sim-small", true), &[("x-sim-ttft-ms", "300")]);
    let asked = Instant::now();
    let mut stream = app.open(request).await;
    let first = stream.message().await.expect("first").expect("an event");
    assert!(
        asked.elapsed() >= Duration::from_millis(250),
        "Started went out before the first chunk: after {:?}",
        asked.elapsed()
    );
    assert!(matches!(first.event, Some(Event::Started(_))), "{first:?}");
    let second = stream.message().await.expect("second").expect("an event");
    assert!(matches!(second.event, Some(Event::Delta(_))), "{second:?}");
}
