//! The all-in-one process: the four services in one process, wired through
//! in-process gRPC channels (the same generated clients the separate
//! deployment uses, minus the sockets), embedded storage in a local data
//! directory unless Postgres/Redis URLs are given, the seed catalog, and a
//! built-in simulated provider that answers for every provider whose API
//! key is not configured.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use switchyard_kit::Shutdown;
use switchyard_kit::grpc::in_process_with;
use switchyard_kit::telemetry::LogFormat;
use switchyard_usage_metering::{KeyKind, Metering};

pub mod health;

/// The catalog seed shipped with Switchyard (`deploy/catalog.toml`).
pub const BUILTIN_SEED: &str = include_str!("../../../deploy/catalog.toml");

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Public HTTP API listen address.
    #[arg(long, env = "SWITCHYARD_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
    /// Public gRPC API listen address.
    #[arg(
        long,
        env = "SWITCHYARD_ROUTER_GRPC_ADDR",
        default_value = "127.0.0.1:50051"
    )]
    pub grpc_addr: SocketAddr,
    /// Directory for embedded storage, the usage spool and the dev key.
    #[arg(long, env = "SWITCHYARD_DATA_DIR", default_value = "./switchyard-data")]
    pub data_dir: PathBuf,
    /// Postgres URL for catalog and metering; embedded storage when unset.
    #[arg(long, env = "SWITCHYARD_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Redis URL for shared endpoint stats; in-process stats when unset.
    #[arg(long, env = "SWITCHYARD_REDIS_URL")]
    pub redis_url: Option<String>,
    /// Prefix of every Redis key written.
    #[arg(long, env = "SWITCHYARD_REDIS_PREFIX", default_value = "switchyard")]
    pub redis_prefix: String,
    /// The development API key to accept (created if new). When unset, one
    /// is generated once and kept in the data directory.
    #[arg(long, env = "SWITCHYARD_DEV_KEY", hide_env_values = true)]
    pub dev_key: Option<String>,
    /// Secret mixed into stored key hashes (see usage-metering).
    #[arg(long, env = "SWITCHYARD_KEY_PEPPER", hide_env_values = true)]
    pub key_pepper: Option<String>,
    /// Catalog seed file; the built-in deploy/catalog.toml when unset.
    #[arg(long, env = "SWITCHYARD_CATALOG_SEED")]
    pub seed: Option<PathBuf>,
    /// Do not start the built-in simulated provider; providers without an
    /// API key then fail instead of being simulated.
    #[arg(long, env = "SWITCHYARD_NO_SIMULATOR", value_parser = clap::builder::FalseyValueParser::new())]
    pub no_simulator: bool,
    /// Log line format: text or json.
    #[arg(long, env = "SWITCHYARD_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
    /// OTLP/gRPC collector for traces (e.g. http://127.0.0.1:4317).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

impl ServeArgs {
    pub fn telemetry(&self) -> switchyard_kit::telemetry::TelemetryConfig {
        switchyard_kit::telemetry::TelemetryConfig {
            service_name: "switchyard".to_owned(),
            log_format: self.log_format,
            otlp_endpoint: self.otlp_endpoint.clone(),
        }
    }
}

/// A running all-in-one Switchyard.
pub struct AllInOne {
    router: switchyard_router::App,
    sim: Option<provider_sim::App>,
    catalog: switchyard_catalog::Catalog,
    pub dev_key: String,
    /// Manages the development account's keys (`/api/v1/keys`, `/credits`).
    pub dev_management_key: String,
}

