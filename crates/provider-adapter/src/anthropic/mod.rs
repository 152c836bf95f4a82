//! The Anthropic Messages wire format (`POST {base}/messages`, `x-api-key`
//! auth, a pinned `anthropic-version`).

pub mod error;
pub mod request;
pub mod response;

/// The API version every call pins; the response shapes here follow it.
pub const API_VERSION: &str = "2023-06-01";
