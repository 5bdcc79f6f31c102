//! The one error model of every API: one [`ErrorKind`] per kind of
//! failure, mapped to one HTTP status, one gRPC code and one JSON body
//! `{"code": "...", "message": "..."}` (codes are the gRPC status names in
//! snake case).
//!
//! 5xx errors are logged here, once, with their cause, and answered with a
//! message that hides internals. A system converts its own error type into
//! [`ApiError`] in one `From` impl and uses it in every handler.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

/// What went wrong, as a client needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request is malformed or a value is not acceptable (the message names the field).
    InvalidArgument,
    /// The thing asked for does not exist.
    NotFound,
    /// The request conflicts with the current state (duplicate, stale version).
    Conflict,
    /// The body is larger than the configured limit.
    PayloadTooLarge,
    /// No or a wrong credential.
    Unauthenticated,
    /// The credential's role may not do this.
    PermissionDenied,
    /// A dependency (database, bus, object store) does not answer; retry later.
    Unavailable,
    /// The request took longer than the configured time limit.
    DeadlineExceeded,
    /// A bug or an unexpected failure; details are in the server log only.
    Internal,
}

impl ErrorKind {
    /// Every kind, in declaration order.
    pub const ALL: [ErrorKind; 9] = [
        ErrorKind::InvalidArgument,
        ErrorKind::NotFound,
        ErrorKind::Conflict,
        ErrorKind::PayloadTooLarge,
        ErrorKind::Unauthenticated,
        ErrorKind::PermissionDenied,
        ErrorKind::Unavailable,
        ErrorKind::DeadlineExceeded,
        ErrorKind::Internal,
    ];

    /// The `code` of the JSON body.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "already_exists",
            ErrorKind::PayloadTooLarge => "resource_exhausted",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::DeadlineExceeded => "deadline_exceeded",
            ErrorKind::Internal => "internal",
        }
    }

    /// The HTTP status.
    pub fn http_status(self) -> StatusCode {
        match self {
            ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The gRPC status code.
    pub fn grpc_code(self) -> tonic::Code {
        match self {
            ErrorKind::InvalidArgument => tonic::Code::InvalidArgument,
            ErrorKind::NotFound => tonic::Code::NotFound,
            ErrorKind::Conflict => tonic::Code::AlreadyExists,
            ErrorKind::PayloadTooLarge => tonic::Code::ResourceExhausted,
            ErrorKind::Unauthenticated => tonic::Code::Unauthenticated,
            ErrorKind::PermissionDenied => tonic::Code::PermissionDenied,
            ErrorKind::Unavailable => tonic::Code::Unavailable,
            ErrorKind::DeadlineExceeded => tonic::Code::DeadlineExceeded,
            ErrorKind::Internal => tonic::Code::Internal,
        }
    }

    /// Whether the server is at fault (logged, message hidden).
    pub fn is_server_error(self) -> bool {
        matches!(
            self,
            ErrorKind::Unavailable | ErrorKind::DeadlineExceeded | ErrorKind::Internal
        )
    }
}

/// The JSON error body of every REST API (its OpenAPI schema is
/// `ErrorBody`; `code` is documented as the enum of every [`ErrorKind::code`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// One of the [`ErrorKind`] codes.
    #[schema(schema_with = error_code_schema)]
    pub code: String,
    /// For a human: names the field for `invalid_argument`.
    pub message: String,
}

/// The OpenAPI schema of [`ErrorBody::code`]: a string, one of the codes.
fn error_code_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(ErrorKind::ALL.iter().map(|k| k.code())))
        .description(Some(
            "What went wrong: `invalid_argument` (the message names the field), `not_found`, \
             `already_exists`, `resource_exhausted` (body too large), `unauthenticated`, \
             `permission_denied`, `unavailable` (retry later), `deadline_exceeded`, `internal` \
             (details only in the server log).",
        ))
        .build()
}

