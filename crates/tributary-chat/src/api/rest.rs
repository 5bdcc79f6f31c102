//! REST routes over [`ChatService`]. Long jobs (import, backup, restore)
//! answer with NDJSON: `{"progress":{...}}` lines, then one
//! `{"done":{...}}` or `{"error":"..."}` line.

use std::convert::Infallible;
use std::path::PathBuf;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tributary_runtime::http::{Json, Path, Query};
use tributary_runtime::ApiError;

use super::openapi;
use super::views::MessageView;
use crate::domain::{AuditFilter, MessageFilter, SearchRequest};
use crate::error::Error;
use crate::service::{BackupFormat, BackupTarget, ChatService, RestoreSource};

/// The REST router.
pub fn router(service: ChatService) -> Router {
    Router::new()
        .route("/openapi.json", get(openapi_doc))
        .route("/api/chat/import", post(import))
        .route("/api/chat/messages/search", post(search))
        .route("/api/chat/messages/count", post(count))
        .route("/api/chat/messages/delete", post(delete))
        .route("/api/chat/users", get(users))
        .route("/api/chat/users/{id}", get(user))
        .route("/api/chat/audit", get(audit))
        .route("/api/chat/backup", post(backup))
        .route("/api/chat/restore", post(restore))
        .with_state(service)
}

type ApiResult<T> = Result<axum::Json<T>, ApiError>;

async fn openapi_doc() -> axum::Json<serde_json::Value> {
    axum::Json(openapi::document())
}

/// Body of `POST /api/chat/import`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportBody {
    /// File, directory or zip on the server.
    pub path: PathBuf,
}

/// Result of search.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchResponse {
    pub messages: Vec<MessageView>,
}

/// Result of count.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CountResponse {
    pub count: u64,
}

/// Body of delete.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeleteBody {
    pub filter: MessageFilter,
    /// Required to delete with an empty filter.
    pub all: bool,
}

/// Result of delete.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeleteResponse {
    pub deleted: u64,
}

/// Query of `GET /api/chat/users`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UsersQuery {
    /// Top N (all when absent).
    pub limit: Option<u32>,
}

/// Body of backup.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupBody {
    #[serde(default)]
    pub filter: MessageFilter,
    /// `{"dir": "/path"}` or `"objects"`.
    pub target: BackupTarget,
    /// `"csv"` (default) or `"parquet"`.
    #[serde(default)]
    pub format: BackupFormat,
}

/// Body of restore: `{"source": {"path": "..."}}` or `{"source": {"object": "key"}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreBody {
    pub source: RestoreSource,
}

/// One NDJSON line of a long job.
#[derive(Debug, Clone, Serialize, Deserialize)]
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

async fn import(State(svc): State<ChatService>, Json(body): Json<ImportBody>) -> Response {
    ndjson::<crate::service::ImportProgress, crate::service::ImportReport, _, _>(
        move |tx| async move {
            let progress = progress_sender::<crate::service::ImportProgress, ()>(tx);
            svc.import(&body.path, &progress).await
        },
    )
}

async fn search(
    State(svc): State<ChatService>,
    Json(req): Json<SearchRequest>,
) -> ApiResult<SearchResponse> {
    let messages = svc.search(&req).await?;
    Ok(axum::Json(SearchResponse {
        messages: messages.iter().map(MessageView::from).collect(),
    }))
}

async fn count(
    State(svc): State<ChatService>,
    Json(f): Json<MessageFilter>,
) -> ApiResult<CountResponse> {
    Ok(axum::Json(CountResponse {
        count: svc.count(&f).await?,
    }))
}

async fn delete(
    State(svc): State<ChatService>,
    Json(body): Json<DeleteBody>,
) -> ApiResult<DeleteResponse> {
    Ok(axum::Json(DeleteResponse {
        deleted: svc.delete(&body.filter, body.all).await?,
    }))
}

async fn users(
    State(svc): State<ChatService>,
    Query(q): Query<UsersQuery>,
) -> ApiResult<Vec<crate::store::UserCount>> {
    Ok(axum::Json(svc.users(q.limit).await?))
}

async fn user(
    State(svc): State<ChatService>,
    Path(id): Path<String>,
) -> ApiResult<crate::store::UserCount> {
    Ok(axum::Json(svc.user(&id).await?))
}

async fn audit(
    State(svc): State<ChatService>,
    Query(f): Query<AuditFilter>,
) -> ApiResult<Vec<crate::store::AuditRecord>> {
    Ok(axum::Json(svc.audit(&f).await?))
}

async fn backup(State(svc): State<ChatService>, Json(body): Json<BackupBody>) -> Response {
    ndjson::<crate::service::BackupProgress, crate::service::BackupReport, _, _>(
        move |tx| async move {
            let progress = progress_sender::<crate::service::BackupProgress, ()>(tx);
            svc.backup(&body.filter, &body.target, body.format, &progress)
                .await
        },
    )
}

async fn restore(State(svc): State<ChatService>, Json(body): Json<RestoreBody>) -> Response {
    ndjson::<crate::service::ImportProgress, crate::service::ImportReport, _, _>(
        move |tx| async move {
            let progress = progress_sender::<crate::service::ImportProgress, ()>(tx);
            svc.restore(&body.source, &progress).await
        },
    )
}
