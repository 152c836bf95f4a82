//! Anthropic Messages and Gemini against provider-sim, through the gRPC
//! service: streamed and whole answers, tools, thinking, safety blocks,
//! credentials and cancellation. The simulator answers one conversation the
//! same way in every format, so the OpenAI path is the reference.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use secrecy::SecretString;
use switchyard_proto::common::v1::{FinishReason, Tool};
use switchyard_proto::provider::v1::generate_response::Event;
use switchyard_proto::provider::v1::{UpstreamErrorKind as K, WireFormat};
use switchyard_provider_adapter::Config;

use crate::{TestApp, content, deltas, finish, reasoning, the_error, usage, with_headers};

const FORMATS: [WireFormat; 2] = [WireFormat::AnthropicMessages, WireFormat::Gemini];

/// The simulator's native stop reason for a plain answer.
fn native_stop(wire: WireFormat) -> &'static str {
    match wire {
        WireFormat::AnthropicMessages => "end_turn",
        _ => "STOP",
    }
}

#[tokio::test]
async fn streaming_and_whole_answers_match_the_openai_reference() {
    let app = TestApp::start().await;
    let reference = app.generate(app.request("sim-small", false)).await;
    for wire in FORMATS {
        for stream in [true, false] {
            let events = app
                .generate(app.request_in(wire, "sim-small", stream))
                .await;
            let Event::Started(started) = &events[0] else {
                panic!("expected started first: {events:?}")
            };
            assert_eq!(started.upstream_status, 200);
            // A stream's Started carries the id from the upstream's headers;
            // Gemini names its response only in the body, so a Gemini
            // stream's has none.
            let named = !(stream && wire == WireFormat::Gemini);
            assert_eq!(!started.upstream_id.is_empty(), named, "{wire:?} {stream}");
            assert_eq!(content(&events), content(&reference), "{wire:?} {stream}");
            assert_eq!(deltas(&events), if stream { 24 } else { 1 }, "{wire:?}");
            assert_eq!(
                finish(&events),
                (FinishReason::Stop as i32, native_stop(wire).to_owned())
            );
            let usage = usage(&events);
            assert_eq!((usage.prompt_tokens, usage.completion_tokens), (10, 24));
            assert!(!usage.estimated);
        }
    }
    let stats = app.sim.stats().models["sim-small"];
    assert_eq!((stats.requests, stats.successful), (5, 5));
}

#[tokio::test]
async fn max_tokens_and_stop_sequences() {
    let app = TestApp::start().await;
    for wire in FORMATS {
        for stream in [true, false] {
            let mut request = app.request_in(wire, "m", stream);
            request.request.as_mut().unwrap().max_tokens = Some(4);
            let events = app.generate(request).await;
            assert_eq!(finish(&events).0, FinishReason::Length as i32, "{wire:?}");
            assert_eq!(usage(&events).completion_tokens, 4);
        }
    }
}

