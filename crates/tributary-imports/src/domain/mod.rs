//! Pure types and rules: body splitting, the company record, money, dates,
//! validation rules and the record generator.

pub mod body;
pub mod company;
pub mod dates;
pub mod generate;
pub mod money;
pub mod rules;

pub use body::SyntaxError;

/// Everything that can go wrong in this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The body is not well-formed JSON of an accepted shape.
    #[error(transparent)]
    Syntax(#[from] SyntaxError),
    /// A money string does not parse; the text says why.
    #[error("invalid money amount: {0}")]
    Money(&'static str),
    /// A date or timestamp does not parse; the text says why.
    #[error("invalid date: {0}")]
    Date(&'static str),
}

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
