//! Serving and calling gRPC the same way everywhere.
//!
//! Every server gets `grpc.health.v1` and reflection. Every internal client
//! talks through an [`InternalChannel`], which is either a real network
//! channel or a server's tower service called in-process — the all-in-one
//! process uses the latter and skips the socket, with the same generated
//! clients and the same code path.
//!
//! Both paths are traced the same way: every client call opens a client
//! span and sends its W3C context in the metadata ([`TracedChannel`]); every
//! server call opens a server span that continues it and, given a
//! [`GrpcServerMetrics`], counts and times the call ([`ServerLayer`]). A handler
//! needs nothing more: its events and child spans land inside the server
//! span. Work it hands to `tokio::spawn` must carry the span along with
//! `.instrument(tracing::Span::current())`.

mod client;
mod coalesce;
mod server;
mod service;

pub use client::TracedChannel;
pub use coalesce::Coalesce;
pub use server::{GrpcServerMetrics, ServerLayer, ServerService, code_name};
pub use service::GrpcListeners;

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::body::Body;
use tonic::service::Routes;
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;

use crate::Shutdown;

/// Largest gRPC message any Switchyard service accepts or sends: large
/// prompts (base64 images) must cross the router -> adapter hop.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// A channel to another Switchyard service: network or in-process.
pub type InternalChannel =
    BoxCloneSyncService<http::Request<Body>, http::Response<Body>, ChannelError>;

/// Transport failure of an [`InternalChannel`]. A concrete type (rather than
/// a boxed `dyn Error`) keeps futures that use the channel `Send` for spawn.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ChannelError(#[from] tonic::transport::Error);

/// A lazily connecting network channel; the first call dials. Its
/// connections write each call's frames together ([`Coalesce`]).
pub fn connect_lazy(url: &str) -> anyhow::Result<InternalChannel> {
    use hyper_util::rt::TokioIo;

    let endpoint = tonic::transport::Endpoint::from_shared(url.to_owned())?
        .connect_timeout(std::time::Duration::from_secs(5))
        .http2_keep_alive_interval(std::time::Duration::from_secs(30))
        .keep_alive_while_idle(true);
    // What tonic's own connector does for a plain-TCP endpoint, plus Coalesce.
    let mut tcp = hyper_util::client::legacy::connect::HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    let connector = tcp.map_response(|io: TokioIo<tokio::net::TcpStream>| {
        TokioIo::new(Coalesce::new(io.into_inner()))
    });
    let channel = endpoint.connect_with_connector_lazy(connector);
    Ok(BoxCloneSyncService::new(TracedChannel::new(
        channel.map_err(ChannelError),
    )))
}

/// Calls a generated server (e.g. `CatalogServiceServer<_>`) in-process.
pub fn in_process<S>(server: S) -> InternalChannel
where
    S: tower::Service<
            http::Request<Body>,
            Response = http::Response<Body>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    in_process_with(server, None)
}

/// [`in_process`], with the server's calls counted in `metrics` — the
/// all-in-one process passes one [`GrpcServerMetrics`] for all its peers.
pub fn in_process_with<S>(server: S, metrics: Option<GrpcServerMetrics>) -> InternalChannel
where
    S: tower::Service<
            http::Request<Body>,
            Response = http::Response<Body>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let server = tower::Layer::layer(&ServerLayer::new(metrics), server);
    BoxCloneSyncService::new(TracedChannel::new(
        server.map_err(|never: std::convert::Infallible| match never {}),
    ))
}

/// Accepted connections with Nagle's algorithm off (tonic's own
/// `tcp_nodelay` applies only to sockets it accepts itself; without this,
/// small gRPC frames wait out the peer's ~40 ms delayed ACK), whose writes
/// are gathered per scheduler pass ([`Coalesce`]): a streamed answer whose
/// messages are ready together leaves in one write, not one per message.
fn nodelay_incoming(
    listener: TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<Coalesce<tokio::net::TcpStream>>> {
    use tokio_stream::StreamExt;
    TcpListenerStream::new(listener).map(|accepted| {
        accepted.map(|stream| {
            let _ = stream.set_nodelay(true);
            Coalesce::new(stream)
        })
    })
}

/// Binds a TCP listener; port 0 picks a free port.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))
}

/// Serves `routes` plus health and reflection until `shutdown`; on shutdown
/// the health status flips to NOT_SERVING first, then in-flight calls drain.
/// Every call is traced; see [`serve_with`] for metrics.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    service_names: &'static [&'static str],
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    serve_with(listener, routes, service_names, shutdown, None).await
}

/// [`serve`], with every call counted and timed in `metrics`.
pub async fn serve_with(
    listener: TcpListener,
    routes: Routes,
    service_names: &'static [&'static str],
    shutdown: Shutdown,
    metrics: Option<GrpcServerMetrics>,
) -> anyhow::Result<()> {
    let (reporter, health) = tonic_health::server::health_reporter();
    for name in service_names {
        reporter
            .set_service_status(*name, tonic_health::ServingStatus::Serving)
            .await;
    }
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(switchyard_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let drain = {
        let shutdown = shutdown.clone();
        async move {
            shutdown.wait().await;
            for name in service_names {
                reporter
                    .set_service_status(*name, tonic_health::ServingStatus::NotServing)
                    .await;
            }
            reporter
                .set_service_status("", tonic_health::ServingStatus::NotServing)
                .await;
        }
    };
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .layer(ServerLayer::new(metrics))
        .add_routes(routes)
        .add_service(health)
        .add_service(reflection)
        .serve_with_incoming_shutdown(nodelay_incoming(listener), drain)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests;
