//! The REST API of `imports-api`, served through `tributary_runtime::http`
//! (roles, request id, time limit, one error body):
//!
//! - `POST /api/imports/import/{kind}/{name}` (also `POST
//!   /import/{kind}/{name}`, the seed's path): the body (one JSON object, an
//!   array of objects or NDJSON, detected from the content; `Content-Encoding:
//!   gzip` accepted) streams to the object store; 202 [`UploadAnswer`];
//!   400 naming line, column and reason for a malformed body, 413 past
//!   `imports.max_body_bytes`, 404 listing the known kinds; role `write`;
//! - `GET /api/imports/uploads` (recent first), `GET
//!   /api/imports/uploads/{id}` (status with the first errors), `GET
//!   /api/imports/uploads/{id}/errors` (paged), `POST
//!   /api/imports/uploads/{id}/reprocess`, `DELETE
//!   /api/imports/uploads/{id}` (role `admin`);
//! - `GET /api/imports/kinds`, `GET /api/imports/companies`, `GET
//!   /api/imports/records?kind=` (kinds declared by a JSON Schema);
//! - `GET /liveness` (name, version, commit, build time, uptime), `GET
//!   /readiness` (200 only when object store, bus and database answer);
//! - `GET /openapi.json`.
//!
//! Every route is registered through [`utoipa_axum::routes!`] with its
//! `#[utoipa::path]` documentation.

pub mod upload;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse as _, Response};
use axum::Router;
use serde::{Deserialize, Serialize};
use tributary_bus::Bus;
use tributary_platform::auth::Role;
use tributary_runtime::http::{HttpLimits, Path, Query, RouteRole};
use tributary_runtime::{ApiError, ErrorBody, ErrorKind};
use tributary_storage::Objects;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::kinds::Kinds;
use crate::settings::ImportsSettings;
use crate::store::{
    CompanyQuery, CompanyView, RecordError, RecordQuery, RecordView, Reprocess, StoreError, Upload,
    UploadStore,
};
pub use upload::{Encoding, UploadAnswer};

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The imports tables.
    pub store: UploadStore,
    /// The object store, under the imports prefix.
    pub objects: Objects,
    /// The bus (readiness only: events go through the outbox).
    pub bus: Bus,
    /// The `[imports]` settings.
    pub settings: Arc<ImportsSettings>,
    /// The record kinds (`company` and the configured schema kinds).
    pub kinds: Arc<Kinds>,
    /// When the service started (uptime).
    pub started: Instant,
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Sql(_) | StoreError::Outbox(_) => ApiError::unavailable(e),
            _ => ApiError::internal(e),
        }
    }
}

/// Role overrides: deleting an upload needs `admin`.
pub const ROLES: &[RouteRole] = &[RouteRole(
    "DELETE",
    "/api/imports/uploads/{id}",
    Role::Admin,
)];

/// The limits `imports-api` is served with: body limit and request time
/// from the settings, [`ROLES`].
pub fn limits(settings: &ImportsSettings) -> HttpLimits {
    HttpLimits {
        body_limit: usize::try_from(settings.max_body_bytes).unwrap_or(usize::MAX),
        request_timeout: settings.request_timeout(),
        untimed: &[],
        roles: ROLES,
    }
}

/// Title and description of the document.
#[derive(utoipa::OpenApi)]
#[openapi(info(
    title = "Tributary imports",
    description = "File imports: upload JSON bodies (object, array, NDJSON; gzip) to the object store, follow their processing, read their errors and the loaded records. Every error is `{\"code\", \"message\"}` (schema `ErrorBody`)."
))]
struct ApiDoc;

fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(import))
        .routes(routes!(import_seed_path))
        .routes(routes!(uploads))
        .routes(routes!(upload_status, delete_upload))
        .routes(routes!(upload_errors))
        .routes(routes!(reprocess_upload))
        .routes(routes!(kinds))
        .routes(routes!(companies))
        .routes(routes!(records))
        .routes(routes!(liveness))
        .routes(routes!(readiness))
}

