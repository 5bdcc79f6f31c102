//! gRPC API `tributary.shop.v1` (`proto/`): the filter and ingest services
//! over the same operations as the REST routes (one implementation, so
//! the same validation, errors and answers), with server reflection and
//! `grpc.health.v1` from the shared [`GrpcServer`] (auth, limits, metrics,
//! access log). Errors become a `Status` through the one API error model
//! (`From<ApiError> for Status`).

use std::collections::HashMap;

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tributary_runtime::grpc::{GrpcLimits, GrpcServer};
use tributary_runtime::limit_messages;
use tributary_runtime::scope::RequestScopeLayer;

use super::{ApiState, FilterView};
use crate::proto::v1 as pb;
use crate::proto::v1::filter_service_server::{self, FilterServiceServer};
use crate::proto::v1::ingest_service_server::{self, IngestServiceServer};

/// The gRPC server's name (metrics label).
pub const GRPC_SERVER: &str = "shop-grpc";

/// The handlers of both services. Cheap to clone.
#[derive(Clone)]
pub struct GrpcApi {
    st: ApiState,
}

impl std::fmt::Debug for GrpcApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcApi").finish_non_exhaustive()
    }
}

impl From<FilterView> for pb::FilterView {
    fn from(v: FilterView) -> Self {
        pb::FilterView {
            filter: Some(pb::Filter {
                kind: v.filter.kind,
                pattern: v.filter.pattern,
                case_insensitive: v.filter.case_insensitive,
                set_at: v.filter.set_at,
            }),
            control_offset: v.control_offset,
            replicas: v
                .replicas
                .into_iter()
                .map(|r| pb::ReplicaAck {
                    replica: r.replica,
                    set_at: r.set_at,
                    control_offset: r.control_offset,
                    applies_from: r.applies_from.into_iter().collect::<HashMap<_, _>>(),
                    applied_at: r.applied_at,
                })
                .collect(),
        }
    }
}

#[tonic::async_trait]
impl filter_service_server::FilterService for GrpcApi {
    #[tracing::instrument(skip_all)]
    async fn get_filter(
        &self,
        _req: Request<pb::GetFilterRequest>,
    ) -> Result<Response<pb::FilterView>, Status> {
        Ok(Response::new(super::view(&self.st.control).into()))
    }

    #[tracing::instrument(skip_all, fields(regex = req.get_ref().regex))]
    async fn set_filter(
        &self,
        req: Request<pb::SetFilterRequest>,
    ) -> Result<Response<pb::FilterView>, Status> {
        let r = req.into_inner();
        let spec = super::spec_of(&super::SetFilter {
            pattern: r.pattern,
            regex: r.regex,
            case_insensitive: r.case_insensitive,
        });
        let v = super::store_filter(&self.st, spec).await?;
        Ok(Response::new(v.into()))
    }

    #[tracing::instrument(skip_all)]
    async fn clear_filter(
        &self,
        _req: Request<pb::ClearFilterRequest>,
    ) -> Result<Response<pb::FilterView>, Status> {
        let v = super::store_filter(&self.st, super::cleared()).await?;
        Ok(Response::new(v.into()))
    }
}

impl GrpcApi {
    async fn ingest(
        &self,
        topic: &str,
        field: &str,
        req: pb::IngestRequest,
    ) -> Result<Response<pb::IngestResponse>, Status> {
        let lines = req
            .records
            .into_iter()
            .enumerate()
            .map(|(i, r)| (i + 1, Bytes::from(r.into_bytes())));
        let a = super::ingest_records(
            &self.st.bus,
            topic,
            field,
            lines,
            req.event_time_ms,
            "record",
        )
        .await?;
        Ok(Response::new(pb::IngestResponse {
            accepted: a.accepted as u64,
        }))
    }
}

#[tonic::async_trait]
impl ingest_service_server::IngestService for GrpcApi {
    #[tracing::instrument(skip_all, fields(records = req.get_ref().records.len()))]
    async fn ingest_products(
        &self,
        req: Request<pb::IngestRequest>,
    ) -> Result<Response<pb::IngestResponse>, Status> {
        let topic = self.st.settings.products_topic.clone();
        self.ingest(&topic, "product_id", req.into_inner()).await
    }

    #[tracing::instrument(skip_all, fields(records = req.get_ref().records.len()))]
    async fn ingest_prompts(
        &self,
        req: Request<pb::IngestRequest>,
    ) -> Result<Response<pb::IngestResponse>, Status> {
        let topic = self.st.settings.prompts_topic.clone();
        self.ingest(&topic, "id", req.into_inner()).await
    }
}

/// The shop's gRPC server over `st`, not yet serving.
pub fn server(st: ApiState, limits: GrpcLimits) -> GrpcServer {
    let api = GrpcApi { st };
    GrpcServer::new(GRPC_SERVER, limits)
        .descriptors(crate::proto::FILE_DESCRIPTOR_SET)
        .service(limit_messages!(
            FilterServiceServer::new(api.clone()),
            limits
        ))
        .service(limit_messages!(IngestServiceServer::new(api), limits))
}

/// Serves the gRPC API on `listener` with the default limits and the
/// shared request scope until `shutdown` fires.
///
/// # Errors
/// When the server fails.
pub async fn serve(
    listener: TcpListener,
    st: ApiState,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    server(st, GrpcLimits::default())
        .serve(listener, RequestScopeLayer::new(false), shutdown)
        .await
}
