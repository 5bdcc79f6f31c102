//! File imports (`tributary imports ...`): `POST /import/{kind}/{name}` ->
//! object store -> `processedFile` -> validation -> database.
//!
//! | module | what |
//! |---|---|
//! | [`domain`] | pure: body splitter ([`Splitter`]), the `company` record and its named rules ([`RULES`]), money, dates, generator |
//! | [`events`] | the import events on the bus |
//! | [`kinds`] | the `company` kind and the kinds declared by a JSON Schema |
//! | [`store`] | uploads, their errors, the companies table, the imports outbox |
//! | [`api`] | `imports-api`: streaming uploads, status, errors, kinds, companies |
//! | [`processor`] | `imports-processor`: stream back, validate, load per batch, checkpoint |
//! | [`cli`] | `tributary imports upload/status/errors/list/kinds/companies/reprocess/delete/generate` |
//! | [`settings`] | the `[imports]` section |
//! | [`system`] | the contract: [`system()`] |
//!
//! The domain in short:
//! - [`Splitter`] detects whether an upload body is one JSON object, a JSON
//!   array of objects or NDJSON, checks its syntax while the bytes stream in
//!   and yields one [`Record`] per top-level object, in memory bounded by the
//!   largest record; a malformed body is a [`SyntaxError`] with line, column
//!   and reason.
//! - [`validate`] turns one `company` document (the CrunchBase
//!   `companies.json` shape) into a typed [`Company`], or reports every
//!   [`Violation`] of the record, each named by a stable rule from [`RULES`].
//! - [`Money`] and [`PartialDate`] parse the messy money strings and dates of
//!   the real data.
//! - [`generate`] builds realistic company documents from a seed, some of
//!   them broken on purpose with the rule they break known.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod cli;
pub mod domain;
pub mod events;
pub mod kinds;
pub mod metrics;
pub mod processor;
pub mod settings;
pub mod store;
pub mod system;

pub use domain::body::{split, BodyFormat, Record, Splitter, SyntaxError};
pub use domain::company::{validate, validate_at, Company};
pub use domain::dates::{parse_timestamp, PartialDate};
pub use domain::generate;
pub use domain::money::Money;
pub use domain::rules::{Violation, RULES};
pub use domain::{Error, Result};
pub use system::system;
