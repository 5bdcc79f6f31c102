//! Settings of the chat system (`[chat]` in the configuration file,
//! `TRIBUTARY__CHAT__KEY` in the environment).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// The `[chat]` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ChatSettings {
    /// Address of the REST API.
    pub listen: SocketAddr,
    /// Address of the gRPC API (port 0 picks a free port).
    pub grpc_listen: SocketAddr,
    /// Base URL the CLI talks to.
    pub server: String,
    /// Messages per insert transaction during import.
    pub batch_size: usize,
    /// Partitions of the chat topics when they are created.
    pub partitions: i32,
    /// How often the outbox relay looks for unpublished count events, ms.
    pub relay_interval_ms: u64,
    /// Object-store prefix of backups.
    pub backup_prefix: String,
    /// Log shipping to the audit service.
    pub audit: AuditSettings,
}

impl Default for ChatSettings {
    fn default() -> Self {
        ChatSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8470)),
            grpc_listen: SocketAddr::from(([127, 0, 0, 1], 8471)),
            server: "http://127.0.0.1:8470".into(),
            batch_size: 1000,
            partitions: 3,
            relay_interval_ms: 1000,
            backup_prefix: "chat-backups".into(),
            audit: AuditSettings::default(),
        }
    }
}

/// The audit shipper (a tracing layer).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSettings {
    /// Ship log records at all.
    pub enabled: bool,
    /// Least severe level shipped: `error`, `warn`, `info`, `debug`, `trace`.
    pub level: String,
    /// Records buffered between the application and the shipper; when full,
    /// new records are dropped (and counted), never waited for.
    pub queue: usize,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings {
            enabled: true,
            level: "warn".into(),
            queue: 10_000,
        }
    }
}
