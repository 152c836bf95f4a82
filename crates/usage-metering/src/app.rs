//! The runnable service: a bound gRPC listener in front of [`Metering`].

use std::net::SocketAddr;

use switchyard_kit::Shutdown;
use switchyard_proto::metering::v1::usage_metering_service_server::SERVICE_NAME;
use tokio::net::TcpListener;
use tonic::service::Routes;

use crate::config::Config;
use crate::service::Metering;

pub struct App {
    listener: TcpListener,
    grpc_addr: SocketAddr,
    metering: Metering,
}

impl App {
    /// Opens storage and binds the listener; port 0 picks a free port.
    pub async fn build(config: &Config) -> anyhow::Result<App> {
        let metering = Metering::open(config).await?;
        let listener = switchyard_kit::grpc::bind(config.grpc_addr).await?;
        let grpc_addr = listener.local_addr()?;
        Ok(App {
            listener,
            grpc_addr,
            metering,
        })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    pub fn metering(&self) -> &Metering {
        &self.metering
    }

    /// Serves until `shutdown`, then drains in-flight calls.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        tracing::info!(addr = %self.grpc_addr, "usage-metering listening");
        let routes = Routes::new(self.metering.grpc_server());
        switchyard_kit::grpc::serve(self.listener, routes, &[SERVICE_NAME], shutdown).await
    }
}
