//! REST routes over [`ChatService`]. Long jobs (import, backup, restore)
//! answer with NDJSON: `{"progress":{...}}` lines, then one
//! `{"done":{...}}` or `{"error":"..."}` line.
//!
//! Every route is registered through [`utoipa_axum::routes!`] together with
//! its `#[utoipa::path]` documentation, so the OpenAPI document
//! ([`super::openapi`]) lists exactly the routes served.

use std::convert::Infallible;
use std::path::PathBuf;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tributary_runtime::http::{Json, Path, Query};
use tributary_runtime::{ApiError, ErrorBody};
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use tributary_platform::auth::Role;
use tributary_runtime::http::RouteRole;

use super::openapi;
use super::views::MessageView;
use crate::domain::{AuditFilter, MessageFilter, SearchRequest};
use crate::error::Error;
use crate::service::{
    BackupFormat, BackupProgress, BackupReport, BackupTarget, ChatService, ImportProgress,
    ImportReport, RestoreSource,
};
use crate::store::{AuditRecord, UserCount};

/// Every route with its documentation (the only place routes are added).
pub(super) fn routes() -> OpenApiRouter<ChatService> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(import))
        .routes(routes!(import_upload))
        .routes(routes!(search))
        .routes(routes!(count))
        .routes(routes!(delete))
        .routes(routes!(users))
        .routes(routes!(user))
        .routes(routes!(audit))
        .routes(routes!(backup))
        .routes(routes!(restore))
}

/// The REST router, with `GET /openapi.json`.
pub fn router(service: ChatService) -> Router {
    let (router, _document) = tributary_runtime::openapi::with_document(routes(), |_| {});
    router.with_state(service)
}

type ApiResult<T> = Result<axum::Json<T>, ApiError>;

/// Roles of the routes whose method says otherwise (see
/// [`tributary_runtime::http::RouteRole`]): searches and counts only read;
/// deletes and restores are destructive and need `admin`.
pub const ROLES: &[RouteRole] = &[
    RouteRole("POST", "/api/chat/messages/search", Role::Read),
    RouteRole("POST", "/api/chat/messages/count", Role::Read),
    RouteRole("POST", "/api/chat/messages/delete", Role::Admin),
    RouteRole("POST", "/api/chat/restore", Role::Admin),
];

/// Routes without the API's overall time limit: the upload bounds each
/// body read itself (`chat.upload_idle_secs`).
pub const UNTIMED: &[&str] = &["POST /api/chat/import/upload"];

/// Body of `POST /api/chat/import`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportBody {
    /// File, directory or zip on the server, under `chat.import_roots`.
    #[schema(value_type = String)]
    pub path: PathBuf,
}

/// Query of `POST /api/chat/import/upload`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// File name of the upload (`result.json`, `messages.html`,
    /// `export.zip`, a `.csv`/`.parquet` backup): what import detection reads.
    pub name: String,
}

/// Result of search.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SearchResponse {
    pub messages: Vec<MessageView>,
}

/// Result of count.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CountResponse {
    pub count: u64,
}

/// Body of delete.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DeleteBody {
    pub filter: MessageFilter,
    /// Required to delete with an empty filter.
    pub all: bool,
}

/// Result of delete.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeleteResponse {
    pub deleted: u64,
}

/// Query of `GET /api/chat/users`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, default)]
#[into_params(parameter_in = Query)]
pub struct UsersQuery {
    /// Top N (at most 10000, also when absent).
    pub limit: Option<u32>,
}

/// Body of backup.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupBody {
    #[serde(default)]
    pub filter: MessageFilter,
    /// `{"dir": "sub/dir"}` (under `chat.backup_dir`) or `"objects"`.
    pub target: BackupTarget,
    /// `"csv"` (default): RFC 4180 with a header row; `"parquet"`: one file,
    /// one row group per page of 5000 messages.
    #[serde(default)]
    pub format: BackupFormat,
}

/// Body of restore: `{"source": {"path": "..."}}` or `{"source": {"object": "key"}}`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreBody {
    pub source: RestoreSource,
}

/// One NDJSON line of a long job: `{"progress": P}` (any number), then one
/// `{"done": D}` or `{"error": "..."}`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobLine<P, D> {
    Progress(P),
    Done(D),
    Error(String),
}

fn line<T: Serialize>(v: &T) -> Bytes {
    let mut s =
        serde_json::to_vec(v).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}").into_bytes());
    s.push(b'\n');
    Bytes::from(s)
}