/// An error answered by an API. See the module docs.
#[derive(Debug)]
pub struct ApiError {
    kind: ErrorKind,
    message: String,
    cause: Option<anyhow::Error>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.code(), self.message)
    }
}

impl ApiError {
    /// An error of `kind` whose `message` the client sees. For server
    /// errors the message is logged and replaced by a generic one.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            cause: None,
        }
    }

    /// `invalid_argument`: the message should name the field.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }

    /// `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// `internal`, with the cause kept for the log.
    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        let cause = cause.into();
        Self {
            kind: ErrorKind::Internal,
            message: format!("{cause:#}"),
            cause: Some(cause),
        }
    }

    /// `unavailable` (a dependency does not answer), with the cause kept for the log.
    pub fn unavailable(cause: impl Into<anyhow::Error>) -> Self {
        let cause = cause.into();
        Self {
            kind: ErrorKind::Unavailable,
            message: format!("{cause:#}"),
            cause: Some(cause),
        }
    }

    /// The kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message the client sees (generic for server errors).
    pub fn public_message(&self) -> String {
        match self.kind {
            ErrorKind::Internal => "internal error".to_owned(),
            ErrorKind::Unavailable => {
                "a backend of this service is unavailable; retry later".to_owned()
            }
            ErrorKind::DeadlineExceeded => "the request took too long".to_owned(),
            _ => self.message.clone(),
        }
    }

    /// The body the client gets; logs server errors (once: call it once).
    pub fn into_body(self) -> (ErrorKind, ErrorBody) {
        if self.kind.is_server_error() {
            match &self.cause {
                Some(cause) => {
                    tracing::error!(code = self.kind.code(), error = %format!("{cause:#}"), "request failed")
                }
                None => {
                    tracing::error!(code = self.kind.code(), error = %self.message, "request failed")
                }
            }
        }
        let body = ErrorBody {
            code: self.kind.code().to_owned(),
            message: self.public_message(),
        };
        (self.kind, body)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (kind, body) = self.into_body();
        (kind.http_status(), Json(body)).into_response()
    }
}

impl From<ApiError> for tonic::Status {
    fn from(e: ApiError) -> Self {
        let (kind, body) = e.into_body();
        tonic::Status::new(kind.grpc_code(), body.message)
    }
}

fn rejection(status: StatusCode, text: String) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(ErrorKind::PayloadTooLarge, text)
    } else {
        ApiError::invalid(text)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        rejection(e.status(), e.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        rejection(e.status(), e.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> Self {
        rejection(e.status(), e.body_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves: every kind has one status, one gRPC code and one body code, and server errors hide their cause.
    #[test]
    fn kinds_map_consistently_and_hide_internals() {
        let e = ApiError::invalid("filter.from: not a date");
        let (kind, body) = e.into_body();
        assert_eq!(kind.http_status(), StatusCode::BAD_REQUEST);
        assert_eq!(body.code, "invalid_argument");
        assert_eq!(body.message, "filter.from: not a date");
        let e = ApiError::internal(anyhow::anyhow!("password=hunter2 in a query"));
        let status: tonic::Status = e.into();
        assert_eq!(status.code(), tonic::Code::Internal);
        assert!(!status.message().contains("hunter2"));
        assert_eq!(
            ErrorKind::PayloadTooLarge.http_status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(ErrorKind::NotFound.grpc_code(), tonic::Code::NotFound);
    }

    // Proves: the OpenAPI schema of the error body requires both fields and lists every code.
    #[test]
    fn error_body_schema_lists_every_code() {
        use utoipa::PartialSchema;
        let schema = serde_json::to_value(ErrorBody::schema()).expect("schema json");
        assert_eq!(schema["required"], serde_json::json!(["code", "message"]));
        let codes: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.code()).collect();
        assert_eq!(
            schema["properties"]["code"]["enum"],
            serde_json::json!(codes)
        );
        assert_eq!(schema["properties"]["message"]["type"], "string");
    }
}
