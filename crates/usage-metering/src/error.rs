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
    #[error("key not found")]
    KeyNotFound,
    #[error("invalid transfer: {0}")]
    InvalidTransfer(&'static str),
    #[error("invalid lease request: {0}")]
    InvalidLease(&'static str),
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ServiceError for MeteringError {
    fn kind(&self) -> ErrorKind {
        match self {
            MeteringError::InvalidEvent { .. }
            | MeteringError::BatchTooLarge(_)
            | MeteringError::InvalidKeyRequest(_)
            | MeteringError::InvalidTransfer(_)
            | MeteringError::InvalidLease(_)
            | MeteringError::InvalidQuery(_) => ErrorKind::InvalidArgument,
            MeteringError::AccountNotFound(_) | MeteringError::KeyNotFound => ErrorKind::NotFound,
            MeteringError::Internal(_) => ErrorKind::Internal,
        }
    }
}
