//! The system contract and the shared building blocks every system is
//! built on, between the ports (bus, storage) and the systems:
//!
//! | module | what |
//! |---|---|
//! | [`system`] | [`System`], [`Service`], [`SystemCli`]: what a system crate exports |
//! | [`context`] | [`Context`]: settings, lazily connected backends, readiness, shutdown |
//! | [`settings`] | [`Settings`]: the platform part plus one typed section per system |
//! | [`series`] | every metric series of a process registered at zero at start: the services' own, the bus runner's, the outbox relay's |
//! | [`supervise`] | running services: restart with backoff under `up`, exit under `serve` |
//! | [`error`] | [`ApiError`]: one error kind -> HTTP status, gRPC code, JSON body |
//! | [`http`] | the shared HTTP layers: limits, request id, metrics, shutdown |
//! | [`openapi`] | `GET /openapi.json` serving the derived document, the source check of documented routes |
//! | [`grpc`] | the shared gRPC server: health, reflection, message and time limits, request scope, shutdown |
//! | [`scope`] | the per-request span of HTTP and gRPC servers: W3C `traceparent`, per-request log level |
//! | [`audit`] | the audit layer and the one shipper per process |
//! | [`client`] | HTTP client and gRPC interceptor of client commands, sending the caller's token |
//! | [`outbox`] | the one transactional outbox: enqueue in the caller's transaction, leased relay with per-key order |

pub mod audit;
pub mod client;
pub mod context;
pub mod error;
pub mod grpc;
pub mod http;
pub mod openapi;
pub mod outbox;
pub mod scope;
pub mod series;
pub mod settings;
pub mod supervise;
pub mod system;

pub use context::Context;
pub use error::{ApiError, ErrorBody, ErrorKind};
pub use settings::{PlatformSettings, Settings, SettingsSection};
pub use system::{Service, System, SystemCli, TopicSpec};
pub use tributary_platform::{ServiceState, Started};
