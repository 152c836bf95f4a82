//! Upstream failures arrive as one typed `UpstreamError` event.

use std::collections::HashMap;

use secrecy::SecretString;
use switchyard_proto::provider::v1::generate_response::Event;
use switchyard_proto::provider::v1::{UpstreamError, UpstreamErrorKind as K};
use switchyard_provider_adapter::Config;

use crate::{TestApp, with_headers};

fn the_error(events: &[Event]) -> UpstreamError {
    match events.last() {
        Some(Event::Error(error)) => error.clone(),
        other => panic!("expected an error last, got {other:?} in {events:?}"),
    }
}

/// Sim headers, then the expected kind, upstream status and provider code.
type Case = (
    &'static [(&'static str, &'static str)],
    K,
    u32,
    Option<&'static str>,
);

#[tokio::test]
async fn http_errors_map_to_kinds() {
    let app = TestApp::start().await;
    let cases: &[Case] = &[
        (
            &[("x-sim-fail-rate", "1")],
            K::Unavailable,
            500,
            Some("simulated_failure"),
        ),
        (
            &[("x-sim-fail-rate", "1"), ("x-sim-fail-status", "503")],
            K::Overloaded,
            503,
            None,
        ),
        (
            &[("x-sim-fail-rate", "1"), ("x-sim-fail-status", "502")],
            K::Unavailable,
            502,
            None,
        ),
        (
            &[("x-sim-fail-rate", "1"), ("x-sim-fail-status", "504")],
            K::Timeout,
            504,
            None,
        ),
        (
            &[("x-sim-fail-rate", "1"), ("x-sim-fail-status", "404")],
            K::NotFound,
            404,
            None,
        ),
        (
            &[("x-sim-fail-rate", "1"), ("x-sim-fail-status", "403")],
            K::PermissionDenied,
            403,
            None,
        ),
        (
            &[("x-sim-fail-rate", "1"), ("x-sim-fail-status", "422")],
            K::InvalidRequest,
            422,
            None,
        ),
        (
            &[("x-sim-context-length", "5")],
            K::ContextLengthExceeded,
            400,
            Some("context_length_exceeded"),
        ),
        (
            &[("x-sim-rate-limit-after-secs", "3")],
            K::RateLimited,
            429,
            Some("rate_limit_exceeded"),
        ),
    ];
    for stream in [true, false] {
        for (headers, kind, status, code) in cases {
            let events = app
                .generate(with_headers(app.request("m", stream), headers))
                .await;
            assert_eq!(events.len(), 1, "nothing before the error: {events:?}");
            let error = the_error(&events);
            assert_eq!(error.kind, *kind as i32, "{headers:?}: {error:?}");
            assert_eq!(error.upstream_status, *status, "{headers:?}");
            if let Some(code) = code {
                assert_eq!(error.provider_code.as_deref(), Some(*code));
            }
            let retry = (*kind == K::RateLimited).then_some(3000);
            assert_eq!(error.retry_after_ms, retry);
            assert!(
                error
                    .message
                    .starts_with(&format!("upstream returned {status}")),
                "{}",
                error.message
            );
        }
    }
}

#[tokio::test]
async fn credentials_are_resolved_by_name() {
    let sim = provider_sim::Config {
        api_key: Some("sk-sim-secret".into()),
        ..provider_sim::Config::ephemeral()
    };
    let config = Config {
        credentials: HashMap::from([(
            "SIM_API_KEY".to_owned(),
            SecretString::from("sk-sim-secret"),
        )]),
        ..Config::ephemeral()
    };
    let app = TestApp::start_with(sim, config).await;

    let mut request = app.request("m", true);
    request.target.as_mut().unwrap().credential_ref = "SIM_API_KEY".into();
    let events = app.generate(request).await;
    assert!(matches!(events.last(), Some(Event::Usage(_))), "{events:?}");

    let mut request = app.request("m", true);
    request.target.as_mut().unwrap().credential_ref = "SWITCHYARD_TEST_SURELY_UNSET_KEY".into();
    let error = the_error(&app.generate(request).await);
    assert_eq!(error.kind, K::Authentication as i32);
    assert_eq!(error.upstream_status, 401);
    assert_eq!(error.provider_code.as_deref(), Some("invalid_api_key"));
}

#[tokio::test]
async fn a_hanging_upstream_hits_the_first_token_timeout() {
    let app = TestApp::start().await;
    for stream in [true, false] {
        let mut request = with_headers(app.request("m", stream), &[("x-sim-hang", "1")]);
        request.first_token_timeout_ms = 300;
        let events = app.generate(request).await;
        let error = the_error(&events);
        assert_eq!(error.kind, K::Timeout as i32, "{error:?}");
        assert_eq!(error.upstream_status, 0);
        assert!(error.message.contains("first token"), "{}", error.message);
        // A stream was accepted (headers arrived) before the silence.
        assert_eq!(events.len(), if stream { 2 } else { 1 });
    }
}

#[tokio::test]
async fn a_slow_stream_hits_the_total_timeout_after_some_tokens() {
    let app = TestApp::start().await;
    let mut request = with_headers(
        app.request("m", true),
        &[
            ("x-sim-tokens-per-second", "40"),
            ("x-sim-completion-tokens", "200"),
        ],
    );
    request.total_timeout_ms = 400;
    let events = app.generate(request).await;
    let error = the_error(&events);
    assert_eq!(error.kind, K::Timeout as i32);
    assert!(events.iter().any(|e| matches!(e, Event::Delta(_))));
}

#[tokio::test]
async fn a_cut_stream_is_a_bad_response_after_its_deltas() {
    let app = TestApp::start().await;
    // Role chunk + 5 content chunks, then the connection drops.
    let events = app
        .generate(with_headers(
            app.request("m", true),
            &[("x-sim-cut-after-chunks", "6")],
        ))
        .await;
    assert!(matches!(events[0], Event::Started(_)));
    let deltas = events
        .iter()
        .filter(|e| matches!(e, Event::Delta(_)))
        .count();
    assert_eq!(deltas, 5, "{events:?}");
    assert!(!events.iter().any(|e| matches!(e, Event::Finish(_))));
    assert_eq!(the_error(&events).kind, K::BadResponse as i32);

    let events = app
        .generate(with_headers(
            app.request("m", false),
            &[("x-sim-cut-after-chunks", "1")],
        ))
        .await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(the_error(&events).kind, K::BadResponse as i32);
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_bad_response() {
    let app = TestApp::start().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut request = app.request("m", true);
    request.target.as_mut().unwrap().base_url = format!("http://{closed}/v1");
    let error = the_error(&app.generate(request).await);
    assert_eq!(error.kind, K::BadResponse as i32);
    assert_eq!(error.upstream_status, 0);
}
