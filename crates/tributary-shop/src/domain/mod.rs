//! Pure types and rules of the shop system. Records from the bus are parsed
//! (not merely validated) into these types; a parse error names the field so
//! the record can be dead-lettered with a useful reason.

pub mod emulator;
pub mod filter;
pub mod join;
pub mod product;
pub mod prompt;

pub use emulator::{Emulator, SplitMix64};
pub use filter::{Filter, FilterError, FilterKind, FilterSpec};
pub use join::{EntryId, JoinConfig, JoinKey, JoinOutput, JoinState, Late, StateChange, StateSize};
pub use product::{Image, Price, Product, Recommendation, Specifications, Stock};
pub use prompt::Prompt;

use serde_json::{Map, Value};

/// Every error of this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A record does not have the wire shape (dead-letter it, never retry).
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// A filter pattern was rejected (the old filter stays).
    #[error(transparent)]
    Filter(#[from] FilterError),
}

/// Result with this crate's [`Error`] by default.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A record that does not match its wire shape. Permanent: the same bytes
/// always fail, so the record belongs in the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ParseError {
    /// Path of the offending field, e.g. `price.amount` or `images[1].url`;
    /// `$` for the record as a whole.
    pub field: String,
    /// What is wrong, for a human.
    pub reason: String,
}

impl ParseError {
    fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Parses bytes as one JSON object.
fn parse_object(json: &[u8]) -> Result<Value, ParseError> {
    let value: Value =
        serde_json::from_slice(json).map_err(|e| ParseError::new("$", format!("not JSON: {e}")))?;
    if !value.is_object() {
        return Err(ParseError::new(
            "$",
            format!("expected an object, got {}", kind(&value)),
        ));
    }
    Ok(value)
}

/// A JSON value's kind, for error messages.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Typed access to the fields of one JSON object, with errors that carry the
/// field's path. Unknown fields are ignored (newer producers may add some).
struct Fields<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

impl<'a> Fields<'a> {
    fn of(value: &'a Value, path: String) -> Result<Self, ParseError> {
        match value {
            Value::Object(map) => Ok(Self { map, path }),
            other => Err(ParseError::new(
                if path.is_empty() {
                    "$".to_owned()
                } else {
                    path
                },
                format!("expected an object, got {}", kind(other)),
            )),
        }
    }

    fn path(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.path)
        }
    }

    fn get(&self, name: &str) -> Result<&'a Value, ParseError> {
        self.map
            .get(name)
            .ok_or_else(|| ParseError::new(self.path(name), "missing"))
    }

    fn string(&self, name: &str) -> Result<String, ParseError> {
        as_string(self.get(name)?, || self.path(name))
    }

    /// A string that is not empty or only whitespace.
    fn required(&self, name: &str) -> Result<String, ParseError> {
        let s = self.string(name)?;
        if s.trim().is_empty() {
            return Err(ParseError::new(self.path(name), "must not be blank"));
        }
        Ok(s)
    }

    fn int(&self, name: &str) -> Result<i64, ParseError> {
        let v = self.get(name)?;
        v.as_i64().ok_or_else(|| {
            let got = if v.is_number() {
                "a non-integer or out-of-range number"
            } else {
                kind(v)
            };
            ParseError::new(self.path(name), format!("expected an integer, got {got}"))
        })
    }

    /// An integer that is zero or more.
    fn count(&self, name: &str) -> Result<i64, ParseError> {
        let n = self.int(name)?;
        if n < 0 {
            return Err(ParseError::new(
                self.path(name),
                format!("must not be negative, got {n}"),
            ));
        }
        Ok(n)
    }

    fn object(&self, name: &str) -> Result<Fields<'a>, ParseError> {
        Fields::of(self.get(name)?, self.path(name))
    }

    fn array(&self, name: &str) -> Result<&'a [Value], ParseError> {
        match self.get(name)? {
            Value::Array(items) => Ok(items),
            other => Err(ParseError::new(
                self.path(name),
                format!("expected an array, got {}", kind(other)),
            )),
        }
    }

    fn uuid(&self, name: &str) -> Result<uuid::Uuid, ParseError> {
        let s = self.string(name)?;
        uuid::Uuid::parse_str(&s)
            .map_err(|e| ParseError::new(self.path(name), format!("not a UUID: {e}")))
    }
}

fn as_string(v: &Value, path: impl FnOnce() -> String) -> Result<String, ParseError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        other => Err(ParseError::new(
            path(),
            format!("expected a string, got {}", kind(other)),
        )),
    }
}
