//! provider-adapter integration tests: provider-sim and the adapter both run
//! in-process on port 0; calls go through the generated tonic client.

mod errors;
mod estimate;
mod format_errors;
mod formats;
mod generate;
mod simulate;
mod telemetry;

use std::collections::HashMap;

use provider_sim::SimState;
use switchyard_kit::Shutdown;
use switchyard_proto::common::v1::{ChatMessage, ChatRequest};
use switchyard_proto::provider::v1::generate_response::Event;
use switchyard_proto::provider::v1::provider_adapter_service_client::ProviderAdapterServiceClient;
use switchyard_proto::provider::v1::{GenerateRequest, UpstreamTarget, WireFormat};
use switchyard_provider_adapter::{App, Config};
use tonic::Streaming;

pub type Client = ProviderAdapterServiceClient<switchyard_kit::grpc::InternalChannel>;

pub struct TestApp {
    pub client: Client,
    pub sim: SimState,
    pub sim_base_url: String,
    pub metrics_addr: std::net::SocketAddr,
    shutdown: Shutdown,
}

impl TestApp {
    pub async fn start() -> TestApp {
        TestApp::start_with(provider_sim::Config::ephemeral(), Config::ephemeral()).await
    }

    pub async fn start_with(sim_config: provider_sim::Config, config: Config) -> TestApp {
        let shutdown = Shutdown::new();
        let sim = provider_sim::App::build(sim_config)
            .await
            .expect("build sim");
        let sim_base_url = format!("http://{}/v1", sim.addr());
        let sim_state = sim.state();
        tokio::spawn(sim.run(shutdown.clone()));
        let adapter = App::build(config).await.expect("build adapter");
        let url = format!("http://{}", adapter.grpc_addr());
        let metrics_addr = adapter.metrics_addr();
        tokio::spawn(adapter.run(shutdown.clone()));
        let channel = switchyard_kit::grpc::connect_lazy(&url).expect("channel");
        TestApp {
            client: ProviderAdapterServiceClient::new(channel),
            sim: sim_state,
            sim_base_url,
            metrics_addr,
            shutdown,
        }
    }

    /// A request for `model` on the simulator.
    pub fn request(&self, model: &str, stream: bool) -> GenerateRequest {
        let mut request = TestApp::request_template(&self.sim_base_url, model);
        request.stream = stream;
        request
    }

    /// A request for `model` on the simulator, in `wire` format.
    pub fn request_in(&self, wire: WireFormat, model: &str, stream: bool) -> GenerateRequest {
        let root = self.sim_base_url.trim_end_matches("/v1");
        let base = match wire {
            WireFormat::Gemini => format!("{root}/v1beta"),
            _ => self.sim_base_url.clone(),
        };
        let mut request = TestApp::request_template(&base, model);
        let target = request.target.as_mut().expect("target");
        target.wire_format = wire as i32;
        request.stream = stream;
        request
    }

    /// A non-streaming request for `model` at the OpenAI-compatible `base_url`.
    pub fn request_template(base_url: &str, model: &str) -> GenerateRequest {
        GenerateRequest {
            target: Some(UpstreamTarget {
                provider_slug: "sim".into(),
                wire_format: WireFormat::OpenaiChat as i32,
                base_url: format!("{base_url}/"),
                upstream_model: model.into(),
                credential_ref: String::new(),
                endpoint_id: "sim/test".into(),
            }),
            request: Some(ChatRequest {
                messages: vec![ChatMessage {
                    role: "user".into(),
                    text: Some("Say hello to the switchyard.".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            stream: false,
            generation_id: "gen-test".into(),
            ..Default::default()
        }
    }

    pub async fn generate(&self, request: GenerateRequest) -> Vec<Event> {
        collect(self.open(request).await).await
    }

    /// The call's stream of events, read as the test goes.
    pub async fn open(
        &self,
        request: GenerateRequest,
    ) -> Streaming<switchyard_proto::provider::v1::GenerateResponse> {
        self.client
            .clone()
            .generate(request)
            .await
            .expect("generate")
            .into_inner()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

pub fn with_headers(mut request: GenerateRequest, headers: &[(&str, &str)]) -> GenerateRequest {
    request.upstream_headers = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect::<HashMap<_, _>>();
    request
}

pub async fn collect(
    mut stream: Streaming<switchyard_proto::provider::v1::GenerateResponse>,
) -> Vec<Event> {
    let mut events = Vec::new();
    while let Some(item) = stream.message().await.expect("stream item") {
        events.push(item.event.expect("event set"));
    }
    events
}

pub fn content(events: &[Event]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Delta(d) => d.content.clone(),
            _ => None,
        })
        .collect()
}

pub fn reasoning(events: &[Event]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Delta(d) => d.reasoning.clone(),
            _ => None,
        })
        .collect()
}

pub fn deltas(events: &[Event]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Event::Delta(_)))
        .count()
}

/// The one finish event, as `(reason, native reason)`.
pub fn finish(events: &[Event]) -> (i32, String) {
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

pub fn usage(events: &[Event]) -> switchyard_proto::common::v1::TokenUsage {
    match events.last() {
        Some(Event::Usage(usage)) => *usage,
        other => panic!("expected usage last, got {other:?} in {events:?}"),
    }
}

pub fn the_error(events: &[Event]) -> switchyard_proto::provider::v1::UpstreamError {
    match events.last() {
        Some(Event::Error(error)) => error.clone(),
        other => panic!("expected an error last, got {other:?} in {events:?}"),
    }
}
