//! The gRPC face: `ProviderAdapterService::Generate`. Each call gets a task
//! that drives the upstream request and feeds a bounded channel; when the
//! client drops the response stream the task sees the closed channel and
//! drops the upstream request.

use std::sync::Arc;

use switchyard_proto::provider::v1::provider_adapter_service_server::ProviderAdapterService;
use switchyard_proto::provider::v1::{GenerateRequest, GenerateResponse};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::call::UpstreamCall;
use crate::upstream::Upstream;

/// Events buffered per call before the upstream read waits for the client.
const EVENT_BUFFER: usize = 64;

pub struct GenerateService {
    pub(crate) upstream: Arc<Upstream>,
}

#[tonic::async_trait]
impl ProviderAdapterService for GenerateService {
    type GenerateStream = ReceiverStream<Result<GenerateResponse, Status>>;

    async fn generate(
        &self,
        request: Request<GenerateRequest>,
    ) -> Result<Response<Self::GenerateStream>, Status> {
        let mut request = request.into_inner();
        self.upstream.simulate_if_unconfigured(&mut request);
        let call = UpstreamCall::try_from(request).map_err(Status::from)?;
        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        let upstream = Arc::clone(&self.upstream);
        // The task outlives this handler; its span is opened here, as a
        // child of the server span, so the call stays in the caller's trace.
        tokio::spawn(upstream.run(call, tx));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