/// The router with `GET /openapi.json` (without the shared layers;
/// `http::serve` adds them).
pub fn router(state: ApiState) -> Router {
    let (router, _document) = tributary_runtime::openapi::with_document(routes(), |_| {});
    router.with_state(state)
}

/// The OpenAPI 3.1 document served at `/openapi.json`.
pub fn document() -> utoipa::openapi::OpenApi {
    tributary_runtime::openapi::with_document(routes(), |_| {}).1
}

fn known_kind(kinds: &Kinds, kind: &str) -> Result<(), ApiError> {
    if kinds.get(kind).is_some() {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "unknown kind {kind:?}; known kinds: {}",
            kinds.names().join(", ")
        )))
    }
}

async fn import_body(
    st: ApiState,
    kind: String,
    name: String,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    known_kind(&st.kinds, &kind)?;
    if name.trim().is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "name: 1 to 200 characters, no control characters",
        ));
    }
    let encoding = Encoding::parse(
        headers
            .get(axum::http::header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok()),
    )?;
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if encoding == Encoding::Identity && declared.is_some_and(|n| n > st.settings.max_body_bytes) {
        return Err(ApiError::new(
            ErrorKind::PayloadTooLarge,
            format!(
                "body larger than {} bytes (Content-Length {})",
                st.settings.max_body_bytes,
                declared.unwrap_or_default()
            ),
        ));
    }
    let request_id = uuid::Uuid::new_v4().to_string();
    st.store.insert_received(&request_id, &kind, &name).await?;
    let answer = upload::ingest(
        &st,
        &request_id,
        &kind,
        &name,
        encoding,
        body.into_data_stream(),
    )
    .await?;
    Ok((axum::http::StatusCode::ACCEPTED, axum::Json(answer)).into_response())
}

/// Upload a file of records
#[utoipa::path(post, path = "/api/imports/import/{kind}/{name}", operation_id = "import",
    params(("kind" = String, Path, description = "Record kind (`GET /api/imports/kinds`)"),
           ("name" = String, Path, description = "A name for the upload (the event key)")),
    request_body(content = Object, content_type = "application/json",
        description = "One JSON object, a JSON array of objects, or NDJSON (detected from the content); `Content-Encoding: gzip` accepted"),
    responses(
        (status = 202, description = "Stored and announced (or a duplicate of an earlier upload)", body = UploadAnswer),
        (status = 400, description = "Not well-formed JSON of an accepted shape (line, column, reason), bad gzip, a body cut short", body = ErrorBody),
        (status = 404, description = "Unknown kind (the message lists the known ones)", body = ErrorBody),
        (status = 413, description = "Body larger than `imports.max_body_bytes`", body = ErrorBody),
        (status = 503, description = "Object store or database unavailable (nothing stored, nothing emitted)", body = ErrorBody),
    ))]
async fn import(
    State(st): State<ApiState>,
    Path((kind, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    import_body(st, kind, name, headers, body).await
}

/// Upload a file of records (the seed's path)
#[utoipa::path(post, path = "/import/{kind}/{name}", operation_id = "import_seed_path",
    params(("kind" = String, Path, description = "Record kind"),
           ("name" = String, Path, description = "A name for the upload")),
    request_body(content = Object, content_type = "application/json",
        description = "As `POST /api/imports/import/{kind}/{name}`"),
    responses(
        (status = 202, description = "Stored and announced", body = UploadAnswer),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 404, description = "Unknown kind", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 503, description = "A backend is unavailable", body = ErrorBody),
    ))]
