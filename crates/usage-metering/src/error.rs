//! The usage-metering error vocabulary and its mapping to shared error kinds.

use switchyard_kit::error::{ErrorKind, ServiceError};

#[derive(Debug, thiserror::Error)]
pub enum MeteringError {
    #[error("invalid usage event #{index} ({generation_id:?}): {reason}")]
    InvalidEvent {
        index: usize,
        generation_id: String,
        reason: String,
    },
    #[error("usage batch of {0} events is larger than the limit of {max}", max = crate::usage::MAX_BATCH_EVENTS)]
    BatchTooLarge(usize),
    #[error("invalid key request: {0}")]
    InvalidKeyRequest(&'static str),
    #[error("account {0:?} not found")]
    AccountNotFound(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ServiceError for MeteringError {
    fn kind(&self) -> ErrorKind {
        match self {
            MeteringError::InvalidEvent { .. }
            | MeteringError::BatchTooLarge(_)
            | MeteringError::InvalidKeyRequest(_) => ErrorKind::InvalidArgument,
            MeteringError::AccountNotFound(_) => ErrorKind::NotFound,
            MeteringError::Internal(_) => ErrorKind::Internal,
        }
    }
}
