//! The OpenAI Chat Completions wire format, which every OpenAI-compatible
//! host (vLLM, Together, Groq, DeepSeek, ...) also speaks.

pub mod error;
pub mod request;
pub mod response;
