//! gRPC end to end: `App::build` on port 0, a real tonic client.

use std::time::Duration;

use switchyard_catalog::{App, Config, SERVICE_NAME};
use switchyard_kit::Shutdown;
use switchyard_kit::testing::fresh_postgres_database;
use switchyard_proto::catalog::v1 as pb;
use switchyard_proto::catalog::v1::catalog_service_client::CatalogServiceClient;
use switchyard_proto::provider::v1::WireFormat;
use tokio::task::JoinHandle;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::support::{TempDir, seed_path};

struct TestApp {
    client: CatalogServiceClient<Channel>,
    channel: Channel,
    shutdown: Shutdown,
    server: JoinHandle<anyhow::Result<()>>,
    _dir: TempDir,
}

impl TestApp {
    async fn start(database_url: Option<String>) -> TestApp {
        let dir = TempDir::new();
        let config = Config {
            grpc_addr: "127.0.0.1:0".parse().unwrap(),
            database_url: database_url.map(Into::into),
            data_dir: dir.path().to_owned(),
            seed: Some(seed_path()),
            ..Config::default()
        };
        let app = App::build(config).await.expect("build");
        let url = format!("http://{}", app.grpc_addr());
        let shutdown = Shutdown::new();
        let server = tokio::spawn(app.run(shutdown.clone()));
        let channel = Channel::from_shared(url)
            .unwrap()
            .connect()
            .await
            .expect("connect");
        TestApp {
            client: CatalogServiceClient::new(channel.clone()),
            channel,
            shutdown,
            server,
            _dir: dir,
        }
    }

    async fn stop(self) {
        self.shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(10), self.server)
            .await
            .expect("server drains within 10 s")
            .unwrap()
            .unwrap();
    }
}

fn model(id: &str) -> pb::Model {
    pb::Model {
        id: id.to_owned(),
        name: "Acme: Tiny".to_owned(),
        created: 1_720_000_000,
        context_length: 4096,
        ..Default::default()
    }
}

