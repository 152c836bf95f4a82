//! The router's in-memory catalog: a routing table rebuilt from each snapshot
//! the catalog's watch stream delivers, swapped in atomically. Requests only
//! ever read the current `Arc<RoutingTable>`; they never call the catalog.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use switchyard_kit::grpc::{InternalChannel, MAX_MESSAGE_BYTES};
use switchyard_kit::money::Rates;
use switchyard_kit::{Price, Shutdown};
use switchyard_proto::catalog::v1 as pb;
use switchyard_proto::catalog::v1::catalog_service_client::CatalogServiceClient;
use switchyard_proto::provider::v1::UpstreamTarget;
use tokio::sync::watch;
use tokio_stream::StreamExt;

/// One endpoint, resolved and ready to route to.
#[derive(Debug)]
pub struct EndpointRoute {
    pub id: String,
    pub model_id: String,
    pub tag: String,
    pub provider_slug: String,
    pub provider_name: String,
    pub target: UpstreamTarget,
    pub pricing: pb::Pricing,
    pub rates: Rates,
    pub image_price: Option<Price>,
    pub cache_read_price: Option<Price>,
    pub context_length: u32,
    pub max_completion_tokens: Option<u32>,
    pub quantization: Option<String>,
    pub supported_parameters: Vec<String>,
    pub status: i32,
    pub may_train: Option<bool>,
    pub retains_prompts: Option<bool>,
    pub zero_data_retention: Option<bool>,
}

impl EndpointRoute {
    /// An endpoint with empty fields, for tests.
    #[cfg(test)]
    pub fn test_default() -> EndpointRoute {
        EndpointRoute {
            id: String::new(),
            model_id: String::new(),
            tag: String::new(),
            provider_slug: String::new(),
            provider_name: String::new(),
            target: Default::default(),
            pricing: Default::default(),
            rates: Default::default(),
            image_price: None,
            cache_read_price: None,
            context_length: 0,
            max_completion_tokens: None,
            quantization: None,
            supported_parameters: Vec::new(),
            status: 0,
            may_train: None,
            retains_prompts: None,
            zero_data_retention: None,
        }
    }

    /// Price per token of a typical request (prompt-heavy mix), for ordering.
    pub fn blended_price(&self) -> u128 {
        self.rates.prompt.atto() * 3 + self.rates.completion.atto()
    }
}

#[derive(Debug)]
pub struct ModelEntry {
    pub model: pb::Model,
    /// Usable endpoints (status >= 0), cheapest first.
    pub endpoints: Vec<Arc<EndpointRoute>>,
}

#[derive(Debug, Default)]
pub struct RoutingTable {
    pub version: u64,
    pub models: HashMap<String, Arc<ModelEntry>>,
    pub providers: Vec<pb::Provider>,
    /// `GET /api/v1/models`, rendered once per snapshot.
    pub models_page: crate::http::models::ModelsPage,
}

impl RoutingTable {
    pub fn build(snapshot: pb::CatalogSnapshot) -> RoutingTable {
        let providers: HashMap<&str, &pb::Provider> = snapshot
            .providers
            .iter()
            .map(|p| (p.slug.as_str(), p))
            .collect();
        let mut endpoints_by_model: HashMap<&str, Vec<Arc<EndpointRoute>>> = HashMap::new();
        for endpoint in &snapshot.endpoints {
            let Some(provider) = providers.get(endpoint.provider_slug.as_str()) else {
                tracing::warn!(endpoint = %endpoint.id, "endpoint names an unknown provider; skipped");
                continue;
            };
            match resolve_endpoint(endpoint, provider) {
                Ok(route) if route.status >= 0 => endpoints_by_model
                    .entry(endpoint.model_id.as_str())
                    .or_default()
                    .push(Arc::new(route)),
                Ok(_) => {}
                Err(err) => tracing::warn!(endpoint = %endpoint.id, %err, "endpoint skipped"),
            }
        }
        let mut models = HashMap::with_capacity(snapshot.models.len());
        for model in &snapshot.models {
            let mut endpoints = endpoints_by_model
                .remove(model.id.as_str())
                .unwrap_or_default();
            endpoints.sort_by_key(|e| e.blended_price());
            models.insert(
                model.id.clone(),
                Arc::new(ModelEntry {
                    model: model.clone(),
                    endpoints,
                }),
            );
        }
        let models_page = crate::http::models::ModelsPage::build(&models);
        RoutingTable {
            version: snapshot.version,
            models,
            providers: snapshot.providers,
            models_page,
        }
    }

    pub fn model(&self, id: &str) -> Option<&Arc<ModelEntry>> {
        self.models.get(id)
    }
}

