//! How the engine reaches provider-adapter: a gRPC client when the services
//! run apart, or — in the all-in-one process — the adapter's service called
//! directly. The direct call skips what a hop inside one process does not
//! need: protobuf encoding both ways, HTTP/2-shaped bodies, and the client
//! and server spans of an RPC (the adapter's own span becomes a child of the
//! request's span instead). Everything above this module is the same either
//! way.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use switchyard_kit::grpc::{InternalChannel, MAX_MESSAGE_BYTES};
use switchyard_proto::provider::v1::provider_adapter_service_client::ProviderAdapterServiceClient;
use switchyard_proto::provider::v1::provider_adapter_service_server::ProviderAdapterService;
use switchyard_proto::provider::v1::{GenerateRequest, GenerateResponse};
use tokio_stream::Stream;
use tonic::Status;

/// The events of one `Generate` call, however it was reached.
pub type UpstreamStream = Pin<Box<dyn Stream<Item = Result<GenerateResponse, Status>> + Send>>;

type GenerateFuture<'a> = Pin<Box<dyn Future<Output = Result<UpstreamStream, Status>> + Send + 'a>>;

/// An adapter service living in this process.
pub trait LocalGenerate: Send + Sync + 'static {
    fn generate(&self, request: GenerateRequest) -> GenerateFuture<'_>;
}

impl<T: ProviderAdapterService> LocalGenerate for T {
    fn generate(&self, request: GenerateRequest) -> GenerateFuture<'_> {
        Box::pin(async move {
            let response =
                ProviderAdapterService::generate(self, tonic::Request::new(request)).await?;
            Ok(Box::pin(response.into_inner()) as UpstreamStream)
        })
    }
}

#[derive(Clone)]
pub enum AdapterClient {
    /// provider-adapter over gRPC (or any channel).
    Remote(ProviderAdapterServiceClient<InternalChannel>),
    /// provider-adapter's service in this process, called directly.
    Local(Arc<dyn LocalGenerate>),
}

impl AdapterClient {
    pub fn remote(channel: InternalChannel) -> AdapterClient {
        AdapterClient::Remote(
            ProviderAdapterServiceClient::new(channel)
                .max_encoding_message_size(MAX_MESSAGE_BYTES)
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        )
    }

    pub fn local(service: impl ProviderAdapterService) -> AdapterClient {
        AdapterClient::Local(Arc::new(service))
    }

    pub(crate) async fn generate(
        &self,
        request: GenerateRequest,
    ) -> Result<UpstreamStream, Status> {
        match self {
            AdapterClient::Remote(client) => {
                let response = client.clone().generate(request).await?;
                Ok(Box::pin(response.into_inner()))
            }
            AdapterClient::Local(service) => service.generate(request).await,
        }
    }
}

impl std::fmt::Debug for AdapterClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AdapterClient::Remote(_) => "AdapterClient::Remote",
            AdapterClient::Local(_) => "AdapterClient::Local",
        })
    }
}
