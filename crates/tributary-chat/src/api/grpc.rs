//! gRPC API `tributary.chat.v1` (`proto/`): the chat, user, audit and
//! backup services over [`ChatService`], server reflection (v1 and
//! v1alpha) and the standard `grpc.health.v1` service.
//!
//! Long jobs (import, export, restore) are server streams: progress
//! messages, then one report. An upload is a client stream (a start
//! message, then data) answered the same way, through the same spool and
//! import as the REST upload ([`ChatService::import_upload`]). Errors become a [`Status`] in exactly one
//! place, `From<Error> for Status`.

mod convert;

pub use convert::MAX_UPLOAD_CHUNK;

use std::future::Future;
use std::pin::Pin;

use futures::Stream;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tributary_platform::auth::Role;
use tributary_runtime::grpc::{GrpcLimits, GrpcServer};
use tributary_runtime::limit_messages;
use tributary_runtime::scope::RequestScopeLayer;

use crate::error::Error;
use crate::proto::v1 as pb;
use crate::proto::v1::audit_service_server::{self, AuditServiceServer};
use crate::proto::v1::backup_service_server::{self, BackupServiceServer};
use crate::proto::v1::chat_service_server::{self, ChatServiceServer};
use crate::proto::v1::user_service_server::{self, UserServiceServer};
use crate::service::ChatService;

/// Stream messages buffered per call; progress beyond this is dropped
/// (only the latest matters), the final report never is.
const STREAM_BUFFER: usize = 32;

/// Errors become gRPC statuses through the one API error model
/// (`From<Error> for ApiError`, then `From<ApiError> for Status`).
impl From<Error> for Status {
    fn from(e: Error) -> Self {
        tributary_runtime::ApiError::from(e).into()
    }
}

/// A server stream of one long job.
pub type JobStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Progress callback handed to a job.
type Progress<P> = Box<dyn Fn(&P) + Send + Sync>;

/// Whether a job stops when the client goes away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnDisconnect {
    /// Abort the job (imports: committed batches stay, which is safe
    /// because imports are idempotent).
    Cancel,
    /// Let it finish (exports: a cancelled one could leave a partial file).
    Finish,
}