fn resolve_endpoint(e: &pb::Endpoint, p: &pb::Provider) -> anyhow::Result<EndpointRoute> {
    let pricing = e.pricing.clone().unwrap_or_default();
    let optional = |s: &Option<String>| -> anyhow::Result<Option<Price>> {
        s.as_deref()
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .transpose()
            .map_err(Into::into)
    };
    let price = |s: &str| -> anyhow::Result<Price> {
        if s.is_empty() {
            Ok(Price::ZERO)
        } else {
            Ok(s.parse()?)
        }
    };
    Ok(EndpointRoute {
        id: e.id.clone(),
        model_id: e.model_id.clone(),
        tag: e.tag.clone(),
        provider_slug: p.slug.clone(),
        provider_name: p.name.clone(),
        target: UpstreamTarget {
            provider_slug: p.slug.clone(),
            wire_format: p.wire_format,
            base_url: p.base_url.clone(),
            upstream_model: e.upstream_model.clone(),
            credential_ref: p.credential_ref.clone(),
            endpoint_id: e.id.clone(),
        },
        rates: Rates {
            prompt: price(&pricing.prompt)?,
            completion: price(&pricing.completion)?,
            request: price(pricing.request.as_deref().unwrap_or(""))?,
        },
        image_price: optional(&pricing.image)?,
        cache_read_price: optional(&pricing.input_cache_read)?,
        pricing,
        context_length: e.context_length,
        max_completion_tokens: e.max_completion_tokens,
        quantization: e.quantization.clone(),
        supported_parameters: e.supported_parameters.clone(),
        status: e.status,
        may_train: p.may_train,
        retains_prompts: p.retains_prompts,
        zero_data_retention: p.zero_data_retention,
    })
}

/// A cheap, cloneable handle on the current routing table.
#[derive(Clone)]
pub struct CatalogView {
    rx: watch::Receiver<Arc<RoutingTable>>,
}

impl CatalogView {
    /// Starts following the catalog's watch stream in the background,
    /// reconnecting with backoff until `shutdown`.
    pub fn follow(channel: InternalChannel, shutdown: Shutdown) -> CatalogView {
        let (tx, rx) = watch::channel(Arc::new(RoutingTable::default()));
        tokio::spawn(follow_loop(channel, tx, shutdown));
        CatalogView { rx }
    }

    /// A fixed table (tests, benchmarks).
    pub fn fixed(table: RoutingTable) -> CatalogView {
        let (_tx, rx) = watch::channel(Arc::new(table));
        CatalogView { rx }
    }

    pub fn current(&self) -> Arc<RoutingTable> {
        self.rx.borrow().clone()
    }

    /// Waits until the first snapshot has arrived.
    pub async fn ready(&self) -> anyhow::Result<()> {
        let mut rx = self.rx.clone();
        rx.wait_for(|t| t.version > 0)
            .await
            .map_err(|_| anyhow::anyhow!("catalog watch ended before the first snapshot"))?;
        Ok(())
    }

    pub fn is_ready(&self) -> bool {
        self.rx.borrow().version > 0
    }
}

async fn follow_loop(
    channel: InternalChannel,
    tx: watch::Sender<Arc<RoutingTable>>,
    shutdown: Shutdown,
) {
    let mut client =
        CatalogServiceClient::new(channel).max_decoding_message_size(MAX_MESSAGE_BYTES);
    let mut backoff = Duration::from_millis(100);
    while !shutdown.is_triggered() {
        let stream = tokio::select! {
            _ = shutdown.wait() => return,
            r = client.watch_catalog(pb::WatchCatalogRequest {}) => r,
        };
        match stream {
            Ok(response) => {
                let mut stream = response.into_inner();
                loop {
                    let next = tokio::select! {
                        _ = shutdown.wait() => return,
                        n = stream.next() => n,
                    };
                    match next {
                        Some(Ok(msg)) => {
                            backoff = Duration::from_millis(100);
                            if let Some(snapshot) = msg.snapshot {
                                let version = snapshot.version;
                                let table = RoutingTable::build(snapshot);
                                tracing::info!(
                                    version,
                                    models = table.models.len(),
                                    "catalog snapshot applied"
                                );
                                tx.send_replace(Arc::new(table));
                            }
                        }
                        Some(Err(status)) => {
                            tracing::warn!(%status, "catalog watch failed; reconnecting");
                            break;
                        }
                        None => {
                            tracing::warn!("catalog watch ended; reconnecting");
                            break;
                        }
                    }
                }
            }
            Err(status) => tracing::warn!(%status, "catalog unreachable; retrying"),
        }
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