async fn import_seed_path(
    State(st): State<ApiState>,
    Path((kind, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    import_body(st, kind, name, headers, body).await
}

/// An upload's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UploadStatus {
    /// The upload.
    pub request_id: String,
    /// Record kind.
    pub kind: String,
    /// The upload name.
    pub name: String,
    /// `received`, `stored`, `processing`, `completed` or `failed`.
    pub state: String,
    /// SHA-256 of the decoded body.
    pub checksum: Option<String>,
    /// Decoded size, bytes.
    pub size: u64,
    /// Records in the body.
    pub records: u64,
    /// Records handled by the processor so far.
    pub processed: u64,
    /// Records loaded.
    pub loaded: u64,
    /// Records rejected.
    pub rejected: u64,
    /// The earlier upload of the same bytes.
    pub duplicate_of: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// RFC 3339 times.
    pub received_at: String,
    /// When stored.
    pub stored_at: Option<String>,
    /// When the processor started.
    pub started_at: Option<String>,
    /// When it completed or failed.
    pub completed_at: Option<String>,
    /// Processing time so far (or in total), ms.
    pub processing_ms: Option<u64>,
    /// The first `imports.status_errors` rejected records.
    pub errors: Vec<RecordError>,
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

impl UploadStatus {
    /// The view of `u` with its first `errors`.
    pub fn new(u: Upload, errors: Vec<RecordError>) -> Self {
        let processing_ms = u.started_at.map(|s| {
            let end = u.completed_at.unwrap_or_else(crate::store::now_ms);
            u64::try_from(end - s).unwrap_or(0)
        });
        UploadStatus {
            request_id: u.request_id,
            kind: u.kind,
            name: u.name,
            state: u.state,
            checksum: u.checksum,
            size: u.size,
            records: u.records,
            processed: u.processed,
            loaded: u.loaded,
            rejected: u.rejected,
            duplicate_of: u.duplicate_of,
            error: u.error,
            received_at: rfc3339(u.received_at),
            stored_at: u.stored_at.map(rfc3339),
            started_at: u.started_at.map(rfc3339),
            completed_at: u.completed_at.map(rfc3339),
            processing_ms,
            errors,
        }
    }
}

/// Query of `GET /api/imports/uploads`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UploadsQuery {
    /// Page size (default `imports.page_default`, at most `imports.page_max`).
    #[param(minimum = 1)]
    pub limit: Option<u32>,
    /// Keyset: `next_before` of the previous page (`<received ms>:<request id>`).
    pub before: Option<String>,
}

/// A page of uploads, most recent first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UploadPage {
    /// Uploads (without their errors).
    pub uploads: Vec<UploadStatus>,
    /// Pass as `before` for the next page; `null` on the last page.
    pub next_before: Option<String>,
}

fn page_limit(limit: Option<u32>, settings: &ImportsSettings) -> Result<u32, ApiError> {
    let limit = limit.unwrap_or(settings.page_default);
    if limit == 0 || limit > settings.page_max {
        return Err(ApiError::invalid(format!(
            "limit: must be 1..={}, got {limit}",
            settings.page_max
        )));
    }
    Ok(limit)
}

/// Recent uploads
#[utoipa::path(get, path = "/api/imports/uploads", operation_id = "uploads",
    params(UploadsQuery),
    responses(
        (status = 200, description = "Most recent first", body = UploadPage),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ))]
async fn uploads(
    State(st): State<ApiState>,
    Query(q): Query<UploadsQuery>,
) -> Result<axum::Json<UploadPage>, ApiError> {
    let limit = page_limit(q.limit, &st.settings)?;
    let before = match q.before.as_deref() {
        None => None,
        Some(b) => {
            let parsed = b
                .split_once(':')
                .and_then(|(ms, id)| ms.parse::<i64>().ok().map(|ms| (ms, id)));
            match parsed {
                Some(p) => Some(p),
                None => {
                    return Err(ApiError::invalid(format!(
                        "before: {b:?} is not `<ms>:<request id>` (the `next_before` of a page)"
                    )))
                }
            }
        }
    };
    let list = st.store.recent(before, limit).await?;
    let next_before = (list.len() == limit as usize)
        .then(|| {
            list.last()
                .map(|u| format!("{}:{}", u.received_at, u.request_id))
        })
        .flatten();
    Ok(axum::Json(UploadPage {
        uploads: list
            .into_iter()
            .map(|u| UploadStatus::new(u, Vec::new()))
            .collect(),
        next_before,
    }))
}

