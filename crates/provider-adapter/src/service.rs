//! The gRPC face: `ProviderAdapterService::Generate`. Each call gets a task
//! that drives the upstream request and feeds a bounded channel; when the
//! client drops the response stream the task sees the closed channel and
//! drops the upstream request.
//!
//! The handler answers once the call's first event is in hand, not at once:
//! the response headers then leave in the same write as the first message
//! (for a non-streamed upstream answer, in the same write as all of it).
//! Answering at once sent the headers alone, which woke the router for a
//! 12-byte read on every call. The router's first-token deadline covers the
//! wait, as it covers the first message.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use switchyard_proto::provider::v1::provider_adapter_service_server::ProviderAdapterService;
use switchyard_proto::provider::v1::{GenerateRequest, GenerateResponse};
use tokio::sync::mpsc;
use tokio_stream::Stream;
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
    type GenerateStream = Events;

    async fn generate(
        &self,
        request: Request<GenerateRequest>,
    ) -> Result<Response<Self::GenerateStream>, Status> {
        let mut request = request.into_inner();
        self.upstream.simulate_if_unconfigured(&mut request);
        let call = UpstreamCall::try_from(request).map_err(Status::from)?;
        let (tx, mut rx) = mpsc::channel(EVENT_BUFFER);
        let upstream = Arc::clone(&self.upstream);
        // The task outlives this handler; its span is opened here, as a
        // child of the server span, so the call stays in the caller's trace.
        tokio::spawn(upstream.run(call, tx));
        // The task always sends at least one event (a terminal error if
        // nothing else); an empty stream still reads as "closed early".
        let first = rx.recv().await;
        Ok(Response::new(Events { first, rest: rx }))
    }
}

/// A call's events: the first one, already received, then the rest.
pub struct Events {
    first: Option<Result<GenerateResponse, Status>>,
    rest: mpsc::Receiver<Result<GenerateResponse, Status>>,
}

impl Stream for Events {
    type Item = Result<GenerateResponse, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.first.take() {
            Some(first) => Poll::Ready(Some(first)),
            None => self.rest.poll_recv(cx),
        }
    }
}
