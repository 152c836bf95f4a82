//! End to end through `App::build` on port 0 with the generated client.

use switchyard_kit::Shutdown;
use switchyard_proto::metering::v1 as pb;
use switchyard_proto::metering::v1::usage_metering_service_client::UsageMeteringServiceClient;
use switchyard_usage_metering::{App, Config, SERVICE_NAME};
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::support::{event, postgres_config, temp_data_dir};

struct TestApp {
    channel: Channel,
    shutdown: Shutdown,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TestApp {
    async fn start(config: Config) -> TestApp {
        let app = App::build(&config).await.expect("build app");
        let url = format!("http://{}", app.grpc_addr());
        let shutdown = Shutdown::new();
        let server = tokio::spawn(app.run(shutdown.clone()));
        // The listener is already bound, so connecting cannot race the server.
        let channel = Channel::from_shared(url)
            .unwrap()
            .connect()
            .await
            .expect("connect");
        TestApp {
            channel,
            shutdown,
            server,
        }
    }

    fn client(&self) -> UsageMeteringServiceClient<Channel> {
        UsageMeteringServiceClient::new(self.channel.clone())
    }

    async fn stop(self) {
        self.shutdown.trigger();
        self.server.await.unwrap().expect("server stopped cleanly");
    }
}

async fn end_to_end(config: Config) {
    let app = TestApp::start(config).await;

    let health = HealthClient::new(app.channel.clone())
        .check(HealthCheckRequest {
            service: SERVICE_NAME.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        health.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );

    let mut client = app.client();
    let created = client
        .create_key(pb::CreateKeyRequest {
            name: "e2e".into(),
            kind: pb::KeyKind::Inference.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let info = created.key.unwrap();
    assert!(created.key_text.starts_with("sk-sy-v1-"));

    let found = client
        .authenticate_key(pb::AuthenticateKeyRequest {
            key: created.key_text.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.key.as_ref(), Some(&info));
    let unknown = client
        .authenticate_key(pb::AuthenticateKeyRequest {
            key: "sk-sy-v1-unknown".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(unknown.key, None);

    let bad_name = client
        .create_key(pb::CreateKeyRequest {
            name: String::new(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_name.code(), Code::InvalidArgument);

    let usage = event("gen-e2e", &info.account_id);
    let batch = pb::RecordUsageRequest {
        events: vec![usage.clone()],
    };
    let first = client
        .record_usage(batch.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!((first.recorded, first.duplicates), (1, 0));
    let again = client.record_usage(batch).await.unwrap().into_inner();
    assert_eq!((again.recorded, again.duplicates), (0, 1));

    let bad = client
        .record_usage(pb::RecordUsageRequest {
            events: vec![event("gen-x", "")],
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);

    let generation = client
        .get_generation(pb::GetGenerationRequest {
            id: "gen-e2e".into(),
            account_id: info.account_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .generation
        .expect("visible to its account");
    assert_eq!(generation.event, Some(usage));
    assert_eq!(generation.total_cost_nanos, 1_590_000);
    let hidden = client
        .get_generation(pb::GetGenerationRequest {
            id: "gen-e2e".into(),
            account_id: "acct-someone-else".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(hidden.generation, None);

    app.stop().await;
}

#[tokio::test]
async fn grpc_end_to_end_on_postgres() {
    end_to_end(postgres_config().await).await;
}

#[tokio::test]
async fn grpc_end_to_end_embedded() {
    end_to_end(Config::embedded(temp_data_dir())).await;
}