/// An upload's status
#[utoipa::path(get, path = "/api/imports/uploads/{id}", operation_id = "upload_status",
    params(("id" = String, Path, description = "The request id of the upload")),
    responses(
        (status = 200, description = "State, counts, timings, the first errors", body = UploadStatus),
        (status = 400, description = "Bad request", body = ErrorBody),
        (status = 404, description = "No such upload", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ))]
async fn upload_status(
    State(st): State<ApiState>,
    Path(id): Path<String>,
) -> Result<axum::Json<UploadStatus>, ApiError> {
    let Some(u) = st.store.get(&id).await? else {
        return Err(ApiError::not_found(format!("no upload {id:?}")));
    };
    let source = u.duplicate_of.clone().unwrap_or_else(|| id.clone());
    let errors = st
        .store
        .errors(&source, None, st.settings.status_errors)
        .await?;
    Ok(axum::Json(UploadStatus::new(u, errors)))
}

/// What `DELETE /api/imports/uploads/{id}` removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Deleted {
    /// The upload.
    pub request_id: String,
    /// Whether its stored body was removed too (no other upload uses it).
    pub object_removed: bool,
}

/// Delete an upload
#[utoipa::path(delete, path = "/api/imports/uploads/{id}", operation_id = "delete_upload",
    params(("id" = String, Path, description = "The request id of the upload")),
    responses(
        (status = 200, description = "The upload's status row and errors are gone (loaded records stay); its stored body too when no other upload uses it", body = Deleted),
        (status = 400, description = "Bad request", body = ErrorBody),
        (status = 404, description = "No such upload", body = ErrorBody),
        (status = 503, description = "Database or object store unavailable", body = ErrorBody),
    ))]
async fn delete_upload(
    State(st): State<ApiState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Deleted>, ApiError> {
    let Some(u) = st.store.delete(&id).await? else {
        return Err(ApiError::not_found(format!("no upload {id:?}")));
    };
    let mut object_removed = false;
    if let Some(key) = u.object_key {
        if !st.store.object_in_use(&key).await? {
            st.objects
                .delete(&key)
                .await
                .map_err(|e| ApiError::unavailable(anyhow::anyhow!("object store: {e}")))?;
            object_removed = true;
        }
    }
    Ok(axum::Json(Deleted {
        request_id: id,
        object_removed,
    }))
}

/// Process a finished upload again
#[utoipa::path(post, path = "/api/imports/uploads/{id}/reprocess", operation_id = "reprocess_upload",
    params(("id" = String, Path, description = "The request id of the upload")),
    responses(
        (status = 202, description = "Announced again: state `stored`, counts reset, errors cleared; the processor loads it from the start (upserts: the table ends the same)", body = UploadStatus),
        (status = 400, description = "A duplicate (reprocess the upload it names) or a refused body (nothing stored)", body = ErrorBody),
        (status = 404, description = "No such upload", body = ErrorBody),
        (status = 409, description = "Not finished yet: it is being processed", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ))]
async fn reprocess_upload(
    State(st): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    match st.store.reprocess(&id, st.objects.redacted_url()).await? {
        Reprocess::Queued => {}
        Reprocess::NotFound => return Err(ApiError::not_found(format!("no upload {id:?}"))),
        Reprocess::Duplicate(first) => {
            return Err(ApiError::invalid(format!(
                "upload {id} is a duplicate of {first}; reprocess {first}"
            )))
        }
        Reprocess::NoBody => {
            return Err(ApiError::invalid(format!(
                "upload {id} was refused; nothing is stored to process"
            )))
        }
        Reprocess::Busy(state) => {
            return Err(ApiError::new(
                ErrorKind::Conflict,
                format!("upload {id} is not finished ({state}); wait for it"),
            ))
        }
    }
    let Some(u) = st.store.get(&id).await? else {
        return Err(ApiError::not_found(format!("no upload {id:?}")));
    };
    Ok((
        axum::http::StatusCode::ACCEPTED,
        axum::Json(UploadStatus::new(u, Vec::new())),
    )
        .into_response())
}

