//! The search prompt of `analytic_products_find`, keyed by `id`.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::join::JoinKey;
use super::{parse_object, Fields, ParseError};

/// A user's search: "find me this product".
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Prompt {
    /// Unique id, the message key.
    pub id: Uuid,
    /// Who is searching (a string on the wire). Not blank.
    pub user_id: String,
    /// What they typed. Not blank; joined after normalisation.
    pub find: String,
}

impl Prompt {
    /// A new prompt with a random id.
    pub fn new(user_id: impl Into<String>, find: impl Into<String>) -> Self {
        Self {
            id: Uuid::new_v4(),
            user_id: user_id.into(),
            find: find.into(),
        }
    }

    /// Parses one JSON record.
    ///
    /// # Errors
    /// A [`ParseError`] naming the field: `id` not a UUID, `user_id` or
    /// `find` missing, not a string or blank.
    pub fn parse(json: &[u8]) -> Result<Self, ParseError> {
        let value = parse_object(json)?;
        let f = Fields::of(&value, String::new())?;
        Ok(Self {
            id: f.uuid("id")?,
            user_id: f.required("user_id")?,
            find: f.required("find")?,
        })
    }

    /// The key this prompt joins on: its normalised `find`.
    pub fn join_key(&self) -> JoinKey {
        JoinKey::new(&self.find)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    // Proves a valid prompt parses and each broken field is named.
    #[test]
    fn parse_prompt() {
        let id = Uuid::new_v4();
        let ok = format!(r#"{{"id":"{id}","user_id":"42","find":"Apple iPhone 15","extra":1}}"#);
        let p = Prompt::parse(ok.as_bytes()).unwrap();
        assert_eq!(
            (p.id, p.user_id.as_str(), p.find.as_str()),
            (id, "42", "Apple iPhone 15")
        );

        let bad_id = r#"{"id":"nope","user_id":"42","find":"x"}"#;
        assert_eq!(Prompt::parse(bad_id.as_bytes()).unwrap_err().field, "id");
        let numeric_user = format!(r#"{{"id":"{id}","user_id":42,"find":"x"}}"#);
        let err = Prompt::parse(numeric_user.as_bytes()).unwrap_err();
        assert_eq!(err.to_string(), "user_id: expected a string, got a number");
        let blank = format!(r#"{{"id":"{id}","user_id":"1","find":" \t"}}"#);
        assert_eq!(Prompt::parse(blank.as_bytes()).unwrap_err().field, "find");
    }
}