impl AllInOne {
    pub async fn build(args: ServeArgs) -> anyhow::Result<AllInOne> {
        std::fs::create_dir_all(&args.data_dir)
            .with_context(|| format!("creating data directory {}", args.data_dir.display()))?;

        let sim = if args.no_simulator {
            None
        } else {
            let mut config = provider_sim::Config::ephemeral();
            config.models = vec!["any-model".into()];
            Some(provider_sim::App::build(config).await?)
        };

        let catalog_config = switchyard_catalog::Config {
            database_url: args.database_url.clone().map(Into::into),
            data_dir: args.data_dir.clone(),
            seed: args.seed.clone(),
            log_format: args.log_format,
            ..Default::default()
        };
        let catalog = switchyard_catalog::Catalog::open(&catalog_config).await?;
        if args.seed.is_none() {
            let seed = switchyard_catalog::seed::parse(BUILTIN_SEED)?;
            catalog.apply_seed(&seed).await?;
        }

        let mut metering_config = switchyard_usage_metering::Config::embedded(&args.data_dir);
        metering_config.database_url = args.database_url.clone();
        metering_config.key_pepper = args.key_pepper.clone().map(Into::into);
        let metering = Metering::open(&metering_config).await?;
        let dev_key = ensure_dev_key(&metering, args.dev_key.as_deref(), &args.data_dir).await?;
        let dev_management_key =
            ensure_dev_management_key(&metering, &dev_key, &args.data_dir).await?;

        let mut adapter_config = switchyard_provider_adapter::Config::ephemeral();
        adapter_config.simulate_without_credentials =
            sim.as_ref().map(|s| format!("http://{}/v1", s.addr()));
        let adapter = switchyard_provider_adapter::Adapter::new(&adapter_config)?;

        // One registry: the router's /metrics shows every service.
        let registry = switchyard_kit::metrics::Registry::new();
        catalog.register_metrics(&registry);
        metering.register_metrics(&registry);
        adapter.register_metrics(&registry);
        let grpc_metrics = switchyard_kit::grpc::GrpcServerMetrics::register(&registry);
        let peers = switchyard_router::Peers {
            catalog: in_process_with(catalog.grpc_server(), Some(grpc_metrics.clone())),
            // Called directly: no codec, no RPC spans on the hot path.
            adapter: switchyard_router::engine::AdapterClient::local(adapter.generate_service()),
            metering: in_process_with(metering.grpc_server(), Some(grpc_metrics)),
            // Usage batches skip the codec too; everything else metering
            // serves goes through the in-process channel.
            usage: switchyard_router::usage::UsageClient::local(metering.clone()),
        };
        let mut router_config = switchyard_router::Config::local(args.data_dir.join("router"));
        router_config.http_addr = args.http_addr;
        router_config.grpc_addr = args.grpc_addr;
        router_config.redis_url = args.redis_url.clone();
        router_config.redis_prefix = args.redis_prefix.clone();
        router_config.log_format = args.log_format;
        let router = switchyard_router::App::build_with(router_config, peers, registry).await?;
        router.ready().await?;
        Ok(AllInOne {
            router,
            sim,
            catalog,
            dev_key,
            dev_management_key,
        })
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.router.http_addr()
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.router.grpc_addr()
    }

    pub fn simulating(&self) -> bool {
        self.sim.is_some()
    }

    /// Serves until `shutdown`, then drains.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let sim_shutdown = Shutdown::new();
        let sim = self
            .sim
            .map(|sim| tokio::spawn(sim.run(sim_shutdown.clone())));
        let catalog = self.catalog.clone();
        let closing = shutdown.clone();
        tokio::spawn(async move {
            closing.wait().await;
            catalog.close_watchers();
        });
        let result = self.router.run(shutdown).await;
        // The simulator outlives the router's drain: it is the upstream.
        sim_shutdown.trigger();
        if let Some(sim) = sim {
            sim.await??;
        }
        result
    }
}

/// The configured dev key, else the one kept in the data directory, else a
/// new one (written there, readable by the owner only).
async fn ensure_dev_key(
    metering: &Metering,
    configured: Option<&str>,
    data_dir: &Path,
) -> anyhow::Result<String> {
    let path = data_dir.join("dev-key");
    let existing = match configured {
        Some(key) => Some(key.trim().to_owned()),
        None => std::fs::read_to_string(&path)
            .ok()
            .map(|k| k.trim().to_owned()),
    };
    match existing.filter(|k| !k.is_empty()) {
        Some(key) => {
            metering
                .ensure_key(
                    "development",
                    KeyKind::Inference,
                    Some(&key),
                    switchyard_usage_metering::ledger::Billing::Postpaid,
                )
                .await?;
            Ok(key)
        }
        None => {
            let created = metering
                .ensure_key(
                    "development",
                    KeyKind::Inference,
                    None,
                    switchyard_usage_metering::ledger::Billing::Postpaid,
                )
                .await?;
            write_private(&path, &created.key_text)?;
            Ok(created.key_text)
        }
    }
}

/// A management key on the development key's account, kept in the data
/// directory like the dev key, so the management API works out of the box.
async fn ensure_dev_management_key(
    metering: &Metering,
    dev_key: &str,
    data_dir: &Path,
) -> anyhow::Result<String> {
    let path = data_dir.join("dev-management-key");
    let account = metering
        .authenticate(dev_key)
        .await?
        .context("the development key was just created")?
        .account_id;
    let existing = std::fs::read_to_string(&path)
        .ok()
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty());
    let new = switchyard_usage_metering::keys::NewKey::parse(
        "development (management)",
        KeyKind::Management,
        &account,
        existing.as_deref(),
    )?;
    let created = metering.create_key(new).await?;
    if existing.is_none() {
        write_private(&path, &created.key_text)?;
    }
    Ok(created.key_text)
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}