/// Query of `GET /api/imports/uploads/{id}/errors`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ErrorsQuery {
    /// Page size (default `imports.page_default`, at most `imports.page_max`).
    #[param(minimum = 1)]
    pub limit: Option<u32>,
    /// Keyset: records after this index.
    pub after: Option<u64>,
}

/// A page of an upload's rejected records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorPage {
    /// In record order.
    pub errors: Vec<RecordError>,
    /// Pass as `after` for the next page; `null` on the last page.
    pub next_after: Option<u64>,
}

/// An upload's rejected records
#[utoipa::path(get, path = "/api/imports/uploads/{id}/errors", operation_id = "upload_errors",
    params(("id" = String, Path, description = "The request id of the upload"), ErrorsQuery),
    responses(
        (status = 200, description = "A page in record order", body = ErrorPage),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 404, description = "No such upload", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ))]
async fn upload_errors(
    State(st): State<ApiState>,
    Path(id): Path<String>,
    Query(q): Query<ErrorsQuery>,
) -> Result<axum::Json<ErrorPage>, ApiError> {
    let limit = page_limit(q.limit, &st.settings)?;
    let Some(u) = st.store.get(&id).await? else {
        return Err(ApiError::not_found(format!("no upload {id:?}")));
    };
    let source = u.duplicate_of.unwrap_or(id);
    let errors = st.store.errors(&source, q.after, limit).await?;
    let next_after = (errors.len() == limit as usize)
        .then(|| errors.last().map(|e| e.record))
        .flatten();
    Ok(axum::Json(ErrorPage { errors, next_after }))
}

/// One rule of a kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RuleView {
    /// Stable rule name (the `rule` of errors).
    pub name: String,
    /// What it checks.
    pub description: String,
}

/// One record kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KindView {
    /// Its name (the `{kind}` of the upload path).
    pub kind: String,
    /// JSON pointer of the natural key.
    pub natural_key: String,
    /// The schema file of a kind declared by a JSON Schema.
    pub schema: Option<String>,
    /// Its validation rules.
    pub rules: Vec<RuleView>,
}

/// The record kinds
#[utoipa::path(get, path = "/api/imports/kinds", operation_id = "kinds",
    responses(
        (status = 200, description = "Every kind with its natural key and rules", body = Vec<KindView>),
        (status = 400, description = "Bad request", body = ErrorBody),
        (status = 503, description = "Unavailable", body = ErrorBody),
    ))]
async fn kinds(State(st): State<ApiState>) -> axum::Json<Vec<KindView>> {
    axum::Json(st.kinds.views())
}

/// A page of records of a schema kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecordPage {
    /// In key order.
    pub records: Vec<RecordView>,
    /// Pass as `after` for the next page; `null` on the last page.
    pub next_after: Option<String>,
}

/// Loaded records of a schema kind
#[utoipa::path(get, path = "/api/imports/records", operation_id = "records",
    params(RecordQuery),
    responses(
        (status = 200, description = "A page in key order", body = RecordPage),
        (status = 400, description = "Bad query (`company` records are at /api/imports/companies)", body = ErrorBody),
        (status = 404, description = "Unknown kind (the message lists the known ones)", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ))]
async fn records(
    State(st): State<ApiState>,
    Query(mut q): Query<RecordQuery>,
) -> Result<axum::Json<RecordPage>, ApiError> {
    known_kind(&st.kinds, &q.kind)?;
    if q.kind == crate::kinds::COMPANY {
        return Err(ApiError::invalid(
            "kind: company records are at /api/imports/companies",
        ));
    }
    let limit = page_limit(q.limit, &st.settings)?;
    q.limit = Some(limit);
    let list = st.store.records(&q).await?;
    let next_after = (list.len() == limit as usize)
        .then(|| list.last().map(|r| r.key.clone()))
        .flatten();
    Ok(axum::Json(RecordPage {
        records: list,
        next_after,
    }))
}

/// A page of companies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CompanyPage {
    /// In permalink order.
    pub companies: Vec<CompanyView>,
    /// Pass as `after` for the next page; `null` on the last page.
    pub next_after: Option<String>,
}

