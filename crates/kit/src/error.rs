//! The shared error vocabulary: one `ErrorKind` per thing a caller can act on,
//! mapped exhaustively to gRPC codes and HTTP statuses. Each service keeps its
//! own `thiserror` enum and says which kind each variant is.

use tonic::{Code, Status};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    InvalidArgument,
    Unauthenticated,
    PermissionDenied,
    PaymentRequired,
    NotFound,
    Conflict,
    PayloadTooLarge,
    RateLimited,
    /// A dependency (upstream provider, database, peer service) is down.
    Unavailable,
    /// A dependency answered with something we cannot use.
    BadGateway,
    Timeout,
    Internal,
}

impl ErrorKind {
    pub fn grpc_code(self) -> Code {
        match self {
            ErrorKind::InvalidArgument => Code::InvalidArgument,
            ErrorKind::Unauthenticated => Code::Unauthenticated,
            ErrorKind::PermissionDenied => Code::PermissionDenied,
            ErrorKind::PaymentRequired => Code::FailedPrecondition,
            ErrorKind::NotFound => Code::NotFound,
            ErrorKind::Conflict => Code::AlreadyExists,
            ErrorKind::PayloadTooLarge => Code::OutOfRange,
            ErrorKind::RateLimited => Code::ResourceExhausted,
            ErrorKind::Unavailable => Code::Unavailable,
            ErrorKind::BadGateway => Code::Unknown,
            ErrorKind::Timeout => Code::DeadlineExceeded,
            ErrorKind::Internal => Code::Internal,
        }
    }

    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::InvalidArgument => 400,
            ErrorKind::Unauthenticated => 401,
            ErrorKind::PaymentRequired => 402,
            ErrorKind::PermissionDenied => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict => 409,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::RateLimited => 429,
            ErrorKind::Internal => 500,
            ErrorKind::BadGateway => 502,
            ErrorKind::Unavailable => 503,
            ErrorKind::Timeout => 504,
        }
    }

    /// The kind a peer's gRPC status stands for, so errors keep their
    /// meaning across a hop.
    pub fn from_grpc_code(code: Code) -> ErrorKind {
        match code {
            Code::InvalidArgument => ErrorKind::InvalidArgument,
            Code::OutOfRange => ErrorKind::PayloadTooLarge,
            Code::Unauthenticated => ErrorKind::Unauthenticated,
            Code::PermissionDenied => ErrorKind::PermissionDenied,
            Code::FailedPrecondition => ErrorKind::PaymentRequired,
            Code::NotFound => ErrorKind::NotFound,
            Code::AlreadyExists | Code::Aborted => ErrorKind::Conflict,
            Code::ResourceExhausted => ErrorKind::RateLimited,
            Code::Unavailable | Code::Cancelled => ErrorKind::Unavailable,
            Code::DeadlineExceeded => ErrorKind::Timeout,
            Code::Unknown => ErrorKind::BadGateway,
            Code::Ok | Code::Internal | Code::Unimplemented | Code::DataLoss => ErrorKind::Internal,
        }
    }
}

/// Implemented by each service's error enum.
pub trait ServiceError: std::error::Error {
    fn kind(&self) -> ErrorKind;
}

/// Turns a service error into a gRPC status at the boundary. Internal errors
/// are logged here, once, and the caller only sees a generic message.
pub fn to_status<E: ServiceError>(err: E) -> Status {
    let kind = err.kind();
    if kind == ErrorKind::Internal {
        tracing::error!(error = %format_chain(&err), "internal error");
        Status::new(kind.grpc_code(), "internal error")
    } else {
        Status::new(kind.grpc_code(), err.to_string())
    }
}

/// `err: cause: cause` on one line, for logs.
pub fn format_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [ErrorKind; 12] = [
        ErrorKind::InvalidArgument,
        ErrorKind::Unauthenticated,
        ErrorKind::PermissionDenied,
        ErrorKind::PaymentRequired,
        ErrorKind::NotFound,
        ErrorKind::Conflict,
        ErrorKind::PayloadTooLarge,
        ErrorKind::RateLimited,
        ErrorKind::Unavailable,
        ErrorKind::BadGateway,
        ErrorKind::Timeout,
        ErrorKind::Internal,
    ];

    #[test]
    fn kinds_survive_a_grpc_hop() {
        for kind in ALL {
            assert_eq!(
                ErrorKind::from_grpc_code(kind.grpc_code()),
                kind,
                "{kind:?}"
            );
        }
    }

    #[test]
    fn http_statuses_are_distinct() {
        let mut seen = std::collections::HashSet::new();
        for kind in ALL {
            assert!(seen.insert(kind.http_status()), "{kind:?}");
        }
    }
}
