//! The one place HTTP errors become responses: 400 names the field, 404 says
//! "package not found", 500 is logged here and says nothing more.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::Error;

/// An error answered over HTTP.
#[derive(Debug)]
pub enum AppError {
    /// A domain error.
    Domain(Error),
    /// The body or query could not be parsed (400).
    BadRequest(String),
}

/// The JSON error body: `{"code": "...", "message": "..."}`; codes are the
/// gRPC status names in snake case.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    /// `invalid_argument`, `not_found` or `internal`.
    pub code: &'static str,
    /// For a human; names the field for `invalid_argument`.
    pub message: String,
}

impl From<Error> for AppError {
    fn from(e: Error) -> Self {
        AppError::Domain(e)
    }
}

impl From<JsonRejection> for AppError {
    fn from(e: JsonRejection) -> Self {
        AppError::BadRequest(e.body_text())
    }
}

impl From<QueryRejection> for AppError {
    fn from(e: QueryRejection) -> Self {
        AppError::BadRequest(e.body_text())
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            AppError::BadRequest(m) => (StatusCode::BAD_REQUEST, "invalid_argument", m),
            AppError::Domain(e) => match e {
                Error::Invalid(v) => (StatusCode::BAD_REQUEST, "invalid_argument", v.to_string()),
                Error::NoChanges => (
                    StatusCode::BAD_REQUEST,
                    "invalid_argument",
                    "no changes specified".into(),
                ),
                Error::NotFound => (
                    StatusCode::NOT_FOUND,
                    "not_found",
                    "package not found".into(),
                ),
                other => {
                    tracing::error!(error = %other, "request failed");
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal",
                        "internal error".into(),
                    )
                }
            },
        };
        (status, Json(ErrorBody { code, message })).into_response()
    }
}
