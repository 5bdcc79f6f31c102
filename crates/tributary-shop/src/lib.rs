//! Shop streams, pure domain part: the wire records of the shop system
//! (products, search prompts, recommendations), the live product-name
//! filter, the join key, the event-time stream-stream join of prompts with
//! filtered products, and the deterministic store emulator.
//!
//! Nothing here does I/O or reads a clock: services pass records, event
//! times and watermarks in, and persist what the join hands back.
//!
//! | module | what lives there |
//! |---|---|
//! | `domain::product` | `Product` and its parts, `Recommendation`, parsing with field-naming errors |
//! | `domain::prompt` | `Prompt` (a user's search) and its parser |
//! | `domain::filter` | `FilterSpec` (the control-topic value) and the compiled `Filter` |
//! | `domain::join` | `JoinKey` normalisation and the `JoinState` machine with its changelog |
//! | `domain::emulator` | `SplitMix64` and the seeded `Emulator` of stores |

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod domain;

pub use domain::{Error, Result};
