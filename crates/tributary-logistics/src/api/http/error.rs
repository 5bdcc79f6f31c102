//! HTTP errors through the platform's one error model: 400
//! `invalid_argument` names the field, 404 `not_found` says "package not
//! found", everything else is 500 `internal`, logged once and hidden.

use tributary_runtime::ApiError;

use crate::Error;

/// The error type of every handler (the platform's [`ApiError`]).
pub type AppError = ApiError;

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid(v) => ApiError::invalid(v.to_string()),
            Error::NoChanges => ApiError::invalid("no changes specified"),
            Error::NotFound => ApiError::not_found("package not found"),
            other => ApiError::internal(other),
        }
    }
}
