//! The runnable service: a bound gRPC listener in front of [`Metering`].

use std::net::SocketAddr;

use switchyard_kit::Shutdown;
use switchyard_kit::grpc::GrpcServerMetrics;
use switchyard_kit::metrics::Registry;
use switchyard_proto::metering::v1::usage_metering_service_server::SERVICE_NAME;
use tokio::net::TcpListener;
use tonic::service::Routes;

use crate::config::Config;
use crate::service::Metering;

pub struct App {
    listener: TcpListener,
    grpc_addr: SocketAddr,
    metrics_listener: TcpListener,
    metrics_addr: SocketAddr,
    registry: Registry,
    grpc_metrics: GrpcServerMetrics,
    metering: Metering,
}

impl App {
    /// Opens storage and binds the gRPC and metrics listeners; port 0 picks
    /// a free port.
    pub async fn build(config: &Config) -> anyhow::Result<App> {
        let metering = Metering::open(config).await?;
        let registry = Registry::new();
        metering.register_metrics(&registry);
        let grpc_metrics = GrpcServerMetrics::register(&registry);
        let listener = switchyard_kit::grpc::bind(config.grpc_addr).await?;
        let grpc_addr = listener.local_addr()?;
        let (metrics_listener, metrics_addr) =
            switchyard_kit::metrics::bind(config.metrics_addr).await?;
        Ok(App {
            listener,
            grpc_addr,
            metrics_listener,
            metrics_addr,
            registry,
            grpc_metrics,
            metering,
        })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// Where `GET /metrics` is served.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    pub fn metering(&self) -> &Metering {
        &self.metering
    }

    /// Serves until `shutdown`, then drains in-flight calls.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        tracing::info!(
            addr = %self.grpc_addr,
            metrics_addr = %self.metrics_addr,
            "usage-metering listening"
        );
        let metrics = tokio::spawn(switchyard_kit::metrics::serve_metrics(
            self.metrics_listener,
            self.registry,
            shutdown.clone(),
        ));
        let routes = Routes::new(self.metering.grpc_server());
        let served = switchyard_kit::grpc::serve_with(
            self.listener,
            routes,
            &[SERVICE_NAME],
            shutdown,
            Some(self.grpc_metrics),
        )
        .await;
        metrics.abort();
        served
    }
}