/// Runs `job` in a task and streams its progress and outcome as NDJSON.
/// Progress lines are dropped when the client reads slower than the job
/// runs (only the latest matter); the final line is always sent.
fn ndjson<P, D, F, Fut>(job: F) -> Response
where
    P: Serialize + Send + 'static,
    D: Serialize + Send + 'static,
    F: FnOnce(mpsc::Sender<Bytes>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<D, Error>> + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let outcome = job(tx.clone()).await;
        let last = match outcome {
            Ok(d) => line(&JobLine::<P, D>::Done(d)),
            Err(e) => {
                if !matches!(e, Error::InvalidRequest(_) | Error::Io { .. }) {
                    tracing::error!(error = %e, "chat job failed");
                }
                line(&JobLine::<P, D>::Error(e.to_string()))
            }
        };
        let _ = tx.send(last).await;
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response()
}

fn progress_sender<P: Serialize, D: Serialize>(
    tx: mpsc::Sender<Bytes>,
) -> impl Fn(&P) + Send + Sync {
    move |p: &P| {
        let _ = tx.try_send(line(&JobLine::<&P, D>::Progress(p)));
    }
}

/// Import a file, directory or zip on the server, under `chat.import_roots` (idempotent)
#[utoipa::path(post, path = "/api/chat/import", operation_id = "import",
    request_body = ImportBody,
    responses(
        (status = 200, description = "NDJSON stream, one line per JSON object: progress lines, then one done or error line",
            body = JobLine<ImportProgress, ImportReport>, content_type = "application/x-ndjson"),
        (status = 400, description = "Malformed body, or a path that is not a regular file or directory", body = ErrorBody),
        (status = 403, description = "Server paths off (`chat.import_roots` empty) or the path is outside them (same answer whether it exists or not)", body = ErrorBody),
        (status = 404, description = "No such file under an import root", body = ErrorBody),
    ))]
async fn import(
    State(svc): State<ChatService>,
    Json(body): Json<ImportBody>,
) -> Result<Response, ApiError> {
    let path = svc.confine_import(&body.path)?;
    Ok(ndjson::<ImportProgress, ImportReport, _, _>(
        move |tx| async move {
            let progress = progress_sender::<ImportProgress, ()>(tx);
            svc.import(&path, &progress).await
        },
    ))
}

/// Upload an export (one file, or a zip of a directory) and import it (idempotent)
///
/// The body is streamed to a private spool on the server (never held in
/// memory), at most `chat.max_upload_bytes`, cut off after
/// `chat.upload_idle_secs` without data, imported, then removed. A body
/// whose `Content-Length` is over the limit is refused with 413 before
/// anything is read; a longer chunked body ends the stream with an error
/// line.
#[utoipa::path(post, path = "/api/chat/import/upload", operation_id = "importUpload",
    params(UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "The file's bytes: Telegram JSON or HTML, a zip of an export directory, or a CSV/Parquet backup"),
    responses(
        (status = 200, description = "NDJSON stream, one line per JSON object: progress lines, then one done or error line",
            body = JobLine<ImportProgress, ImportReport>, content_type = "application/x-ndjson"),
        (status = 400, description = "Missing or odd name", body = ErrorBody),
        (status = 413, description = "Content-Length over `chat.max_upload_bytes`", body = ErrorBody),
    ))]
async fn import_upload(
    State(svc): State<ChatService>,
    Query(q): Query<UploadQuery>,
    headers: axum::http::HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let name = crate::service::upload_name(&q.name)?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    svc.check_upload_size(&name, declared)?;
    Ok(ndjson::<ImportProgress, ImportReport, _, _>(
        move |tx| async move {
            let progress = progress_sender::<ImportProgress, ()>(tx);
            svc.import_upload(&name, declared, body.into_data_stream(), &progress)
                .await
        },
    ))
}

/// A page of messages
#[utoipa::path(post, path = "/api/chat/messages/search", operation_id = "searchMessages",
    request_body = SearchRequest,
    responses(
        (status = 200, description = "The page", body = SearchResponse),
        (status = 400, description = "Malformed or invalid request (the message names the field)", body = ErrorBody),
        (status = 500, description = "Internal error (no details)", body = ErrorBody),
    ))]
async fn search(
    State(svc): State<ChatService>,
    Json(req): Json<SearchRequest>,
) -> ApiResult<SearchResponse> {
    let messages = svc.search(&req).await?;
    Ok(axum::Json(SearchResponse {
        messages: messages.iter().map(MessageView::from).collect(),
    }))
}

/// Number of matching messages
#[utoipa::path(post, path = "/api/chat/messages/count", operation_id = "countMessages",
    request_body = MessageFilter,
    responses(
        (status = 200, description = "The count", body = CountResponse),
        (status = 400, description = "Malformed or invalid filter (the message names the field)", body = ErrorBody),
        (status = 500, description = "Internal error (no details)", body = ErrorBody),
    ))]
async fn count(
    State(svc): State<ChatService>,
    Json(f): Json<MessageFilter>,
) -> ApiResult<CountResponse> {
    Ok(axum::Json(CountResponse {
        count: svc.count(&f).await?,
    }))
}

