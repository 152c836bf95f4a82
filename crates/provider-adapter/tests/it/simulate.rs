//! Demo mode: providers without a configured credential are answered by the
//! simulator; providers with one are called for real.

use std::collections::HashMap;

use crate::{TestApp, collect};
use switchyard_kit::Shutdown;
use switchyard_proto::provider::v1::generate_response::Event;
use switchyard_proto::provider::v1::provider_adapter_service_client::ProviderAdapterServiceClient;
use switchyard_proto::provider::v1::{UpstreamErrorKind, WireFormat};
use switchyard_provider_adapter::{App, Config};

#[tokio::test]
async fn unconfigured_providers_go_to_the_simulator() {
    let shutdown = Shutdown::new();
    let sim = provider_sim::App::build(provider_sim::Config::ephemeral())
        .await
        .unwrap();
    let sim_url = format!("http://{}/v1", sim.addr());
    let sim_state = sim.state();
    tokio::spawn(sim.run(shutdown.clone()));
    let mut config = Config::ephemeral();
    config.simulate_without_credentials = Some(sim_url.clone());
    // A configured credential for a provider nobody listens for.
    config.credentials =
        HashMap::from([("CONFIGURED_KEY".to_owned(), "sk-real".to_owned().into())]);
    let adapter = App::build(config).await.unwrap();
    let channel =
        switchyard_kit::grpc::connect_lazy(&format!("http://{}", adapter.grpc_addr())).unwrap();
    tokio::spawn(adapter.run(shutdown.clone()));
    let client = ProviderAdapterServiceClient::new(channel);

    // An Anthropic-format provider with no key: answered by the simulator.
    let base = TestApp::request_template(&sim_url, "claude-3-5-sonnet");
    let mut request = base.clone();
    let target = request.target.as_mut().unwrap();
    target.wire_format = WireFormat::AnthropicMessages as i32;
    target.base_url = "https://api.anthropic.invalid/v1".into();
    target.credential_ref = "UNSET_PROVIDER_KEY_FOR_TEST".into();
    let events = collect(client.clone().generate(request).await.unwrap().into_inner()).await;
    assert!(
        events.iter().any(|e| matches!(e, Event::Finish(_))),
        "{events:?}"
    );
    assert_eq!(sim_state.stats().models["claude-3-5-sonnet"].successful, 1);

    // A provider whose key is configured is called for real (and here fails
    // to connect), never silently simulated.
    let mut request = base;
    let target = request.target.as_mut().unwrap();
    target.base_url = "http://127.0.0.1:1/v1".into();
    target.credential_ref = "CONFIGURED_KEY".into();
    let events = collect(client.clone().generate(request).await.unwrap().into_inner()).await;
    match events.last() {
        Some(Event::Error(e)) => assert_eq!(e.kind, UpstreamErrorKind::BadResponse as i32),
        other => panic!("expected a connect failure, got {other:?}"),
    }
    shutdown.trigger();
}