/// Loaded companies
#[utoipa::path(get, path = "/api/imports/companies", operation_id = "companies",
    params(CompanyQuery),
    responses(
        (status = 200, description = "A page in permalink order", body = CompanyPage),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ))]
async fn companies(
    State(st): State<ApiState>,
    Query(mut q): Query<CompanyQuery>,
) -> Result<axum::Json<CompanyPage>, ApiError> {
    let limit = page_limit(q.limit, &st.settings)?;
    q.limit = Some(limit);
    let list = st.store.companies(&q).await?;
    let next_after = (list.len() == limit as usize)
        .then(|| list.last().map(|c| c.permalink.clone()))
        .flatten();
    Ok(axum::Json(CompanyPage {
        companies: list,
        next_after,
    }))
}

/// Build and run facts of the service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Liveness {
    /// Service name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Git commit (`TRIBUTARY_GIT_COMMIT` at build time), if known.
    pub commit: Option<String>,
    /// Build time (`TRIBUTARY_BUILD_TIME` at build time), if known.
    pub build_time: Option<String>,
    /// Seconds since the service started.
    pub uptime_secs: u64,
}

/// Liveness
#[utoipa::path(get, path = "/liveness", operation_id = "liveness",
    responses(
        (status = 200, description = "The service is up", body = Liveness),
        (status = 400, description = "Bad request", body = ErrorBody),
        (status = 503, description = "Unavailable", body = ErrorBody),
    ))]
async fn liveness(State(st): State<ApiState>) -> axum::Json<Liveness> {
    axum::Json(Liveness {
        name: "imports-api".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        commit: option_env!("TRIBUTARY_GIT_COMMIT").map(str::to_owned),
        build_time: option_env!("TRIBUTARY_BUILD_TIME").map(str::to_owned),
        uptime_secs: st.started.elapsed().as_secs(),
    })
}

/// Readiness of the dependencies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ok` or the failure, per dependency.
    pub objects: String,
    /// The bus.
    pub bus: String,
    /// The database.
    pub database: String,
}

/// Readiness
#[utoipa::path(get, path = "/readiness", operation_id = "readiness",
    responses(
        (status = 200, description = "Object store, bus and database answer", body = Readiness),
        (status = 400, description = "Bad request", body = ErrorBody),
        (status = 503, description = "A dependency does not answer (the body names it)", body = ErrorBody),
    ))]
async fn readiness(State(st): State<ApiState>) -> Response {
    let verdict = |r: Result<(), String>| r.err().unwrap_or_else(|| "ok".to_owned());
    let (o, b, d) = futures::join!(st.objects.ping(), st.bus.ping(), st.store.database().ping());
    let body = Readiness {
        objects: verdict(o.map_err(|e| e.to_string())),
        bus: verdict(b.map_err(|e| e.to_string())),
        database: verdict(d.map_err(|e| e.to_string())),
    };
    if [&body.objects, &body.bus, &body.database]
        .iter()
        .all(|v| *v == "ok")
    {
        axum::Json(body).into_response()
    } else {
        ApiError::new(
            ErrorKind::Unavailable,
            format!(
                "objects: {}; bus: {}; database: {}",
                body.objects, body.bus, body.database
            ),
        )
        .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves: routes are only added through `routes!` (with their documentation).
    #[test]
    fn routes_are_only_added_with_their_documentation() {
        tributary_runtime::openapi::assert_routes_documented("api/mod.rs", include_str!("mod.rs"));
    }

    // Proves: every operation documents the error body, and the derived
    // schemas follow the types.
    #[test]
    fn schemas_follow_the_types() {
        let doc = tributary_runtime::openapi::assert_error_bodies(&document(), &["400", "503"]);
        let schemas = &doc["components"]["schemas"];
        assert!(schemas["UploadAnswer"]["required"]
            .as_array()
            .is_some_and(|r| r.contains(&serde_json::json!("request_id"))));
        assert!(schemas["UploadStatus"]["properties"]["errors"].is_object());
    }
}
