//! `/metrics` after traffic: events recorded and deduplicated, dollars,
//! key lookups and gRPC calls — and no key, account, model or generation id
//! in any label.

use std::time::Duration;

use switchyard_kit::Shutdown;
use switchyard_kit::testing::{metric_label_values, scrape_metrics};
use switchyard_proto::metering::v1 as pb;
use switchyard_proto::metering::v1::usage_metering_service_client::UsageMeteringServiceClient;
use switchyard_usage_metering::{App, Config, SERVICE_NAME};

use crate::support::{event, temp_data_dir};

#[tokio::test]
async fn metrics_count_usage_cost_and_lookups() {
    let app = App::build(&Config::embedded(temp_data_dir()))
        .await
        .expect("build");
    let metrics_addr = app.metrics_addr();
    let channel =
        switchyard_kit::grpc::connect_lazy(&format!("http://{}", app.grpc_addr())).unwrap();
    let shutdown = Shutdown::new();
    let server = tokio::spawn(app.run(shutdown.clone()));
    let mut client = UsageMeteringServiceClient::new(channel);

    let created = client
        .create_key(pb::CreateKeyRequest {
            name: "metrics".into(),
            kind: pb::KeyKind::Inference.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let key_text = created.key_text.clone();
    let account = created.key.unwrap().account_id;
    for presented in [key_text.clone(), "sk-or-v1-not-a-key".to_owned()] {
        client
            .authenticate_key(pb::AuthenticateKeyRequest { key: presented })
            .await
            .unwrap();
    }
    let batch = vec![
        event("gen-metrics-1", &account),
        event("gen-metrics-2", &account),
    ];
    client
        .record_usage(pb::RecordUsageRequest { events: batch })
        .await
        .unwrap();
    let replay = vec![event("gen-metrics-1", &account)];
    client
        .record_usage(pb::RecordUsageRequest { events: replay })
        .await
        .unwrap();

    let record_calls = format!(
        "switchyard_grpc_server_requests_total{{service=\"{SERVICE_NAME}\",method=\"RecordUsage\",code=\"OK\"}} 2"
    );
    let mut text = scrape_metrics(metrics_addr).await;
    // Server-side call counts land when the response is released, which may
    // trail the client by a scheduler turn.
    for _ in 0..100 {
        if text.contains(&record_calls) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        text = scrape_metrics(metrics_addr).await;
    }
    for expected in [
        r#"switchyard_metering_usage_events_total{result="recorded"} 2"#.to_owned(),
        r#"switchyard_metering_usage_events_total{result="duplicate"} 1"#.to_owned(),
        // Two new events at $0.00159 each; the replay costs nothing.
        "switchyard_metering_cost_nanodollars_total 3180000".to_owned(),
        "switchyard_metering_record_batch_seconds_count 2".to_owned(),
        r#"switchyard_metering_key_lookups_total{result="found"} 1"#.to_owned(),
        r#"switchyard_metering_key_lookups_total{result="not_found"} 1"#.to_owned(),
        record_calls,
    ] {
        assert!(text.contains(&expected), "missing {expected} in\n{text}");
    }
    assert!(!text.contains(&key_text), "the key text is in the scrape");
    for value in metric_label_values(&text) {
        for leak in ["gen-metrics", account.as_str(), "openai/gpt-4", "sk-or"] {
            assert!(!value.contains(leak), "label value {value} leaks {leak}");
        }
    }

    shutdown.trigger();
    server.await.unwrap().expect("server stopped cleanly");
}
