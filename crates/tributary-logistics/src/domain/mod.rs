//! Pure types and rules of the logistics domain: validated request values
//! (newtypes that parse instead of validate), packages, events and paging.

mod event;
mod package;
mod page;

pub use event::{EventType, OutboxEvent};
pub use package::{Material, MaxVolume, NewPackage, Package, PackageId, PackageUpdate, Title};
pub use page::{Page, PageLimits};

/// A request field that does not satisfy its rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ValidationError {
    /// The field name as the API spells it.
    pub field: &'static str,
    /// What is wrong, for a human.
    pub reason: String,
}

impl ValidationError {
    pub(crate) fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}
