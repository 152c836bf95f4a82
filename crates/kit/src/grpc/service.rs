//! The listeners of a gRPC service: its gRPC port (with health, reflection,
//! server spans and metrics) and its `/metrics` port. Every gRPC-only
//! service binds and serves through this, so they all behave alike.

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tonic::service::Routes;

use super::{GrpcServerMetrics, bind, serve_with};
use crate::Shutdown;
use crate::metrics::Registry;

pub struct GrpcListeners {
    listener: TcpListener,
    grpc_addr: SocketAddr,
    metrics_listener: TcpListener,
    metrics_addr: SocketAddr,
    registry: Registry,
    grpc_metrics: GrpcServerMetrics,
}

impl GrpcListeners {
    /// Binds both ports (port 0 picks a free one) and registers the gRPC
    /// server metrics in `registry`, next to the service's own.
    pub async fn bind(
        grpc_addr: SocketAddr,
        metrics_addr: SocketAddr,
        registry: Registry,
    ) -> anyhow::Result<GrpcListeners> {
        let grpc_metrics = GrpcServerMetrics::register(&registry);
        let listener = bind(grpc_addr).await?;
        let grpc_addr = listener.local_addr()?;
        let (metrics_listener, metrics_addr) = crate::metrics::bind(metrics_addr).await?;
        Ok(GrpcListeners {
            listener,
            grpc_addr,
            metrics_listener,
            metrics_addr,
            registry,
            grpc_metrics,
        })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// Where `GET /metrics` is served.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    /// Serves `routes` and `/metrics` until `shutdown`, then drains.
    pub async fn serve(
        self,
        routes: Routes,
        service_names: &'static [&'static str],
        shutdown: Shutdown,
    ) -> anyhow::Result<()> {
        let metrics = tokio::spawn(crate::metrics::serve_metrics(
            self.metrics_listener,
            self.registry,
            shutdown.clone(),
        ));
        let served = serve_with(
            self.listener,
            routes,
            service_names,
            shutdown,
            Some(self.grpc_metrics),
        )
        .await;
        metrics.abort();
        served
    }
}