#[tokio::test]
async fn forced_tool_calls_arrive_as_tool_call_deltas() {
    let app = TestApp::start().await;
    for wire in FORMATS {
        for stream in [true, false] {
            let mut request = app.request_in(wire, "m", stream);
            let chat = request.request.as_mut().unwrap();
            chat.tools = vec![Tool {
                r#type: "function".into(),
                name: "get_weather".into(),
                description: Some("Weather for a city".into()),
                parameters_json: Some(
                    r#"{"type":"object","additionalProperties":false,"properties":{"city":{"type":"string"}},"required":["city"]}"#
                        .into(),
                ),
                strict: None,
            }];
            chat.tool_choice_json =
                Some(r#"{"type":"function","function":{"name":"get_weather"}}"#.into());
            let events = app.generate(request).await;
            let calls: Vec<_> = events
                .iter()
                .filter_map(|e| match e {
                    Event::Delta(d) => Some(d.tool_calls.clone()),
                    _ => None,
                })
                .flatten()
                .collect();
            assert!(calls.iter().all(|c| c.index == 0), "{calls:?}");
            assert_eq!(calls[0].name.as_deref(), Some("get_weather"));
            assert!(!calls[0].id.as_deref().unwrap_or_default().is_empty());
            if stream && wire == WireFormat::AnthropicMessages {
                assert!(calls.len() >= 3, "head + fragments: {calls:?}");
            }
            let arguments: String = calls.iter().filter_map(|c| c.arguments.clone()).collect();
            let parsed: serde_json::Value = serde_json::from_str(&arguments).unwrap();
            assert!(parsed["city"].is_string(), "{wire:?}: {arguments}");
            assert_eq!(
                finish(&events).0,
                FinishReason::ToolCalls as i32,
                "{wire:?}"
            );
            assert!(usage(&events).completion_tokens > 0);
        }
    }
}

#[tokio::test]
async fn thinking_streams_as_reasoning_unless_excluded() {
    let app = TestApp::start().await;
    for wire in FORMATS {
        for stream in [true, false] {
            for exclude in [false, true] {
                let mut request = app.request_in(wire, "m", stream);
                request.request.as_mut().unwrap().reasoning_json =
                    Some(format!(r#"{{"max_tokens":1024,"exclude":{exclude}}}"#));
                let events = app.generate(request).await;
                let label = format!("{wire:?} stream={stream} exclude={exclude}");
                assert_eq!(
                    reasoning(&events).is_empty(),
                    exclude,
                    "{label}: {events:?}"
                );
                assert_eq!(content(&events).split(' ').count(), 24, "{label}");
                // Hidden or not, thinking is generated and billed.
                assert_eq!(usage(&events).completion_tokens, 48, "{label}");
            }
        }
    }
}

#[tokio::test]
async fn safety_blocks_finish_with_content_filter() {
    let app = TestApp::start().await;
    for wire in FORMATS {
        for stream in [true, false] {
            let request = with_headers(
                app.request_in(wire, "m", stream),
                &[("x-sim-safety-block", "1")],
            );
            let events = app.generate(request).await;
            assert_eq!(deltas(&events), 0, "{wire:?}: {events:?}");
            let (reason, native) = finish(&events);
            assert_eq!(reason, FinishReason::ContentFilter as i32);
            let expected = match wire {
                WireFormat::AnthropicMessages => "refusal",
                _ => "SAFETY",
            };
            assert_eq!(native, expected);
            assert!(matches!(events.last(), Some(Event::Usage(_))));
        }
    }
}

#[tokio::test]
async fn credentials_go_in_each_formats_header() {
    let sim = provider_sim::Config {
        api_key: Some("sk-sim-secret".into()),
        ..provider_sim::Config::ephemeral()
    };
    let config = Config {
        credentials: HashMap::from([("SIM_KEY".to_owned(), SecretString::from("sk-sim-secret"))]),
        ..Config::ephemeral()
    };
    let app = TestApp::start_with(sim, config).await;
    for wire in FORMATS {
        let mut request = app.request_in(wire, "m", true);
        request.target.as_mut().unwrap().credential_ref = "SIM_KEY".into();
        let events = app.generate(request).await;
        assert!(
            matches!(events.last(), Some(Event::Usage(_))),
            "{wire:?}: {events:?}"
        );

        let mut request = app.request_in(wire, "m", true);
        request.target.as_mut().unwrap().credential_ref = "SWITCHYARD_TEST_SURELY_UNSET_KEY".into();
        let error = the_error(&app.generate(request).await);
        assert_eq!(error.kind, K::Authentication as i32, "{wire:?}: {error:?}");
        assert!(!error.message.contains("sk-sim-secret"));
    }
}

#[tokio::test]
async fn dropping_the_stream_cancels_the_upstream_call() {
    let app = TestApp::start().await;
    for (wire, model) in [
        (WireFormat::AnthropicMessages, "slow-a"),
        (WireFormat::Gemini, "slow-g"),
    ] {
        let request = with_headers(
            app.request_in(wire, model, true),
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
        let mut seen = 0;
        while seen < 3 {
            if let Some(Event::Delta(_)) = stream.message().await.unwrap().unwrap().event {
                seen += 1;
            }
        }
        drop(stream);
        let deadline = Instant::now() + Duration::from_secs(10);
        let stats = loop {
            let stats = app.sim.stats().models[model];
            if stats.cancelled == 1 || Instant::now() > deadline {
                break stats;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(stats.cancelled, 1, "{wire:?}: {stats:?}");
        assert!(stats.completion_tokens < 1000);
    }
}
