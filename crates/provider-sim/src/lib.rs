//! provider-sim: a deterministic LLM provider speaking three wire formats
//! (OpenAI Chat Completions, Anthropic Messages, Google Gemini) with
//! controllable faults (latency, failures, 429s, hangs, cut streams, safety
//! blocks) and exact token counts, for tests, demos and benchmarks. Nothing
//! in production depends on it.

mod admin;
mod anthropic;
mod gemini;
mod knobs;
mod openai;
mod plan;
mod serve;
mod state;
mod text;

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::Router;
use axum::routing::{get, post, put};
use switchyard_kit::Shutdown;
use tokio::net::TcpListener;

pub use knobs::{DEFAULT_COMPLETION_TOKENS, Knobs};
pub use state::{ANY_MODEL, ModelStats, SimState, StatsSnapshot};

#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "PROVIDER_SIM_ADDR", default_value = "127.0.0.1:9090")]
    pub addr: SocketAddr,
    /// JSON or TOML (by extension) map of model -> knobs applied at startup;
    /// the model "*" applies to every model.
    #[arg(long, env = "PROVIDER_SIM_BEHAVIOUR_FILE")]
    pub behaviour_file: Option<PathBuf>,
    /// When set, every provider route requires it: `Authorization: Bearer`
    /// (OpenAI), `x-api-key` (Anthropic), `x-goog-api-key` or `?key=` (Gemini).
    #[arg(long, env = "PROVIDER_SIM_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Models listed by `GET /v1/models` and `GET /v1beta/models` (any model
    /// name is served).
    #[arg(
        long,
        env = "PROVIDER_SIM_MODELS",
        value_delimiter = ',',
        default_value = "sim-small,sim-large"
    )]
    pub models: Vec<String>,
}

impl Config {
    /// Loopback on a free port, no file, no key: what tests want.
    pub fn ephemeral() -> Config {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            behaviour_file: None,
            api_key: None,
            models: vec!["sim-small".to_owned(), "sim-large".to_owned()],
        }
    }
}

/// The simulator's HTTP routes, for mounting in another server.
pub fn router(state: SimState) -> Router {
    let openai = Router::new()
        .route("/chat/completions", post(openai::chat_completions))
        .route("/models", get(admin::list_models))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            openai::require_key,
        ));
    let anthropic = Router::new()
        .route("/messages", post(anthropic::messages))
        .route("/messages/count_tokens", post(anthropic::count_tokens))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            anthropic::require_key,
        ));
    let gemini = Router::new()
        .route("/models", get(gemini::list_models))
        .route("/models/{target}", post(gemini::models_action))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            gemini::require_key,
        ));
    Router::new()
        .nest("/v1", openai.merge(anthropic))
        .nest("/v1beta", gemini)
        .route("/healthz", get(admin::healthz))
        .route(
            "/sim/models/{model}",
            put(admin::put_model_knobs)
                .get(admin::get_model_knobs)
                .delete(admin::delete_model_knobs),
        )
        .route("/sim/stats", get(admin::stats))
        .route("/sim/reset", post(admin::reset))
        .with_state(state)
}

pub struct App {
    listener: TcpListener,
    addr: SocketAddr,
    state: SimState,
}

impl App {
    /// Loads the behaviour file and binds the listener.
    pub async fn build(config: Config) -> anyhow::Result<App> {
        let state = SimState::from_config(&config)?;
        let listener = switchyard_kit::grpc::bind(config.addr).await?;
        let addr = listener.local_addr()?;
        Ok(App {
            listener,
            addr,
            state,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn state(&self) -> SimState {
        self.state.clone()
    }

    /// Serves until `shutdown`, then releases hanging requests and drains.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let state = self.state.clone();
        let drain = async move {
            shutdown.wait().await;
            state.release_hangs();
        };
        axum::serve(
            switchyard_kit::http::nodelay(self.listener),
            router(self.state),
        )
        .with_graceful_shutdown(drain)
        .await?;
        Ok(())
    }
}
