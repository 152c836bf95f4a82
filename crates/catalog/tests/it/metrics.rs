//! `/metrics` after traffic: catalog gauges, gRPC calls by method and code,
//! and no label value taken from a request.

use std::time::Duration;

use switchyard_catalog::{App, Config};
use switchyard_kit::Shutdown;
use switchyard_kit::testing::{metric_label_values, scrape_metrics};
use switchyard_proto::catalog::v1 as pb;
use switchyard_proto::catalog::v1::catalog_service_client::CatalogServiceClient;

use crate::support::{TempDir, seed_path};

const SERVICE: &str = "switchyard.catalog.v1.CatalogService";

/// Scrapes until `needle` shows up: server-side counts land when a response
/// stream is released, which may trail the client by a scheduler turn.
async fn scrape_until(addr: std::net::SocketAddr, needle: &str) -> String {
    let mut text = scrape_metrics(addr).await;
    for _ in 0..100 {
        if text.contains(needle) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        text = scrape_metrics(addr).await;
    }
    text
}

#[tokio::test]
async fn metrics_report_catalog_state_and_calls() {
    let dir = TempDir::new();
    let app = App::build(Config {
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_owned(),
        seed: Some(seed_path()),
        ..Config::default()
    })
    .await
    .unwrap();
    let metrics_addr = app.metrics_addr();
    let version = app.catalog().snapshot().version;
    let models = app.catalog().snapshot().models.len();
    let channel =
        switchyard_kit::grpc::connect_lazy(&format!("http://{}", app.grpc_addr())).unwrap();
    let shutdown = Shutdown::new();
    let server = tokio::spawn(app.run(shutdown.clone()));
    let mut client = CatalogServiceClient::new(channel);

    client
        .list_models(pb::ListModelsRequest {})
        .await
        .expect("list");
    let missing = client
        .get_model(pb::GetModelRequest {
            id: "acme/private-model-from-a-user".into(),
        })
        .await
        .expect_err("unknown model");
    assert_eq!(missing.code(), tonic::Code::NotFound);
    let mut watch = client
        .watch_catalog(pb::WatchCatalogRequest {})
        .await
        .expect("watch")
        .into_inner();
    watch
        .message()
        .await
        .expect("first snapshot")
        .expect("some");

    let not_found = format!(
        "switchyard_grpc_server_requests_total{{service=\"{SERVICE}\",method=\"GetModel\",code=\"NOT_FOUND\"}} 1"
    );
    let text = scrape_until(metrics_addr, &not_found).await;
    for expected in [
        format!("switchyard_catalog_version {version}"),
        format!("switchyard_catalog_entries{{kind=\"models\"}} {models}"),
        "switchyard_catalog_watchers 1".to_owned(),
        format!(
            "switchyard_grpc_server_requests_total{{service=\"{SERVICE}\",method=\"ListModels\",code=\"OK\"}} 1"
        ),
        format!(
            "switchyard_grpc_server_duration_seconds_count{{service=\"{SERVICE}\",method=\"ListModels\"}} 1"
        ),
        not_found,
    ] {
        assert!(text.contains(&expected), "missing {expected} in\n{text}");
    }
    for value in metric_label_values(&text) {
        assert!(
            !value.contains("private-model"),
            "request data in label {value}"
        );
    }

    // Dropping the watch stream uncounts it.
    drop(watch);
    let text = scrape_until(metrics_addr, "switchyard_catalog_watchers 0").await;
    assert!(text.contains("switchyard_catalog_watchers 0"), "{text}");

    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("drains")
        .unwrap()
        .unwrap();
}
