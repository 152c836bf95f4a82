//! The runnable service: a catalog plus its bound gRPC listener.

use std::net::SocketAddr;
use std::time::Duration;

use switchyard_kit::Shutdown;
use switchyard_kit::grpc::GrpcServerMetrics;
use switchyard_kit::metrics::Registry;
use tokio::net::TcpListener;
use tonic::service::Routes;

use crate::{Catalog, Config, SERVICE_NAME};

/// How often the catalog re-reads the store's version to pick up writes
/// made by other replicas sharing the database.
const REFRESH_EVERY: Duration = Duration::from_secs(5);

pub struct App {
    catalog: Catalog,
    listener: TcpListener,
    grpc_addr: SocketAddr,
    metrics_listener: TcpListener,
    metrics_addr: SocketAddr,
    registry: Registry,
    grpc_metrics: GrpcServerMetrics,
}

impl App {
    /// Opens the catalog (storage, migrations, seed) and binds the gRPC and
    /// metrics listeners.
    pub async fn build(config: Config) -> anyhow::Result<App> {
        let catalog = Catalog::open(&config).await?;
        let registry = Registry::new();
        catalog.register_metrics(&registry);
        let grpc_metrics = GrpcServerMetrics::register(&registry);
        let listener = switchyard_kit::grpc::bind(config.grpc_addr).await?;
        let grpc_addr = listener.local_addr()?;
        let (metrics_listener, metrics_addr) =
            switchyard_kit::metrics::bind(config.metrics_addr).await?;
        Ok(App {
            catalog,
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

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Serves until `shutdown`, then ends watch streams and drains.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        tracing::info!(
            addr = %self.grpc_addr,
            metrics_addr = %self.metrics_addr,
            "catalog serving gRPC"
        );
        let background = tokio::spawn(refresh_until(self.catalog.clone(), shutdown.clone()));
        let metrics = tokio::spawn(switchyard_kit::metrics::serve_metrics(
            self.metrics_listener,
            self.registry,
            shutdown.clone(),
        ));
        let routes = Routes::new(self.catalog.grpc_server());
        let served = switchyard_kit::grpc::serve_with(
            self.listener,
            routes,
            &[SERVICE_NAME],
            shutdown,
            Some(self.grpc_metrics),
        )
        .await;
        background.abort();
        metrics.abort();
        served
    }
}

async fn refresh_until(catalog: Catalog, shutdown: Shutdown) {
    let mut tick = tokio::time::interval(REFRESH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.wait() => break,
            _ = tick.tick() => {
                if let Err(err) = catalog.refresh().await {
                    tracing::warn!(error = %switchyard_kit::error::format_chain(&err), "catalog refresh failed");
                }
            }
        }
    }
    catalog.close_watchers();
}
