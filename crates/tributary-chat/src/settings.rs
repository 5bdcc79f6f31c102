//! Settings of the chat system (`[chat]` in the configuration file,
//! `TRIBUTARY__CHAT__KEY` in the environment).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tributary_runtime::outbox::RelayConfig;

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
    /// The `chat-outbox` relay of count events (`[chat.relay]`, the shared
    /// outbox relay's settings; topic `user-message-counter`).
    pub relay: RelayConfig,
    /// Object-store prefix of backups.
    pub backup_prefix: String,
    /// Server directories that import and restore requests may name by
    /// path (`{"path": ...}`; relative paths are taken under the first).
    /// Empty, the default, turns server paths off: `tributary chat import`
    /// uploads the export instead. Paths are resolved through symlinks
    /// before the check; only regular files are read.
    pub import_roots: Vec<PathBuf>,
    /// The server directory backups may be written under
    /// (`{"dir": "sub/dir"}`, relative to it, created if missing). Empty,
    /// the default, turns server directories off: back up to the object
    /// store (`"objects"`).
    pub backup_dir: PathBuf,
    /// Largest upload `POST /api/chat/import/upload` or gRPC
    /// `ChatService/Upload` takes, bytes (413 / `RESOURCE_EXHAUSTED` past
    /// it).
    pub max_upload_bytes: u64,
    /// An upload that sends nothing for this long is cut off, seconds.
    pub upload_idle_secs: u64,
    /// The user counter's bookkeeping of applied events (`[chat.users]`).
    pub users: UserCounterSettings,
}

impl Default for ChatSettings {
    fn default() -> Self {
        ChatSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8470)),
            grpc_listen: SocketAddr::from(([127, 0, 0, 1], 8471)),
            server: "http://127.0.0.1:8470".into(),
            batch_size: 1000,
            partitions: 3,
            relay: RelayConfig::for_topic(crate::domain::events::USER_COUNTER_TOPIC),
            backup_prefix: "chat-backups".into(),
            import_roots: Vec::new(),
            backup_dir: PathBuf::new(),
            max_upload_bytes: 8 << 30,
            upload_idle_secs: 30,
            users: UserCounterSettings::default(),
        }
    }
}

/// How long the user counter remembers the ids of applied count events.
///
/// An id is the only thing that stops a redelivered event from being
/// counted twice, so the retention must exceed the longest time an applied
/// event can still be delivered again: records behind a consumer's last
/// committed offset (a crash redelivers them when the group resumes, which
/// may be after a long outage), and outbox rows published but not yet
/// deleted (republished by the relay after a restart). On Kafka nothing
/// older than the topic's retention can come back; the default, 7 days,
/// equals Kafka's default `log.retention.hours`. Raise it with the topic
/// retention, and never reset a group's offsets to before the retention.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct UserCounterSettings {
    /// Ids applied longer ago than this are deleted, hours.
    pub applied_retention_hours: u64,
    /// How often old ids are deleted, seconds (the first run comes one
    /// interval after start, so a restarted relay has republished its
    /// leftovers by then).
    pub prune_interval_secs: u64,
    /// Ids deleted per statement (short transactions; batches repeat
    /// until nothing old is left).
    pub prune_batch: u32,
}

impl Default for UserCounterSettings {
    fn default() -> Self {
        UserCounterSettings {
            applied_retention_hours: 7 * 24,
            prune_interval_secs: 3600,
            prune_batch: 5_000,
        }
    }
}