#[tokio::test]
async fn reads_models_endpoints_and_providers() {
    let mut app = TestApp::start(None).await;
    let models = app
        .client
        .list_models(pb::ListModelsRequest {})
        .await
        .unwrap()
        .into_inner()
        .models;
    assert!(models.iter().any(|m| m.id == "openai/gpt-4"));

    let gpt4 = app
        .client
        .get_model(pb::GetModelRequest {
            id: "openai/gpt-4".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .model
        .unwrap();
    assert_eq!(gpt4.name, "OpenAI: GPT-4");
    assert_eq!(gpt4.created, 1685232000);
    assert_eq!(gpt4.context_length, 8191);

    let missing = app
        .client
        .get_model(pb::GetModelRequest {
            id: "openai/gpt-99".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    let listed = app
        .client
        .list_endpoints(pb::ListEndpointsRequest {
            model_id: "openai/gpt-4-1106-preview".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.model.unwrap().id, "openai/gpt-4-1106-preview");
    assert!(listed.endpoints.len() >= 2);
    for e in &listed.endpoints {
        let pricing = e.pricing.as_ref().unwrap();
        assert_eq!(
            (pricing.prompt.as_str(), pricing.completion.as_str()),
            ("0.00001", "0.00003")
        );
    }

    let providers = app
        .client
        .list_providers(pb::ListProvidersRequest {})
        .await
        .unwrap()
        .into_inner()
        .providers;
    let openai = providers.iter().find(|p| p.slug == "openai").unwrap();
    assert_eq!(openai.wire_format, i32::from(WireFormat::OpenaiChat));
    assert_eq!(openai.credential_ref, "OPENAI_API_KEY");
    app.stop().await;
}

#[tokio::test]
async fn upserts_validate_and_take_effect() {
    let mut app = TestApp::start(None).await;
    let version = app
        .client
        .upsert_model(pb::UpsertModelRequest {
            model: Some(model("acme/tiny")),
        })
        .await
        .unwrap()
        .into_inner()
        .version;
    let got = app
        .client
        .get_model(pb::GetModelRequest {
            id: "acme/tiny".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .model
        .unwrap();
    assert_eq!(got.canonical_slug, "acme/tiny");

    let bad_id = app
        .client
        .upsert_model(pb::UpsertModelRequest {
            model: Some(model("Acme/Tiny")),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_id.code(), Code::InvalidArgument);

    let endpoint = pb::Endpoint {
        model_id: "acme/tiny".into(),
        tag: "together/lite".into(),
        upstream_model: "acme/Tiny-Instruct".into(),
        pricing: Some(pb::Pricing {
            prompt: "0.0000001".into(),
            completion: "0.0000002".into(),
            ..Default::default()
        }),
        context_length: 4096,
        ..Default::default()
    };
    let next = app
        .client
        .upsert_endpoint(pb::UpsertEndpointRequest {
            endpoint: Some(endpoint.clone()),
        })
        .await
        .unwrap()
        .into_inner()
        .version;
    assert_eq!(next, version + 1);

    let unknown_provider = pb::Endpoint {
        tag: "nowhere".into(),
        ..endpoint.clone()
    };
    let err = app
        .client
        .upsert_endpoint(pb::UpsertEndpointRequest {
            endpoint: Some(unknown_provider),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let bad_price = pb::Endpoint {
        pricing: Some(pb::Pricing {
            prompt: "-1".into(),
            completion: "0".into(),
            ..Default::default()
        }),
        ..endpoint.clone()
    };
    let err = app
        .client
        .upsert_endpoint(pb::UpsertEndpointRequest {
            endpoint: Some(bad_price),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    let provider = pb::Provider {
        slug: "acme".into(),
        name: "Acme".into(),
        wire_format: WireFormat::AnthropicMessages.into(),
        base_url: "http://127.0.0.1:9/v1".into(),
        credential_ref: "ACME_API_KEY".into(),
        ..Default::default()
    };
    app.client
        .upsert_provider(pb::UpsertProviderRequest {
            provider: Some(provider),
        })
        .await
        .unwrap();

    let deleted = app
        .client
        .delete_endpoint(pb::DeleteEndpointRequest {
            id: "together/lite:acme/tiny".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(deleted.deleted);
    let listed = app
        .client
        .list_endpoints(pb::ListEndpointsRequest {
            model_id: "acme/tiny".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.endpoints.is_empty());
    let again = app
        .client
        .delete_endpoint(pb::DeleteEndpointRequest {
            id: "together/lite:acme/tiny".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!again.deleted);
    assert_eq!(again.version, deleted.version);
    app.stop().await;
}

#[tokio::test]
async fn watch_sends_the_snapshot_then_every_change() {
    let mut app = TestApp::start(None).await;
    let mut stream = app
        .client
        .watch_catalog(pb::WatchCatalogRequest {})
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap().snapshot.unwrap();
    assert!(first.version >= 1);
    assert!(first.models.iter().any(|m| m.id == "openai/gpt-4"));
    assert!(first.endpoints.len() >= 4);
    // The streamed snapshot converts back into checked domain values.
    switchyard_catalog::CatalogSnapshot::try_from(first.clone()).unwrap();

    let version = app
        .client
        .upsert_model(pb::UpsertModelRequest {
            model: Some(model("acme/tiny")),
        })
        .await
        .unwrap()
        .into_inner()
        .version;
    let next = stream.message().await.unwrap().unwrap().snapshot.unwrap();
    assert_eq!(next.version, version);
    assert!(next.version > first.version);
    assert!(next.models.iter().any(|m| m.id == "acme/tiny"));
    assert_eq!(next.models.len(), first.models.len() + 1);

    // Shutting down ends open watch streams instead of hanging the drain.
    app.shutdown.trigger();
    let end = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("watch stream ends on shutdown");
    assert!(end.map(|m| m.is_none()).unwrap_or(true));
    app.stop().await;
}

#[tokio::test]
async fn health_reports_serving() {
    let app = TestApp::start(None).await;
    let mut health = HealthClient::new(app.channel.clone());
    let status = health
        .check(HealthCheckRequest {
            service: SERVICE_NAME.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::Serving as i32);
    app.stop().await;
}

#[tokio::test]
async fn postgres_backed_app_seeds_and_serves() {
    let url = fresh_postgres_database().await;
    let mut app = TestApp::start(Some(url.clone())).await;
    let listed = app
        .client
        .list_endpoints(pb::ListEndpointsRequest {
            model_id: "openai/gpt-4".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.endpoints.len() >= 2);
    let version = app
        .client
        .watch_catalog(pb::WatchCatalogRequest {})
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap()
        .unwrap()
        .snapshot
        .unwrap()
        .version;
    app.stop().await;

    // A restart with the same seed runs the migrations and the seed again and changes nothing.
    let mut app = TestApp::start(Some(url)).await;
    let again = app
        .client
        .watch_catalog(pb::WatchCatalogRequest {})
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap()
        .unwrap()
        .snapshot
        .unwrap()
        .version;
    assert_eq!(again, version);
    app.stop().await;
}
