//! `/sim/stats` is ground truth for billing tests: it must count exactly.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use provider_sim::ModelStats;

use crate::{TestSim, hello, streaming};

#[tokio::test]
async fn stats_count_requests_outcomes_and_tokens() {
    let sim = TestSim::start().await;
    sim.chat_json(&hello("m"), &[]).await;
    sim.chat_events(&streaming(hello("m")), &[]).await;
    sim.chat(&hello("m"), &[("x-sim-fail-rate", "1")]).await;
    sim.chat(&hello("m"), &[("x-sim-rate-limit-after-secs", "1")])
        .await;
    // A cut stream: role chunk + 4 tokens sent, then the connection drops.
    let cut = sim
        .chat(&streaming(hello("m")), &[("x-sim-cut-after-chunks", "5")])
        .await;
    let _ = cut.bytes().await;
    sim.chat_json(&hello("other"), &[("x-sim-completion-tokens", "3")])
        .await;

    let stats = sim.stats().await;
    assert_eq!(
        stats.models["m"],
        ModelStats {
            requests: 5,
            successful: 2,
            failed: 3,
            prompt_tokens: 3 * 17,
            completion_tokens: 2 * 24 + 4,
            cancelled: 0,
        }
    );
    assert_eq!(stats.models["other"].completion_tokens, 3);

    let reset = sim.client.post(sim.url("/sim/reset")).send().await.unwrap();
    assert_eq!(reset.status(), 204);
    assert!(sim.stats().await.models.is_empty());
}

#[tokio::test]
async fn a_client_dropping_the_stream_counts_as_cancelled() {
    let sim = TestSim::start().await;
    let headers = [
        ("x-sim-tokens-per-second", "50"),
        ("x-sim-completion-tokens", "500"),
    ];
    let response = sim.chat(&streaming(hello("m")), &headers).await;
    let mut body = response.bytes_stream();
    let mut seen = 0;
    while seen < 3 {
        let bytes = body.next().await.unwrap().unwrap();
        seen += std::str::from_utf8(&bytes)
            .unwrap()
            .matches("data: ")
            .count();
    }
    drop(body);

    let deadline = Instant::now() + Duration::from_secs(10);
    let stats = loop {
        let stats = sim.stats().await.models["m"];
        if stats.cancelled == 1 || Instant::now() > deadline {
            break stats;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(stats.cancelled, 1);
    assert_eq!(stats.successful, 0);
    assert!(
        stats.completion_tokens >= 2 && stats.completion_tokens < 500,
        "{stats:?}"
    );
}
