//! The runnable service: a bound gRPC listener in front of [`Metering`].

use std::net::SocketAddr;

use switchyard_kit::Shutdown;
use switchyard_kit::grpc::GrpcListeners;
use switchyard_kit::metrics::Registry;
use switchyard_proto::metering::v1::usage_metering_service_server::SERVICE_NAME;
use tonic::service::Routes;

use crate::config::Config;
use crate::service::Metering;

pub struct App {
    metering: Metering,
    listeners: GrpcListeners,
}

impl App {
    /// Opens storage and binds the gRPC and metrics listeners; port 0 picks
    /// a free port.
    pub async fn build(config: &Config) -> anyhow::Result<App> {
        let metering = Metering::open(config).await?;
        let registry = Registry::new();
        metering.register_metrics(&registry);
        let listeners =
            GrpcListeners::bind(config.grpc_addr, config.metrics_addr, registry).await?;
        Ok(App {
            metering,
            listeners,
        })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.listeners.grpc_addr()
    }

    /// Where `GET /metrics` is served.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.listeners.metrics_addr()
    }

    pub fn metering(&self) -> &Metering {
        &self.metering
    }

    /// Serves until `shutdown`, then drains in-flight calls.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        tracing::info!(
            addr = %self.grpc_addr(),
            metrics_addr = %self.metrics_addr(),
            "usage-metering listening"
        );
        self.metering.start_sweeper(shutdown.clone());
        let routes = Routes::new(self.metering.grpc_server());
        self.listeners
            .serve(routes, &[SERVICE_NAME], shutdown)
            .await
    }
}
