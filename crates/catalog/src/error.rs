//! The catalog's error enum and the `ErrorKind` each variant stands for.

use switchyard_kit::ErrorKind;
use switchyard_kit::error::ServiceError;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// A value broke a catalog rule (bad id, unparsable price, ...).
    #[error("invalid catalog entry: {0}")]
    Invalid(String),
    #[error("model {0:?} not found")]
    ModelNotFound(String),
    #[error("unknown model {0:?}: upsert the model first")]
    UnknownModel(String),
    #[error("unknown provider {0:?}: upsert the provider first")]
    UnknownProvider(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ServiceError for CatalogError {
    fn kind(&self) -> ErrorKind {
        match self {
            CatalogError::Invalid(_)
            | CatalogError::UnknownModel(_)
            | CatalogError::UnknownProvider(_) => ErrorKind::InvalidArgument,
            CatalogError::ModelNotFound(_) => ErrorKind::NotFound,
            CatalogError::Internal(_) => ErrorKind::Internal,
        }
    }
}

impl From<CatalogError> for tonic::Status {
    fn from(err: CatalogError) -> tonic::Status {
        switchyard_kit::error::to_status(err)
    }
}
