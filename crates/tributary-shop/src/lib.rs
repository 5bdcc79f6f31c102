//! Shop streams (`tributary shop ...`): emulated stores publish products,
//! a live name filter (set through the API, kept on a control topic) lets
//! some through, users' search prompts are joined with the filtered
//! products on the normalised name within a window on event time, and a
//! sink upserts products and recommendations into tables.
//!
//! | module | what lives there |
//! |---|---|
//! | [`domain`] | pure: products, prompts, recommendations, the filter, the join state machine, the emulator |
//! | [`pipeline`] | the services' work: control-topic follower, filter, repartition, join, sink, emulator |
//! | [`store`] | the tables (products, filtered products, recommendations, join state) |
//! | [`api`] | `shop-api`: REST (ingest, filter control, reads) and gRPC (filter control, ingest) |
//! | [`proto`] | generated gRPC code of `proto/` |
//! | [`cli`] | `tributary shop find/send/emulate/filter/recommendations/products/stats` |
//! | [`settings`] | the `[shop]` section |
//! | [`metrics`] | Prometheus names |
//! | [`system`] | the contract: [`system()`] |

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod cli;
pub mod domain;
pub mod metrics;
pub mod pipeline;
pub mod proto;
pub mod settings;
pub mod store;
pub mod system;

pub use domain::{Error, Result};
pub use system::system;
