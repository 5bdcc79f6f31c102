//! Settings of the logistics system (section `[logistics]`, env
//! `TRIBUTARY__LOGISTICS__KEY`).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::domain::PageLimits;
use crate::relay::RelayConfig;

/// Everything the logistics services can be configured with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogisticsSettings {
    /// gRPC listen address of `logistics-api`.
    pub grpc_listen: SocketAddr,
    /// HTTP/JSON listen address of `logistics-api` (also serves `/openapi.json`).
    pub http_listen: SocketAddr,
    /// Honour the per-request `log_level: debug` gRPC metadata / HTTP header.
    /// Off by default: a client must not be able to flood the logs.
    pub allow_request_log_level: bool,
    /// List page size when the client sends none.
    pub page_default: u64,
    /// Largest list page size; larger requests are clamped.
    pub page_max: u64,
    /// The outbox relay.
    pub relay: RelayConfig,
}

impl Default for LogisticsSettings {
    fn default() -> Self {
        let limits = PageLimits::default();
        Self {
            grpc_listen: SocketAddr::from(([127, 0, 0, 1], 8082)),
            http_listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            allow_request_log_level: false,
            page_default: limits.default,
            page_max: limits.max,
            relay: RelayConfig::for_topic(crate::relay::DEFAULT_TOPIC),
        }
    }
}

impl LogisticsSettings {
    /// The paging policy.
    pub fn page_limits(&self) -> PageLimits {
        PageLimits {
            default: self.page_default,
            max: self.page_max,
        }
    }
}