/// Delete matching messages (an empty filter needs all=true)
#[utoipa::path(post, path = "/api/chat/messages/delete", operation_id = "deleteMessages",
    request_body = DeleteBody,
    responses(
        (status = 200, description = "Messages deleted", body = DeleteResponse),
        (status = 400, description = "Malformed or invalid filter, or an empty filter without all=true", body = ErrorBody),
        (status = 500, description = "Internal error (no details)", body = ErrorBody),
    ))]
async fn delete(
    State(svc): State<ChatService>,
    Json(body): Json<DeleteBody>,
) -> ApiResult<DeleteResponse> {
    Ok(axum::Json(DeleteResponse {
        deleted: svc.delete(&body.filter, body.all).await?,
    }))
}

/// Senders by message count, largest first
#[utoipa::path(get, path = "/api/chat/users", operation_id = "users",
    params(UsersQuery),
    responses(
        (status = 200, description = "Counts", body = Vec<UserCount>),
        (status = 400, description = "Malformed query", body = ErrorBody),
        (status = 500, description = "Internal error (no details)", body = ErrorBody),
    ))]
async fn users(
    State(svc): State<ChatService>,
    Query(q): Query<UsersQuery>,
) -> ApiResult<Vec<UserCount>> {
    Ok(axum::Json(svc.users(q.limit).await?))
}

/// One sender's count (0 when unknown)
#[utoipa::path(get, path = "/api/chat/users/{id}", operation_id = "user",
    params(("id" = String, Path, description = "Sender key (`user123`, `name:Alice`)")),
    responses(
        (status = 200, description = "The count", body = UserCount),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 500, description = "Internal error (no details)", body = ErrorBody),
    ))]
async fn user(State(svc): State<ChatService>, Path(id): Path<String>) -> ApiResult<UserCount> {
    Ok(axum::Json(svc.user(&id).await?))
}

/// Stored log records, newest first
#[utoipa::path(get, path = "/api/chat/audit", operation_id = "audit",
    params(AuditFilter),
    responses(
        (status = 200, description = "Records", body = Vec<AuditRecord>),
        (status = 400, description = "Malformed query or unknown level", body = ErrorBody),
        (status = 500, description = "Internal error (no details)", body = ErrorBody),
    ))]
async fn audit(
    State(svc): State<ChatService>,
    Query(f): Query<AuditFilter>,
) -> ApiResult<Vec<AuditRecord>> {
    Ok(axum::Json(svc.audit(&f).await?))
}

/// Export matching messages to one CSV or Parquet file
#[utoipa::path(post, path = "/api/chat/backup", operation_id = "backup",
    request_body = BackupBody,
    responses(
        (status = 200, description = "NDJSON stream, one line per JSON object: progress lines, then one done or error line",
            body = JobLine<BackupProgress, BackupReport>, content_type = "application/x-ndjson"),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 403, description = "Server directories off (`chat.backup_dir` empty) or the directory is outside it", body = ErrorBody),
    ))]
async fn backup(
    State(svc): State<ChatService>,
    Json(body): Json<BackupBody>,
) -> Result<Response, ApiError> {
    let target = svc.confine_backup(&body.target)?;
    Ok(ndjson::<BackupProgress, BackupReport, _, _>(
        move |tx| async move {
            let progress = progress_sender::<BackupProgress, ()>(tx);
            svc.backup(&body.filter, &target, body.format, &progress)
                .await
        },
    ))
}

/// Import a backup (idempotent)
#[utoipa::path(post, path = "/api/chat/restore", operation_id = "restore",
    request_body = RestoreBody,
    responses(
        (status = 200, description = "NDJSON stream, one line per JSON object: progress lines, then one done or error line",
            body = JobLine<ImportProgress, ImportReport>, content_type = "application/x-ndjson"),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 403, description = "Server paths off or the path is outside `chat.import_roots` and `chat.backup_dir`", body = ErrorBody),
        (status = 404, description = "No such file under those roots", body = ErrorBody),
    ))]
async fn restore(
    State(svc): State<ChatService>,
    Json(body): Json<RestoreBody>,
) -> Result<Response, ApiError> {
    let source = svc.confine_restore(&body.source)?;
    Ok(ndjson::<ImportProgress, ImportReport, _, _>(
        move |tx| async move {
            let progress = progress_sender::<ImportProgress, ()>(tx);
            svc.restore(&source, &progress).await
        },
    ))
}

#[cfg(test)]
mod tests {
    // Proves: routes are only added through `routes!` (with their
    // documentation) — this file never calls axum's undocumented `route`.
    #[test]
    fn routes_are_only_added_with_their_documentation() {
        tributary_runtime::openapi::assert_routes_documented("rest.rs", include_str!("rest.rs"));
    }
}
