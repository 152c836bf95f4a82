//! The runnable service: a catalog plus its bound gRPC listener.

use std::net::SocketAddr;
use std::time::Duration;

use switchyard_kit::Shutdown;
use switchyard_kit::grpc::GrpcListeners;
use switchyard_kit::metrics::Registry;
use tonic::service::Routes;

use crate::{Catalog, Config, SERVICE_NAME};

/// How often the catalog re-reads the store's version to pick up writes
/// made by other replicas sharing the database.
const REFRESH_EVERY: Duration = Duration::from_secs(5);

pub struct App {
    catalog: Catalog,
    listeners: GrpcListeners,
}

impl App {
    /// Opens the catalog (storage, migrations, seed) and binds the gRPC and
    /// metrics listeners.
    pub async fn build(config: Config) -> anyhow::Result<App> {
        let catalog = Catalog::open(&config).await?;
        let registry = Registry::new();
        catalog.register_metrics(&registry);
        let listeners =
            GrpcListeners::bind(config.grpc_addr, config.metrics_addr, registry).await?;
        Ok(App { catalog, listeners })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.listeners.grpc_addr()
    }

    /// Where `GET /metrics` is served.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.listeners.metrics_addr()
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Serves until `shutdown`, then ends watch streams and drains.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        tracing::info!(
            addr = %self.grpc_addr(),
            metrics_addr = %self.metrics_addr(),
            "catalog serving gRPC"
        );
        let background = tokio::spawn(refresh_until(self.catalog.clone(), shutdown.clone()));
        let routes = Routes::new(self.catalog.grpc_server());
        let served = self
            .listeners
            .serve(routes, &[SERVICE_NAME], shutdown)
            .await;
        background.abort();
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
