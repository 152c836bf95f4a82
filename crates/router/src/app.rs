//! Wiring: peers, background tasks, the HTTP and gRPC listeners, drain.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use switchyard_kit::Shutdown;
use switchyard_kit::grpc::{self, InternalChannel, MAX_MESSAGE_BYTES};
use switchyard_proto::metering::v1::usage_metering_service_client::UsageMeteringServiceClient;
use tokio::net::TcpListener;

use crate::auth::KeyCache;
use crate::catalog_view::CatalogView;
use crate::config::Config;
use crate::credits::Credits;
use crate::engine::{AdapterClient, Engine, Timeouts};
use crate::grpc_api::RouterGrpc;
use crate::http::{self, AppState};
use crate::metrics::RouterMetrics;
use crate::ratelimit::RateLimiter;
use crate::routing::perf::{PerfView, RedisStats};
use crate::stats::Stats;
use crate::usage::{UsageClient, UsageSink};
use switchyard_kit::grpc::GrpcServerMetrics;
use switchyard_kit::http::HttpServerMetrics;
use switchyard_kit::metrics::Registry;

/// Channels to the other services: over the network, or in-process in the
/// all-in-one binary. The router code is the same either way.
#[derive(Clone)]
pub struct Peers {
    pub catalog: InternalChannel,
    pub adapter: AdapterClient,
    pub metering: InternalChannel,
    /// Usage batches: over `metering`, or to a service in this process.
    pub usage: UsageClient,
}

impl Peers {
    pub fn connect(config: &Config) -> anyhow::Result<Peers> {
        let metering = grpc::connect_lazy(&config.metering_url)?;
        Ok(Peers {
            catalog: grpc::connect_lazy(&config.catalog_url)?,
            adapter: AdapterClient::remote(grpc::connect_lazy(&config.adapter_url)?),
            metering: metering.clone(),
            usage: UsageClient::remote(metering),
        })
    }
}

pub struct App {
    registry: Registry,
    http_metrics: HttpServerMetrics,
    grpc_metrics: GrpcServerMetrics,
    http: TcpListener,
    grpc: TcpListener,
    state: Arc<AppState>,
    grpc_service: RouterGrpc,
    stats: Stats,
    background: Shutdown,
    usage_task: tokio::task::JoinHandle<()>,
    credits: Credits,
    drain: Duration,
}

impl App {
    /// Binds both listeners (port 0 works) and starts the background tasks:
    /// the catalog watch, the stats flusher and the usage sink. Metrics go
    /// to a registry of its own, served at `/metrics` on the HTTP port.
    pub async fn build(config: Config, peers: Peers) -> anyhow::Result<App> {
        App::build_with(config, peers, Registry::new()).await
    }

    /// Like [`App::build`], with metrics in `registry` (the all-in-one
    /// process shares one registry among its services).
    pub async fn build_with(
        config: Config,
        peers: Peers,
        registry: Registry,
    ) -> anyhow::Result<App> {
        let metrics = RouterMetrics::register(&registry);
        let http = grpc::bind(config.http_addr).await?;
        let grpc_listener = grpc::bind(config.grpc_addr).await?;
        let background = Shutdown::new();
        let catalog = CatalogView::follow(peers.catalog.clone(), background.clone());
        let (stats, redis_stats) = match &config.redis_url {
            Some(url) => (
                Stats::with_redis(url, config.redis_prefix.clone(), background.clone())?,
                Some(RedisStats::new(url, config.redis_prefix.clone())?),
            ),
            None => (Stats::local(), None),
        };
        let perf = PerfView::new(stats.clone(), redis_stats);
        perf.follow(catalog.clone(), background.clone());
        let (usage, usage_task) = UsageSink::start(
            peers.usage.clone(),
            &config.data_dir,
            config.usage_journal_max_bytes,
            config.usage_batch_linger()?,
            background.clone(),
            metrics.clone(),
        )?;
        let credits = Credits::new(peers.metering.clone(), config.credit_lease_nanos()?);
        let engine = Engine::new(
            catalog,
            peers.adapter.clone(),
            stats.clone(),
            perf,
            (usage, credits.clone()),
            Timeouts {
                first_token: Duration::from_millis(config.first_token_timeout_ms as u64),
                reasoning_first_token: Duration::from_millis(
                    config.reasoning_first_token_timeout_ms as u64,
                ),
                total: Duration::from_secs(config.request_timeout_secs),
            },
            metrics,
        );
        let keys = KeyCache::new(peers.metering.clone());
        let metering = UsageMeteringServiceClient::new(peers.metering.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
        let limiter = RateLimiter::new(
            config
                .redis_url
                .as_deref()
                .map(|url| (url, config.redis_prefix.as_str())),
            config.default_rate_limit_rpm,
            config.replicas,
        )?;
        let state = Arc::new(AppState {
            engine: engine.clone(),
            keys: keys.clone(),
            limiter: limiter.clone(),
            default_rate_limit_rpm: config.default_rate_limit_rpm,
            pages: Default::default(),
            metering,
            max_body_bytes: config.max_body_bytes,
            keepalive: config.keepalive(),
        });
        Ok(App {
            http_metrics: HttpServerMetrics::register(&registry),
            grpc_metrics: GrpcServerMetrics::register(&registry),
            registry,
            http,
            grpc: grpc_listener,
            state,
            grpc_service: RouterGrpc::new(engine, keys, limiter),
            stats,
            background,
            usage_task,
            credits,
            drain: Duration::from_secs(config.drain_secs),
        })
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http.local_addr().expect("bound listener")
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc.local_addr().expect("bound listener")
    }

    pub fn stats(&self) -> Stats {
        self.stats.clone()
    }

    /// Resolves once the first catalog snapshot is in.
    pub async fn ready(&self) -> anyhow::Result<()> {
        self.ready_signal().await
    }

    /// Like [`App::ready`], but independent of `self`, so it can be awaited
    /// while the app runs.
    pub fn ready_signal(&self) -> impl Future<Output = anyhow::Result<()>> + Send + 'static {
        let catalog = self.state.engine.catalog().clone();
        async move { catalog.ready().await }
    }

    /// Serves until `shutdown`, then drains in-flight requests (bounded by
    /// the drain window), flushes stats and delivers or spools usage.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let router = http::router(self.state.clone())
            .layer(axum::middleware::from_fn_with_state(
                self.http_metrics,
                switchyard_kit::http::observe,
            ))
            .merge(switchyard_kit::metrics::routes(self.registry));
        let http_shutdown = shutdown.clone();
        let http = axum::serve(switchyard_kit::http::nodelay(self.http), router)
            .with_graceful_shutdown(async move { http_shutdown.wait().await });
        let routes = tonic::service::Routes::new(self.grpc_service.into_server());
        let grpc = grpc::serve_with(
            self.grpc,
            routes,
            &["switchyard.router.v1.RouterService"],
            shutdown.clone(),
            Some(self.grpc_metrics),
        );
        let serve = async {
            let (h, g) = tokio::join!(http, grpc);
            h?;
            g
        };
        tokio::pin!(serve);
        tokio::select! {
            result = &mut serve => result?,
            _ = async { shutdown.wait().await; tokio::time::sleep(self.drain).await } => {
                tracing::warn!("drain window elapsed; closing remaining connections");
            }
        }
        // Streams that outlived the connections still settle their usage
        // before the usage sink flushes and stops.
        self.state.engine.drain(Duration::from_secs(5)).await;
        self.background.trigger();
        let _ = self.usage_task.await;
        // Usage is delivered (or journaled): give the credit leases back.
        self.credits.release_all().await;
        Ok(())
    }
}