/// Runs `job` in a task and streams its progress and outcome: progress
/// messages (dropped when the client reads slower than the job runs), then
/// the report or the error status.
fn job_stream<T, P, D, F, Fut>(
    on_disconnect: OnDisconnect,
    progress_msg: fn(&P) -> T,
    done_msg: fn(D) -> T,
    job: F,
) -> JobStream<T>
where
    T: Send + 'static,
    P: 'static,
    D: Send + 'static,
    F: FnOnce(Progress<P>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<D, Error>> + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<Result<T, Status>>(STREAM_BUFFER);
    tokio::spawn(async move {
        let progress_tx = tx.clone();
        let work = job(Box::new(move |p: &P| {
            let _ = progress_tx.try_send(Ok(progress_msg(p)));
        }));
        // Its own task, so a panic becomes an INTERNAL status, not a silent end.
        let mut handle = tokio::spawn(work);
        let joined = match on_disconnect {
            OnDisconnect::Cancel => tokio::select! {
                r = &mut handle => r,
                () = tx.closed() => {
                    handle.abort();
                    tracing::info!("chat gRPC client went away; job cancelled");
                    return;
                }
            },
            OnDisconnect::Finish => handle.await,
        };
        let outcome = joined
            .map_err(|e| Error::Task(format!("chat gRPC job: {e}")))
            .and_then(|r| r);
        let _ = tx.send(outcome.map(done_msg).map_err(Status::from)).await;
    });
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// The gRPC handlers of all four services. Cheap to clone.
#[derive(Debug, Clone)]
pub struct GrpcApi {
    svc: ChatService,
}

impl GrpcApi {
    /// Handlers over `svc`.
    pub fn new(svc: ChatService) -> Self {
        GrpcApi { svc }
    }
}

#[tonic::async_trait]
impl chat_service_server::ChatService for GrpcApi {
    type ImportStream = JobStream<pb::ImportEvent>;

    #[tracing::instrument(skip_all, fields(path = %req.get_ref().path))]
    async fn import(
        &self,
        req: Request<pb::ImportRequest>,
    ) -> Result<Response<Self::ImportStream>, Status> {
        let path = req.into_inner().path;
        if path.is_empty() {
            return Err(Status::invalid_argument("path is empty"));
        }
        let path = self.svc.confine_import(path.as_ref())?;
        let svc = self.svc.clone();
        Ok(Response::new(job_stream(
            OnDisconnect::Cancel,
            convert::import_progress,
            convert::import_report,
            move |progress| async move { svc.import(&path, &progress).await },
        )))
    }

    type UploadStream = JobStream<pb::ImportEvent>;

    #[tracing::instrument(skip_all, fields(name = tracing::field::Empty))]
    async fn upload(
        &self,
        req: Request<tonic::Streaming<pb::UploadRequest>>,
    ) -> Result<Response<Self::UploadStream>, Status> {
        let mut messages = req.into_inner();
        let start = match messages.message().await?.and_then(|m| m.part) {
            Some(pb::upload_request::Part::Start(s)) => s,
            Some(pb::upload_request::Part::Data(_)) | None => {
                return Err(Status::invalid_argument(
                    "an upload starts with a start message (name, size)",
                ))
            }
        };
        let name = crate::service::upload_name(&start.name)?;
        tracing::Span::current().record("name", name.as_str());
        // A declared size over the limit is refused before any data is read.
        self.svc.check_upload_size(&name, start.size)?;
        let svc = self.svc.clone();
        Ok(Response::new(job_stream(
            OnDisconnect::Cancel,
            convert::import_progress,
            convert::import_report,
            move |progress| async move {
                svc.import_upload(&name, start.size, convert::upload_data(messages), &progress)
                    .await
            },
        )))
    }

    #[tracing::instrument(skip_all)]
    async fn count(
        &self,
        req: Request<pb::CountRequest>,
    ) -> Result<Response<pb::CountResponse>, Status> {
        let filter = convert::filter(req.into_inner().filter)?;
        let count = self.svc.count(&filter).await?;
        Ok(Response::new(pb::CountResponse { count }))
    }

    #[tracing::instrument(skip_all)]
    async fn search(
        &self,
        req: Request<pb::SearchRequest>,
    ) -> Result<Response<pb::SearchResponse>, Status> {
        let req = convert::search(req.into_inner())?;
        let messages = self.svc.search(&req).await?;
        Ok(Response::new(pb::SearchResponse {
            messages: messages.iter().map(Into::into).collect(),
        }))
    }

    #[tracing::instrument(skip_all, fields(all = req.get_ref().all))]
    async fn delete(
        &self,
        req: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let r = req.into_inner();
        let filter = convert::filter(r.filter)?;
        let deleted = self.svc.delete(&filter, r.all).await?;
        Ok(Response::new(pb::DeleteResponse { deleted }))
    }
}

#[tonic::async_trait]
impl user_service_server::UserService for GrpcApi {
    #[tracing::instrument(skip_all)]
    async fn get_user(
        &self,
        req: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::GetUserResponse>, Status> {
        let user = self.svc.user(&req.into_inner().id).await?;
        Ok(Response::new(pb::GetUserResponse {
            user: Some(user.into()),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn get_users_messages_count(
        &self,
        req: Request<pb::GetUsersMessagesCountRequest>,
    ) -> Result<Response<pb::GetUsersMessagesCountResponse>, Status> {
        let users = self.svc.users(req.into_inner().limit).await?;
        Ok(Response::new(pb::GetUsersMessagesCountResponse {
            users: users.into_iter().map(Into::into).collect(),
        }))
    }
}

#[tonic::async_trait]
impl audit_service_server::AuditService for GrpcApi {
    #[tracing::instrument(skip_all)]
    async fn query(
        &self,
        req: Request<pb::QueryRequest>,
    ) -> Result<Response<pb::QueryResponse>, Status> {
        let filter = convert::audit_filter(req.into_inner())?;
        let records = self.svc.audit(&filter).await?;
        Ok(Response::new(pb::QueryResponse {
            records: records.into_iter().map(Into::into).collect(),
        }))
    }
}

#[tonic::async_trait]
impl backup_service_server::BackupService for GrpcApi {
    type ExportStream = JobStream<pb::ExportEvent>;
    type RestoreStream = JobStream<pb::ImportEvent>;

    #[tracing::instrument(skip_all)]
    async fn export(
        &self,
        req: Request<pb::ExportRequest>,
    ) -> Result<Response<Self::ExportStream>, Status> {
        let r = req.into_inner();
        let format = convert::backup_format(r.format)?;
        let filter = convert::filter(r.filter)?;
        let target = self
            .svc
            .confine_backup(&convert::backup_target(r.target)?)?;
        let svc = self.svc.clone();
        Ok(Response::new(job_stream(
            OnDisconnect::Finish,
            convert::backup_progress,
            convert::backup_report,
            move |progress| async move { svc.backup(&filter, &target, format, &progress).await },
        )))
    }

    #[tracing::instrument(skip_all)]
    async fn restore(
        &self,
        req: Request<pb::RestoreRequest>,
    ) -> Result<Response<Self::RestoreStream>, Status> {
        let source = self
            .svc
            .confine_restore(&convert::restore_source(req.into_inner().source)?)?;
        let svc = self.svc.clone();
        Ok(Response::new(job_stream(
            OnDisconnect::Cancel,
            convert::import_progress,
            convert::import_report,
            move |progress| async move { svc.restore(&source, &progress).await },
        )))
    }
}

/// The name of the chat gRPC server (logs, errors, the `server` label of its metrics).
pub const GRPC_SERVER: &str = "chat gRPC API";

/// The gRPC API: the four chat services (with the shared message limits),
/// health and reflection, served by the runtime's [`GrpcServer`].
pub fn server(svc: ChatService, limits: GrpcLimits) -> GrpcServer {
    let api = GrpcApi::new(svc);
    GrpcServer::new(GRPC_SERVER, limits)
        .descriptors(crate::proto::FILE_DESCRIPTOR_SET)
        .service(limit_messages!(ChatServiceServer::new(api.clone()), limits))
        .service(limit_messages!(UserServiceServer::new(api.clone()), limits))
        .service(limit_messages!(
            AuditServiceServer::new(api.clone()),
            limits
        ))
        .service(limit_messages!(BackupServiceServer::new(api), limits))
        .role("/tributary.chat.v1.AuditService/Query", Role::Read)
        .role("/tributary.chat.v1.ChatService/Delete", Role::Admin)
        .role("/tributary.chat.v1.BackupService/Restore", Role::Admin)
}

/// Serves the gRPC API on `listener` with the default limits and the shared
/// request scope until `shutdown` fires, then lets in-flight calls finish.
///
/// # Errors
/// When the server fails.
pub async fn serve(
    listener: TcpListener,
    svc: ChatService,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    server(svc, GrpcLimits::default())
        .serve(listener, RequestScopeLayer::new(false), shutdown)
        .await
}
