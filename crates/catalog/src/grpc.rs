//! `switchyard.catalog.v1.CatalogService` over the catalog core: protos in,
//! domain values through, statuses out.

use std::pin::Pin;

use futures_util::{Stream, StreamExt};
use switchyard_kit::grpc::MAX_MESSAGE_BYTES;
use switchyard_proto::catalog::v1 as pb;
use switchyard_proto::catalog::v1::catalog_service_server::{CatalogService, CatalogServiceServer};
use tokio_stream::wrappers::WatchStream;
use tonic::{Request, Response, Status};

use crate::catalog::Catalog;
use crate::domain::{Endpoint, Model, Provider};
use crate::error::CatalogError;
use crate::rules::invalid;

/// The full gRPC service name, for health reporting.
pub const SERVICE_NAME: &str = "switchyard.catalog.v1.CatalogService";

/// The gRPC face of a [`Catalog`].
#[derive(Debug, Clone)]
pub struct CatalogGrpc {
    catalog: Catalog,
}

impl Catalog {
    /// The generated server, ready to add to a tonic router or to call
    /// in-process with `kit::grpc::in_process`.
    pub fn grpc_server(&self) -> CatalogServiceServer<CatalogGrpc> {
        CatalogServiceServer::new(CatalogGrpc {
            catalog: self.clone(),
        })
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }
}

fn required<T>(value: Option<T>, what: &str) -> Result<T, CatalogError> {
    value.ok_or_else(|| invalid(format!("{what} is missing")))
}

type WatchStreamBox = Pin<Box<dyn Stream<Item = Result<pb::WatchCatalogResponse, Status>> + Send>>;

#[tonic::async_trait]
impl CatalogService for CatalogGrpc {
    async fn list_models(
        &self,
        _: Request<pb::ListModelsRequest>,
    ) -> Result<Response<pb::ListModelsResponse>, Status> {
        let snapshot = self.catalog.snapshot();
        Ok(Response::new(pb::ListModelsResponse {
            models: snapshot.models.iter().cloned().map(Into::into).collect(),
        }))
    }

    async fn get_model(
        &self,
        request: Request<pb::GetModelRequest>,
    ) -> Result<Response<pb::GetModelResponse>, Status> {
        let id = request.into_inner().id;
        let snapshot = self.catalog.snapshot();
        let model = snapshot
            .model(&id)
            .ok_or(CatalogError::ModelNotFound(id.clone()))?;
        Ok(Response::new(pb::GetModelResponse {
            model: Some(model.clone().into()),
        }))
    }

    async fn list_endpoints(
        &self,
        request: Request<pb::ListEndpointsRequest>,
    ) -> Result<Response<pb::ListEndpointsResponse>, Status> {
        let id = request.into_inner().model_id;
        let snapshot = self.catalog.snapshot();
        let model = snapshot
            .model(&id)
            .ok_or(CatalogError::ModelNotFound(id.clone()))?;
        Ok(Response::new(pb::ListEndpointsResponse {
            model: Some(model.clone().into()),
            endpoints: snapshot
                .endpoints_of(&id)
                .cloned()
                .map(Into::into)
                .collect(),
        }))
    }

    async fn list_providers(
        &self,
        _: Request<pb::ListProvidersRequest>,
    ) -> Result<Response<pb::ListProvidersResponse>, Status> {
        let snapshot = self.catalog.snapshot();
        Ok(Response::new(pb::ListProvidersResponse {
            providers: snapshot.providers.iter().cloned().map(Into::into).collect(),
        }))
    }

    type WatchCatalogStream = WatchStreamBox;

    async fn watch_catalog(
        &self,
        _: Request<pb::WatchCatalogRequest>,
    ) -> Result<Response<WatchStreamBox>, Status> {
        let closing = self.catalog.closing().clone();
        let watcher = self.catalog.metrics().watcher();
        let stream = WatchStream::new(self.catalog.subscribe())
            .map(move |snapshot| {
                let _counted = &watcher;
                Ok(pb::WatchCatalogResponse {
                    snapshot: Some(snapshot.as_ref().into()),
                })
            })
            .take_until(async move { closing.wait().await });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn upsert_model(
        &self,
        request: Request<pb::UpsertModelRequest>,
    ) -> Result<Response<pb::UpsertModelResponse>, Status> {
        let model = Model::try_from(required(request.into_inner().model, "model")?)?;
        let version = self.catalog.upsert_model(model).await?;
        Ok(Response::new(pb::UpsertModelResponse { version }))
    }

    async fn upsert_provider(
        &self,
        request: Request<pb::UpsertProviderRequest>,
    ) -> Result<Response<pb::UpsertProviderResponse>, Status> {
        let provider = Provider::try_from(required(request.into_inner().provider, "provider")?)?;
        let version = self.catalog.upsert_provider(provider).await?;
        Ok(Response::new(pb::UpsertProviderResponse { version }))
    }

    async fn upsert_endpoint(
        &self,
        request: Request<pb::UpsertEndpointRequest>,
    ) -> Result<Response<pb::UpsertEndpointResponse>, Status> {
        let endpoint = Endpoint::try_from(required(request.into_inner().endpoint, "endpoint")?)?;
        let version = self.catalog.upsert_endpoint(endpoint).await?;
        Ok(Response::new(pb::UpsertEndpointResponse { version }))
    }

    async fn delete_endpoint(
        &self,
        request: Request<pb::DeleteEndpointRequest>,
    ) -> Result<Response<pb::DeleteEndpointResponse>, Status> {
        let (version, deleted) = self
            .catalog
            .delete_endpoint(&request.into_inner().id)
            .await?;
        Ok(Response::new(pb::DeleteEndpointResponse {
            version,
            deleted,
        }))
    }
}
