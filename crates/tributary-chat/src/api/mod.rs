//! The chat system's public APIs: REST (axum) with its OpenAPI document,
//! and gRPC (tonic) with reflection and health.

pub mod grpc;
pub mod openapi;
pub mod rest;
mod views;

pub use rest::router;
pub use views::{LinkView, MessageView};
