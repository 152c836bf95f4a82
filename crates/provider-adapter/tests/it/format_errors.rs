//! Anthropic and Gemini failures against provider-sim: each format's error
//! bodies become the same typed kinds, with retry hints from a header
//! (Anthropic) or a `RetryInfo` detail (Gemini); cut streams and in-band
//! stream errors arrive after the deltas already sent.

use switchyard_proto::provider::v1::generate_response::Event;
use switchyard_proto::provider::v1::{UpstreamErrorKind as K, WireFormat};

use crate::{TestApp, deltas, the_error, with_headers};

/// Sim headers, then per format: (kind, status, provider code).
type Case = (
    &'static [(&'static str, &'static str)],
    (K, u32, &'static str),
    (K, u32, &'static str),
);

#[tokio::test]
async fn error_bodies_map_to_kinds() {
    let app = TestApp::start().await;
    let cases: &[Case] = &[
        (
            &[("x-sim-fail-rate", "1")],
            (K::Unavailable, 500, "api_error"),
            (K::Unavailable, 500, "INTERNAL"),
        ),
        (
            &[("x-sim-fail-rate", "1"), ("x-sim-fail-status", "529")],
            (K::Overloaded, 529, "overloaded_error"),
            (K::Unavailable, 529, "INTERNAL"),
        ),
        (
            &[("x-sim-fail-rate", "1"), ("x-sim-fail-status", "503")],
            (K::Unavailable, 503, "api_error"),
            (K::Overloaded, 503, "UNAVAILABLE"),
        ),
        (
            &[("x-sim-fail-rate", "1"), ("x-sim-fail-status", "504")],
            (K::Unavailable, 504, "api_error"),
            (K::Timeout, 504, "DEADLINE_EXCEEDED"),
        ),
        (
            &[("x-sim-fail-rate", "1"), ("x-sim-fail-status", "401")],
            (K::Authentication, 401, "authentication_error"),
            (K::Authentication, 401, "UNAUTHENTICATED"),
        ),
        (
            &[("x-sim-fail-rate", "1"), ("x-sim-fail-status", "403")],
            (K::PermissionDenied, 403, "permission_error"),
            (K::PermissionDenied, 403, "PERMISSION_DENIED"),
        ),
        (
            &[("x-sim-fail-rate", "1"), ("x-sim-fail-status", "404")],
            (K::NotFound, 404, "not_found_error"),
            (K::NotFound, 404, "NOT_FOUND"),
        ),
        (
            &[("x-sim-fail-rate", "1"), ("x-sim-fail-status", "422")],
            (K::InvalidRequest, 422, "invalid_request_error"),
            (K::InvalidRequest, 422, "FAILED_PRECONDITION"),
        ),
        (
            &[("x-sim-context-length", "5")],
            (K::ContextLengthExceeded, 400, "invalid_request_error"),
            (K::ContextLengthExceeded, 400, "INVALID_ARGUMENT"),
        ),
        (
            &[("x-sim-rate-limit-after-secs", "3")],
            (K::RateLimited, 429, "rate_limit_error"),
            (K::RateLimited, 429, "RESOURCE_EXHAUSTED"),
        ),
    ];
    for wire in [WireFormat::AnthropicMessages, WireFormat::Gemini] {
        for stream in [true, false] {
            for (headers, anthropic, gemini) in cases {
                let (kind, status, code) = match wire {
                    WireFormat::AnthropicMessages => anthropic,
                    _ => gemini,
                };
                let events = app
                    .generate(with_headers(app.request_in(wire, "m", stream), headers))
                    .await;
                assert_eq!(events.len(), 1, "nothing before the error: {events:?}");
                let error = the_error(&events);
                let label = format!("{wire:?} stream={stream} {headers:?}: {error:?}");
                assert_eq!(error.kind, *kind as i32, "{label}");
                assert_eq!(error.upstream_status, *status, "{label}");
                assert_eq!(error.provider_code.as_deref(), Some(*code), "{label}");
                let retry = (*kind == K::RateLimited).then_some(3000);
                assert_eq!(error.retry_after_ms, retry, "{label}");
                assert!(
                    error
                        .message
                        .starts_with(&format!("upstream returned {status}: ")),
                    "{label}"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_request_the_upstream_rejects_is_invalid() {
    let app = TestApp::start().await;
    // The adapter never builds a thinking budget under the API minimum;
    // passthrough can, and the upstream's 400 must come back typed.
    let mut request = app.request_in(WireFormat::AnthropicMessages, "m", false);
    request.request.as_mut().unwrap().passthrough_json =
        Some(r#"{"thinking":{"type":"enabled","budget_tokens":10}}"#.into());
    let error = the_error(&app.generate(request).await);
    assert_eq!(error.kind, K::InvalidRequest as i32, "{error:?}");
    assert_eq!(error.upstream_status, 400);
}

#[tokio::test]
async fn cut_streams_are_bad_responses_after_their_deltas() {
    let app = TestApp::start().await;
    for wire in [WireFormat::AnthropicMessages, WireFormat::Gemini] {
        let events = app
            .generate(with_headers(
                app.request_in(wire, "m", true),
                &[("x-sim-cut-after-chunks", "8")],
            ))
            .await;
        assert!(matches!(events[0], Event::Started(_)), "{events:?}");
        assert!(deltas(&events) >= 4, "{wire:?}: {events:?}");
        assert!(!events.iter().any(|e| matches!(e, Event::Finish(_))));
        assert_eq!(the_error(&events).kind, K::BadResponse as i32, "{wire:?}");

        let events = app
            .generate(with_headers(
                app.request_in(wire, "m", false),
                &[("x-sim-cut-after-chunks", "1")],
            ))
            .await;
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(the_error(&events).kind, K::BadResponse as i32);
    }
}

#[tokio::test]
async fn in_band_stream_errors_are_typed() {
    let app = TestApp::start().await;
    for (wire, code) in [
        (WireFormat::AnthropicMessages, "overloaded_error"),
        (WireFormat::Gemini, "UNAVAILABLE"),
    ] {
        let events = app
            .generate(with_headers(
                app.request_in(wire, "m", true),
                &[
                    ("x-sim-cut-after-chunks", "8"),
                    ("x-sim-cut-with-error", "1"),
                ],
            ))
            .await;
        assert!(deltas(&events) >= 4, "{wire:?}: {events:?}");
        let error = the_error(&events);
        assert_eq!(error.kind, K::Overloaded as i32, "{wire:?}: {error:?}");
        assert_eq!(error.upstream_status, 200);
        assert_eq!(error.provider_code.as_deref(), Some(code));
        assert!(
            error.message.starts_with("upstream reported an error"),
            "{}",
            error.message
        );
    }
}

#[tokio::test]
async fn a_hanging_upstream_hits_the_first_token_timeout() {
    let app = TestApp::start().await;
    for wire in [WireFormat::AnthropicMessages, WireFormat::Gemini] {
        let mut request = with_headers(app.request_in(wire, "m", true), &[("x-sim-hang", "1")]);
        request.first_token_timeout_ms = 300;
        let error = the_error(&app.generate(request).await);
        assert_eq!(error.kind, K::Timeout as i32, "{wire:?}: {error:?}");
        assert!(error.message.contains("first token"), "{}", error.message);
    }
}
